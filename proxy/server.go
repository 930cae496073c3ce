package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"golang.org/x/net/netutil"

	"github.com/tokrun/tokrun/internal/match"
	"github.com/tokrun/tokrun/policy"
)

// Limits bound every connection. Zero fields take the defaults shown.
type Limits struct {
	ReadHeaderTimeout     time.Duration // 10s: to read a request's headers, and the TLS handshake in a tunnel
	IdleTimeout           time.Duration // 90s: between requests on a kept-alive connection
	MaxHeaderBytes        int           // 32 KiB: request line and headers
	MaxConnDuration       time.Duration // 1h: total lifetime of a client connection (a tunnel's from its CONNECT)
	DialTimeout           time.Duration // 10s: upstream TCP connect
	TLSHandshakeTimeout   time.Duration // 10s: upstream TLS handshake
	ResponseHeaderTimeout time.Duration // 5m: upstream response headers after the request is sent
	MaxIdleConnsPerHost   int           // 64: pooled upstream connections per host
	MaxConns              int           // 4096: client connections open at once per listener
	BodyPeekTimeout       time.Duration // 30s: to receive the part of a body scanned before dialling
}

func (l Limits) withDefaults() Limits {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&l.ReadHeaderTimeout, 10*time.Second)
	def(&l.IdleTimeout, 90*time.Second)
	def(&l.MaxConnDuration, time.Hour)
	def(&l.DialTimeout, 10*time.Second)
	def(&l.TLSHandshakeTimeout, 10*time.Second)
	def(&l.ResponseHeaderTimeout, 5*time.Minute)
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = 32 << 10
	}
	if l.MaxIdleConnsPerHost == 0 {
		l.MaxIdleConnsPerHost = 64
	}
	if l.MaxConns == 0 {
		l.MaxConns = 4096
	}
	def(&l.BodyPeekTimeout, 30*time.Second)
	return l
}

// Token is a client credential for TCP listeners: a name (recorded in the
// audit log as the client) and the SHA-256 of the bearer token.
type Token struct {
	Name   string
	SHA256 [32]byte
}

// Config configures a Server. Policy and CA are required; the other
// fields have defaults when zero.
type Config struct {
	// Policy returns the policy in force for each decision.
	Policy func() *policy.Policy
	// CA issues the certificates of intercepted tunnels.
	CA *CA
	// Dialer connects upstream. If nil, a GuardedDialer with default
	// resolution is used. The address guard cannot be turned off.
	Dialer *GuardedDialer
	// UpstreamRoots verifies upstream TLS. If nil, the system roots.
	UpstreamRoots *x509.CertPool
	// Audit receives one record per decision. If nil, none are written.
	// The Server counts the failures of batched writes (see AuditLog);
	// close a batched log after Shutdown, to write what it holds.
	Audit *AuditLog
	// Metrics, if not nil, is updated on every decision.
	Metrics *Metrics
	// Logger receives operational messages (never secrets). If nil,
	// nothing is logged.
	Logger *slog.Logger
	// Tokens authenticate clients on listeners served with RequireAuth.
	Tokens []Token
	// Limits bound connections; zero fields take defaults.
	Limits Limits
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
	// OnTripwire, if not nil, is called when a request carries a secret's
	// placeholder towards a host outside the secret's sealed binding. The
	// request has already been refused; tokrun uses this to end the
	// sandbox.
	OnTripwire func(TripwireEvent)
	// OnRecord, if not nil, receives every audit record as it is written
	// (whether or not Audit is set). tokrun uses it to learn a policy and
	// to give hints. It must not block.
	OnRecord func(Record)
}

// TripwireEvent describes a caught placeholder. It holds no secret.
type TripwireEvent struct {
	Secret string // the secret whose placeholder was seen
	Where  string // "url", "header", "body" or "websocket" (a frame after the upgrade)
	Host   string // canonical destination host
	Client string
}

