package proxy

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/elazarl/goproxy"

	"github.com/tokrun/tokrun/internal/match"
	"github.com/tokrun/tokrun/policy"
)

// tunnel is what the proxy knows about one intercepted CONNECT: the
// canonical host and port every request inside must agree with.
type tunnel struct {
	host   string
	port   int
	client string
}

// handleConnect decides a CONNECT before any tunnel exists: a refused
// host gets its denial (403 with reason headers) and the connection
// closes; an allowed host is intercepted.
func (s *Server) handleConnect(hostport string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	r := ctx.Req
	client := clientOf(r)
	start := s.cfg.Now()
	host, portText, err := net.SplitHostPort(hostport)
	port, perr := strconv.Atoi(portText)
	if err != nil || perr != nil || port < 1 || port > 65535 || r.URL.User != nil || strings.Contains(r.RequestURI, "@") {
		ctx.Resp = s.refuse(r, target{client: client, scheme: "https", host: hostport}, ReasonBadRequest, "", "CONNECT needs a host:port target")
		return &goproxy.ConnectAction{Action: goproxy.ConnectReject}, hostport
	}
	d := s.cfg.Policy().DecideHost(policy.Request{Scheme: "https", Host: host, Port: port, Method: http.MethodConnect})
	rec := Record{Client: client, Method: http.MethodConnect, Scheme: "https", Host: d.Host, Port: d.Port, Rule: d.Rule, Reason: string(d.Reason)}
	s.count(d.Allow, d.Rule, d.Reason)
	if !d.Allow {
		ctx.Resp = denial(r, d.Reason, d.Rule, d.Explanation)
		rec.Decision, rec.Status = "deny", ctx.Resp.StatusCode
		s.audit(rec, start)
		return &goproxy.ConnectAction{Action: goproxy.ConnectReject}, hostport
	}
	rec.Decision, rec.Status = "allow", http.StatusOK
	s.audit(rec, start)
	t := &tunnel{host: d.Host, port: d.Port, client: client}
	return &goproxy.ConnectAction{
		Action: goproxy.ConnectHijack,
		Hijack: func(_ *http.Request, conn net.Conn, _ *goproxy.ProxyCtx) { s.intercept(conn, t) },
	}, hostport
}

func (s *Server) checkTunnelHost(r *http.Request, t *tunnel) string {
	if r.TLS != nil && r.TLS.ServerName != "" {
		if h, err := match.NormalizeHost(r.TLS.ServerName); err != nil || h != t.host {
			return "the TLS server name differs from the CONNECT target " + t.host
		}
	}
	authorities := []string{r.Host}
	if r.URL.Host != "" {
		authorities = append(authorities, r.URL.Host)
	}
	for _, a := range authorities {
		if !sameAuthority(a, t.host, t.port, 443) {
			return "the request's Host differs from the CONNECT target " + t.host + ":" + strconv.Itoa(t.port)
		}
	}
	return ""
}

// sameAuthority reports whether a Host value names host:port, where a
// missing port means defPort.
func sameAuthority(authority, host string, port, defPort int) bool {
	h, p := authority, defPort
	if hh, pp, err := net.SplitHostPort(authority); err == nil {
		n, err := strconv.Atoi(pp)
		if err != nil {
			return false
		}
		h, p = hh, n
	}
	c, err := match.NormalizeHost(h)
	return err == nil && c == host && p == port
}
