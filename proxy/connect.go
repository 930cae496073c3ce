package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

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
	stop   func() bool // stops the lifetime timer
}

type tunnelKey struct{}

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

// intercept answers the CONNECT and hands the client side of the tunnel,
// wrapped in TLS with a leaf for the CONNECT host, to the inner server.
func (s *Server) intercept(conn net.Conn, t *tunnel) {
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		conn.Close()
		return
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		// The certificate is always the CONNECT host's, whatever the SNI
		// says; a different SNI is refused per request with 421.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cfg.CA.Leaf(t.host) },
	}
	tc := tls.Server(conn, cfg)
	timer := time.AfterFunc(s.limits.MaxConnDuration, func() { conn.Close() })
	t.stop = timer.Stop
	s.info.Store(tc, t)
	if m := s.cfg.Metrics; m != nil {
		m.ActiveTunnels.Inc()
	}
	if !s.tunnels.push(tc) {
		s.tunnelState(tc, http.StateClosed)
		tc.Close()
	}
}

func (s *Server) tunnelContext(ctx context.Context, c net.Conn) context.Context {
	if t, ok := s.info.Load(c); ok {
		return context.WithValue(ctx, tunnelKey{}, t)
	}
	return ctx
}

func (s *Server) tunnelState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	if v, ok := s.info.LoadAndDelete(c); ok {
		if t := v.(*tunnel); t.stop != nil && st == http.StateClosed {
			t.stop()
		}
		if m := s.cfg.Metrics; m != nil {
			m.ActiveTunnels.Dec()
		}
	}
}

// serveTunnel handles one request inside an intercepted tunnel. The TLS
// SNI, the Host header and any absolute-form authority must all name the
// CONNECT target; otherwise 421, and nothing is dialled.
func (s *Server) serveTunnel(w http.ResponseWriter, r *http.Request) {
	t, ok := r.Context().Value(tunnelKey{}).(*tunnel)
	if !ok {
		s.write(w, r, denial(r, ReasonBadRequest, "", "no tunnel"))
		return
	}
	if why := s.checkTunnelHost(r, t); why != "" {
		s.write(w, r, s.refuse(r, target{scheme: "https", host: t.host, port: t.port, client: t.client}, ReasonHostMismatch, "", why))
		return
	}
	rc := http.NewResponseController(w)
	s.write(w, r, s.exchange(r, target{scheme: "https", host: t.host, port: t.port, client: t.client, readDeadline: rc.SetReadDeadline}))
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

// tunnelListener feeds intercepted connections to the inner server.
type tunnelListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newTunnelListener() *tunnelListener {
	return &tunnelListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *tunnelListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *tunnelListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *tunnelListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *tunnelListener) Addr() net.Addr { return tunnelAddr{} }

type tunnelAddr struct{}

func (tunnelAddr) Network() string { return "tunnel" }
func (tunnelAddr) String() string  { return "tunnel" }