// Server is the egress proxy. Create it with New and serve listeners with
// Serve; Shutdown drains them.
type Server struct {
	cfg     Config
	limits  Limits
	log     *slog.Logger
	gp      *goproxy.ProxyHttpServer
	public  *upstream // dials only public addresses
	private *upstream // for rules with unsafe_allow_private_network

	mu       sync.Mutex
	servers  []*http.Server
	tconns   map[*tunnelConn]struct{}
	twg      sync.WaitGroup // one per tunnel being served
	closed   bool
	draining atomic.Bool // Shutdown has begun: tunnels end after their response

	phMu  sync.Mutex          // serialises placeholder registration and index builds
	extra map[string][]string // registered placeholders by secret
	phGen atomic.Uint64
	index atomic.Pointer[secretIndex]
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Policy == nil || cfg.CA == nil {
		return nil, errors.New("proxy: Config.Policy and Config.CA are required")
	}
	for _, t := range cfg.Tokens {
		if _, err := netip.ParseAddr(t.Name); err == nil || t.Name == "" || t.Name == "unix" || strings.Contains(t.Name, ":") {
			return nil, fmt.Errorf("proxy: token name %q: a client name may not be empty, \"unix\", an IP address or hold \":\", which name clients of a Unix socket and clients known by address", t.Name)
		}
	}
	s := &Server{cfg: cfg, limits: cfg.Limits.withDefaults(), log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cfg.Now == nil {
		s.cfg.Now = time.Now
	}
	if s.cfg.Dialer == nil {
		s.cfg.Dialer = &GuardedDialer{}
	}
	if s.cfg.Dialer.Timeout == 0 {
		d := *s.cfg.Dialer
		d.Timeout = s.limits.DialTimeout
		s.cfg.Dialer = &d
	}
	if m := cfg.Metrics; m != nil && cfg.CA.OnLeaf == nil {
		cfg.CA.OnLeaf = func(hit bool) {
			if hit {
				m.LeafCerts.WithLabelValues("hit").Inc()
			} else {
				m.LeafCerts.WithLabelValues("miss").Inc()
			}
		}
	}
	s.public = s.dialUpstream(false)
	s.private = s.dialUpstream(true)

	s.gp = goproxy.NewProxyHttpServer()
	s.gp.Logger = log.New(io.Discard, "", 0)
	// goproxy's own transport is never used: every request gets its
	// response from exchangePlain or handleConnect.
	s.gp.Tr = &http.Transport{Proxy: nil, DialContext: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("proxy: goproxy's transport is not used")
	}}
	s.gp.ConnectDial = func(string, string) (net.Conn, error) {
		return nil, errors.New("proxy: blind tunnels are disabled")
	}
	s.gp.OnRequest().HandleConnectFunc(s.handleConnect)

	s.tconns = map[*tunnelConn]struct{}{}
	if cfg.Audit != nil {
		cfg.Audit.reportTo(s.auditFailed)
	}
	return s, nil
}

// dialUpstream returns a client whose connections reach only public
// addresses, or also private ones.
func (s *Server) dialUpstream(allowPrivate bool) *upstream {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return s.cfg.Dialer.DialContext(ctx, network, addr, allowPrivate)
	}
	return newUpstream(dial, &tls.Config{RootCAs: s.cfg.UpstreamRoots, MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(0)}, s.limits)
}

type listenerKey struct{}

type listenerInfo struct {
	requireAuth bool
	kind        string // "unix" or "tcp"
}

type clientKey struct{}

// readDeadlineKey holds the read deadline setter of a plain request's
// connection.
type readDeadlineKey struct{}

// connEndKey holds the time a client connection's lifetime
// (Limits.MaxConnDuration) ends.
type connEndKey struct{}

// ServeOptions describe one listener.
type ServeOptions struct {
	// RequireAuth demands a Proxy-Authorization bearer token matching one
	// of Config.Tokens on every request (407 otherwise). TCP listeners
	// should always require it.
	RequireAuth bool
}

// Serve accepts proxy clients on ln until Shutdown.
func (s *Server) Serve(ln net.Listener, opts ServeOptions) error {
	info := &listenerInfo{requireAuth: opts.RequireAuth, kind: ln.Addr().Network()}
	srv := &http.Server{
		Handler:           http.HandlerFunc(s.serveProxy),
		ReadHeaderTimeout: s.limits.ReadHeaderTimeout,
		// "OPTIONS *" comes to serveProxy too: authenticated and audited.
		DisableGeneralOptionsHandler: true,
		IdleTimeout:                  s.limits.IdleTimeout,
		MaxHeaderBytes:               s.limits.MaxHeaderBytes,
		ErrorLog:                     log.New(io.Discard, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			ctx = context.WithValue(ctx, listenerKey{}, info)
			return context.WithValue(ctx, connEndKey{}, time.Now().Add(s.limits.MaxConnDuration))
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if m := s.cfg.Metrics; m != nil {
				switch st {
				case http.StateNew:
					m.ActiveConns.Inc()
				case http.StateClosed, http.StateHijacked:
					m.ActiveConns.Dec()
				}
			}
		},
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	return srv.Serve(netutil.LimitListener(ln, s.limits.MaxConns))
}

// Shutdown stops accepting connections at once, on every listener, and
// waits for in-flight requests, inside tunnels too, until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	servers := s.servers
	s.mu.Unlock()
	s.draining.Store(true)
	s.closeTunnels(true)
	errs := make([]error, len(servers)+1)
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = srv.Shutdown(ctx)
		}()
	}
	errs[len(servers)] = s.waitTunnels(ctx)
	wg.Wait()
	s.public.closeIdle()
	s.private.closeIdle()
	return errors.Join(errs...)
}

// Close closes every listener and connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	servers := s.servers
	s.mu.Unlock()
	s.draining.Store(true)
	for _, srv := range servers {
		srv.Close()
	}
	s.closeTunnels(false)
	s.public.closeIdle()
	s.private.closeIdle()
	return nil
}

// serveProxy is the front door: it authenticates the client, then hands
// a CONNECT to goproxy, which dispatches it to handleConnect, and answers
// an absolute-form request itself (exchangePlain), so that a response cut
// short upstream is cut short for the client too (goproxy's copy would
// end a chunked body as if it were whole).
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request) {
	info, _ := r.Context().Value(listenerKey{}).(*listenerInfo)
	client := "unix"
	if info != nil && info.kind != "unix" {
		client = r.RemoteAddr
	}
	if info != nil && info.requireAuth {
		name, ok := s.authenticate(r)
		if !ok {
			resp := s.refuse(r, requestTarget(r, client), ReasonAuthRequired, "", "this listener requires Proxy-Authorization: Bearer <token> (or Basic with the token as password)")
			s.write(w, r, resp)
			return
		}
		client = name
	}
	ctx := context.WithValue(r.Context(), clientKey{}, client)
	if r.Method == http.MethodConnect {
		s.gp.ServeHTTP(keepBuffered{w}, r.WithContext(ctx))
		return
	}
	// The connection's lifetime bounds the exchange, upstream too, as a
	// tunnel's does. The body may still be sent upstream while the
	// response comes back, as in a tunnel (net/http would otherwise wait
	// for its end first).
	rc := http.NewResponseController(w)
	rc.EnableFullDuplex() //nolint:errcheck // HTTP/1 supports it
	end, _ := ctx.Value(connEndKey{}).(time.Time)
	if !end.IsZero() {
		rc.SetReadDeadline(end)  //nolint:errcheck // fails only when closed
		rc.SetWriteDeadline(end) //nolint:errcheck
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, end)
		defer cancel()
	}
	// exchangePlain bounds the wait for a body's start with it; "no
	// deadline" is the connection's end.
	readDeadline := func(t time.Time) error {
		if !end.IsZero() && (t.IsZero() || t.After(end)) {
			t = end
		}
		return rc.SetReadDeadline(t)
	}
	r = r.WithContext(context.WithValue(ctx, readDeadlineKey{}, readDeadline))
	if !r.URL.IsAbs() {
		s.write(w, r, s.refuse(r, target{client: client}, ReasonBadRequest, "", "this is a proxy; send absolute-form requests or CONNECT"))
		return
	}
	s.write(w, r, s.exchangePlain(r))
}

// keepBuffered hands goproxy a hijacked CONNECT connection that first
// returns what net/http read past the CONNECT request: a client may send
// its TLS ClientHello right behind it, and goproxy drops the reader that
// Hijack returns with it.
type keepBuffered struct{ http.ResponseWriter }

func (w keepBuffered) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() == 0 {
		return conn, brw, err
	}
	early, _ := brw.Reader.Peek(brw.Reader.Buffered())
	return &earlyConn{Conn: conn, early: bytes.Clone(early)}, brw, nil
}

func (w keepBuffered) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// earlyConn returns early before what it reads from Conn.
type earlyConn struct {
	net.Conn
	early []byte
}

func (c *earlyConn) Read(p []byte) (int, error) {
	if len(c.early) > 0 {
		n := copy(p, c.early)
		c.early = c.early[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// authenticate checks Proxy-Authorization against the configured token
// digests in constant time. It accepts "Bearer <token>" and, for clients
// that only speak Basic (pip, git, npm, HTTPS_PROXY=http://name:token@...),
// Basic with the token as the password.
func (s *Server) authenticate(r *http.Request) (string, bool) {
	scheme, cred, ok := strings.Cut(r.Header.Get("Proxy-Authorization"), " ")
	if !ok {
		return "", false
	}
	var token string
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		token = strings.TrimSpace(cred)
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			return "", false
		}
		_, token, _ = strings.Cut(string(raw), ":")
	}
	if token == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(token))
	name, found := "", 0
	for _, t := range s.cfg.Tokens {
		if subtle.ConstantTimeCompare(sum[:], t.SHA256[:]) == 1 {
			name, found = t.Name, 1
		}
	}
	return name, found == 1
}

// requestTarget is the target of a request the proxy refuses before
// deciding it, for the audit record: the CONNECT authority or the URL's.
func requestTarget(r *http.Request, client string) target {
	t := target{client: client, scheme: r.URL.Scheme}
	hostport := r.URL.Host
	if r.Method == http.MethodConnect {
		t.scheme, hostport = "https", r.Host
	}
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		t.host = h
		t.port, _ = strconv.Atoi(p)
	} else {
		t.host = hostport
	}
	if c, err := match.NormalizeHost(t.host); err == nil {
		t.host = c
	}
	if t.port == 0 {
		switch t.scheme {
		case "https":
			t.port = 443
		case "http":
			t.port = 80
		}
	}
	return t
}

func clientOf(r *http.Request) string {
	if c, ok := r.Context().Value(clientKey{}).(string); ok {
		return c
	}
	return "unknown"
}
