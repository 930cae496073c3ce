package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokrun/tokrun/policy"
	"github.com/tokrun/tokrun/sealing"
)

// A pooled connection the upstream closed while it idled is not used: a
// POST, which cannot be sent twice, still succeeds on a new connection.
func TestClosedPooledConnectionIsNotUsed(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	c := h.client()
	if status, body, _ := h.do(c, newRequest(t, "GET", "https://open.example.com/a", nil)); status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	h.upstream.CloseClientConnections()
	status, body, _ := h.do(c, newRequest(t, "POST", "https://open.example.com/b", strings.NewReader("payload")))
	if status != 200 || !strings.Contains(body, "method=POST") {
		t.Fatalf("status %d: %s", status, body)
	}
	if n := h.dials.Load(); n != 2 {
		t.Fatalf("%d dials, want 2", n)
	}
}

// A pooled connection the upstream closed is never used, whatever the
// method.
func TestClosedPooledConnectionNotUsedForGET(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	c := h.client()
	for i, path := range []string{"/a", "/b", "/c"} {
		if i > 0 {
			h.upstream.CloseClientConnections()
		}
		if status, body, _ := h.do(c, newRequest(t, "GET", "https://open.example.com"+path, nil)); status != 200 || !strings.Contains(body, "path="+path) {
			t.Fatalf("%s: status %d: %s", path, status, body)
		}
	}
	if n := h.dials.Load(); n != 3 {
		t.Fatalf("%d dials, want 3", n)
	}
}

// Bytes an upstream sends on a pooled connection while it is idle are
// never taken for the next request's response, which may come from
// another tunnel.
func TestUnaskedBytesRetirePooledConnection(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/a" {
			upstreamHandler(w, r)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		brw.Flush()
		time.Sleep(100 * time.Millisecond)
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE")
		brw.Flush()
		time.Sleep(time.Second)
		conn.Close()
	}))
	if status, body, _ := h.do(h.client(), newRequest(t, "GET", "https://open.example.com/a", nil)); status != 200 || body != "ok" {
		t.Fatalf("/a: %d %q", status, body)
	}
	time.Sleep(300 * time.Millisecond)
	status, body, _ := h.do(h.client(), newRequest(t, "GET", "https://open.example.com/b", nil))
	if status != 200 || !strings.Contains(body, "path=/b") {
		t.Fatalf("/b got %d %q", status, body)
	}
}

// An upstream that answers "Connection: close" does not get the next
// request on that connection; the client's connection is not ended by it.
func TestUpstreamConnectionCloseIsHonoured(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	}))
	c := h.client()
	for i := 0; i < 2; i++ {
		if status, body, _ := h.do(c, newRequest(t, "GET", "https://open.example.com/", nil)); status != 200 || body != "bye" {
			t.Fatalf("status %d: %s", status, body)
		}
	}
	if n := h.dials.Load(); n != 2 {
		t.Fatalf("%d dials, want 2", n)
	}
	if n := strings.Count(h.audit.String(), `"method":"CONNECT"`); n != 1 {
		t.Fatalf("%d CONNECTs, want 1: the client's tunnel was closed", n)
	}
}

// An upstream may answer before it has read the request body; the answer
// reaches the client while the client is still sending, and the next
// request works. The body stops after its first 64 KiB until the answer
// has arrived, so that the client cannot have finished (or have been cut
// off) first.
func TestUpstreamAnswersBeforeReadingBody(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		io.WriteString(w, "ok")
	}))
	c := h.client()
	answered := make(chan struct{})
	body := io.MultiReader(io.LimitReader(zeros{}, 64<<10), &waitReader{wait: answered, r: io.LimitReader(zeros{}, 8<<20-64<<10)})
	req := newRequest(t, "POST", "https://open.example.com/upload", body)
	req.ContentLength = 8 << 20
	var once sync.Once
	var gaveUp atomic.Bool
	release := func() { once.Do(func() { close(answered) }) }
	timer := time.AfterFunc(30*time.Second, func() { gaveUp.Store(true); release() })
	defer timer.Stop()
	resp, err := c.Do(req)
	release()
	if gaveUp.Load() {
		t.Fatal("the upstream's early answer reached the client only after the whole body was sent")
	}
	if err != nil {
		t.Fatalf("the upstream's early answer did not reach the client: %v\n%s", err, h.audit.String()+h.logs.String())
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d %s %s\n%s", resp.StatusCode, resp.Header.Get("X-Tokrun-Reason"), resp.Header.Get("X-Tokrun-Rule"), h.audit.String()+h.logs.String())
	}
	if status, body, _ := h.do(c, newRequest(t, "GET", "https://open.example.com/next", nil)); status != 200 || body != "ok" {
		t.Fatalf("status %d: %s", status, body)
	}
}

// waitReader reads from r once wait is closed.
type waitReader struct {
	wait <-chan struct{}
	r    io.Reader
}

func (w *waitReader) Read(p []byte) (int, error) {
	<-w.wait
	return w.r.Read(p)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// A request body is relayed whole, also when the client waits for
// "100 Continue".
func TestRequestBodyWithExpectContinue(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "got %d", n)
	}))
	c := h.client()
	c.Transport.(*http.Transport).ExpectContinueTimeout = 10 * time.Second
	for _, size := range []int64{0, 1, 100 << 10} {
		req := newRequest(t, "PUT", "https://open.example.com/put", io.LimitReader(zeros{}, size))
		req.ContentLength = size
		req.Header.Set("Expect", "100-continue")
		if status, body, _ := h.do(c, req); status != 200 || body != fmt.Sprintf("got %d", size) {
			t.Fatalf("size %d: status %d: %s", size, status, body)
		}
	}
}

// A client that gives up ends the upstream request, as it did with
// net/http's transport.
func TestClientCancelReachesUpstream(t *testing.T) {
	arrived, cancelled := make(chan struct{}), make(chan struct{})
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(30 * time.Second):
		}
	}))
	ctx, cancel := context.WithCancel(context.Background())
	req := newRequest(t, "GET", "https://open.example.com/slow", nil).WithContext(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := h.client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-arrived
	cancel()
	<-done
	select {
	case <-cancelled:
	case <-time.After(20 * time.Second):
		t.Fatal("the upstream request outlived the client's")
	}
}

// Upstream response headers are bounded.
func TestUpstreamHeadersBounded(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\n")
		for i := 0; i < 4096; i++ {
			fmt.Fprintf(brw, "X-Filler-%d: %s\r\n", i, strings.Repeat("a", 64))
		}
		brw.WriteString("Content-Length: 0\r\n\r\n")
		brw.Flush()
	}))
	status, _, reason := h.do(h.client(), newRequest(t, "GET", "https://open.example.com/", nil))
	if status != 502 || reason != "upstream_unreachable" {
		t.Fatalf("status %d reason %q", status, reason)
	}
}

// An upstream that accepts a connection but never completes the TLS
// handshake gets 504 after the handshake timeout.
func TestUpstreamHandshakeTimeout(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held sync.WaitGroup
	held.Add(1)
	go func() {
		defer held.Done()
		c, err := silent.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	defer held.Wait()
	h := newHarness(t, basicPolicy, nil, func(_ *harness, c *Config) {
		c.Limits.TLSHandshakeTimeout = 200 * time.Millisecond
		c.Dialer.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, silent.Addr().String())
		}
	})
	status, _, reason := h.do(h.client(), newRequest(t, "GET", "https://open.example.com/", nil))
	if status != 504 || reason != "upstream_timeout" {
		t.Fatalf("status %d reason %q", status, reason)
	}
}

// Idle upstream connections are closed after IdleTimeout, and at most
// MaxIdleConnsPerHost of them are kept.
func TestUpstreamPoolLimits(t *testing.T) {
	closed := make(chan struct{}, 16)
	release := make(chan struct{})
	arrived := make(chan struct{}, 4)
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	}), func(_ *harness, c *Config) {
		c.Limits.MaxIdleConnsPerHost = 2
		c.Limits.IdleTimeout = 300 * time.Millisecond
		notifyCloses(c, closed)
	})
	c := h.client()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := c.Get("https://open.example.com/hold"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	for i := 0; i < 4; i++ {
		<-arrived
	}
	close(release)
	wg.Wait()
	// Four connections: the full pool closes two at once, the other two
	// are closed once they have idled.
	for i := 0; i < 4; i++ {
		select {
		case <-closed:
		case <-time.After(20 * time.Second):
			t.Fatalf("the proxy closed %d of 4 upstream connections", i)
		}
	}
	if n := h.dials.Load(); n != 4 {
		t.Fatalf("%d dials, want 4", n)
	}
}

// notifyCloses makes every upstream connection c's dialer opens report
// its closing on closed.
func notifyCloses(c *Config, closed chan<- struct{}) {
	dial := c.Dialer.Dial
	c.Dialer.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &notifyClose{Conn: conn, closed: closed}, nil
	}
}

type notifyClose struct {
	net.Conn
	once   sync.Once
	closed chan<- struct{}
}

func (c *notifyClose) Close() error {
	c.once.Do(func() { c.closed <- struct{}{} })
	return c.Conn.Close()
}

// A pooled connection's idle timer is set once: a connection used again
// and again, or held longer than IdleTimeout by a slow exchange, is not
// closed while it is in use or has idled less than IdleTimeout; once left
// alone, it is closed.
func TestIdleTimerFollowsUse(t *testing.T) {
	closed := make(chan struct{}, 4)
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(1500 * time.Millisecond)
		}
		io.WriteString(w, "ok")
	}), func(_ *harness, c *Config) {
		c.Limits.IdleTimeout = time.Second
		notifyCloses(c, closed)
	})
	c := h.client()
	get := func(path string) {
		t.Helper()
		resp, err := c.Get("https://open.example.com" + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get("/")
	// Used every 100 ms for 2.5 s: the timer fires while the connection
	// has idled less than IdleTimeout, and must wait.
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		get("/")
	}
	// Held for longer than IdleTimeout: the timer fires while it is in use.
	get("/slow")
	get("/")
	if n := h.dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1: a connection in use or idle less than IdleTimeout was closed", n)
	}
	select {
	case <-closed:
		t.Fatal("the connection was closed while in use")
	default:
	}
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the idle connection was never closed")
	}
}

// An exchange cancelled before it is sent takes no pooled connection:
// the pool keeps what it holds, and nothing is dialled.
func TestCancelledExchangeLeavesPoolAlone(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	var dials atomic.Int32
	u := newUpstream(func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}, &tls.Config{RootCAs: roots}, Limits{}.withDefaults())
	defer u.closeIdle()
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	k := upKey{scheme: "https", host: "127.0.0.1", port: p}
	get := func(h *cancelHook) error {
		req := &http.Request{Method: "GET", URL: &url.URL{Scheme: "https", Host: "127.0.0.1:" + port, Opaque: "/"},
			Host: "127.0.0.1:" + port, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Body: http.NoBody}
		resp, err := u.roundTrip(h, req, k)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	if err := get(new(cancelHook)); err != nil {
		t.Fatal(err)
	}
	cancelled := new(cancelHook)
	cancelled.cancel()
	if err := get(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled exchange: %v, want context.Canceled", err)
	}
	u.mu.Lock()
	idle := u.nidle
	u.mu.Unlock()
	if idle != 1 || dials.Load() != 1 {
		t.Fatalf("after a cancelled exchange: %d idle, %d dials; want 1 and 1", idle, dials.Load())
	}
	if err := get(new(cancelHook)); err != nil || dials.Load() != 1 {
		t.Fatalf("the pooled connection was not reused: %v, %d dials", err, dials.Load())
	}
}

// desyncUpstream serves each connection in a loop of its own, as servers
// that get framing wrong do: it never reads a request body, so a body is
// read as the start of the next request (CL.0), and it ignores
// "Connection: close". On later requests on a connection it can also
// answer with the Authorization header the connection's first request
// carried (stale), as a response meant for an earlier request would.
// It records each request it parsed.
type desyncUpstream struct {
	stale bool
	conns atomic.Int32
	mu    sync.Mutex
	seen  []string // "conn=N METHOD PATH auth=... close=..."
}

func (u *desyncUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	id := u.conns.Add(1)
	first := r.Header.Get("Authorization")
	for n := 0; ; n++ {
		auth := r.Header.Get("Authorization")
		switch auth {
		case "":
			auth = "none"
		case "Bearer " + testSecret:
			auth = "INJECTED"
		}
		u.mu.Lock()
		u.seen = append(u.seen, fmt.Sprintf("conn=%d %s %s auth=%s close=%v", id, r.Method, r.URL.Path, auth, r.Close))
		u.mu.Unlock()
		body := "path=" + r.URL.Path
		if u.stale && n > 0 {
			body = "stale auth=" + first
		}
		fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		if brw.Flush() != nil {
			return
		}
		if r, err = http.ReadRequest(brw.Reader); err != nil {
			return
		}
	}
}

func (u *desyncUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

// A request body cannot smuggle a request of its own to an upstream that
// does not read bodies: the next request's head, secret included, would
// complete it. A request with a body is sent with "Connection: close" and
// its connection is not used again.
func TestBodyCannotSmuggleARequest(t *testing.T) {
	u := &desyncUpstream{}
	h := newHarness(t, basicPolicy, u)
	c := h.client()
	smuggled := "GET /v1/admin/keys HTTP/1.0\r\nX-Ignore: "
	if status, body, _ := h.do(c, newRequest(t, "GET", "https://api.example.com/v1/a", strings.NewReader(smuggled))); status != 200 || body != "path=/v1/a" {
		t.Fatalf("/v1/a: %d %q", status, body)
	}
	if status, body, _ := h.do(c, newRequest(t, "GET", "https://api.example.com/v1/b", nil)); status != 200 || body != "path=/v1/b" {
		t.Errorf("/v1/b: %d %q", status, body)
	}
	want := []string{"conn=1 GET /v1/a auth=INJECTED close=true", "conn=2 GET /v1/b auth=INJECTED close=false"}
	if got := u.requests(); !slices.Equal(got, want) {
		t.Fatalf("the upstream parsed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	h.checkNoSecret()
}

const twoRulesOneHost = `
version: 1
secrets:
  api:
    sealed: SEALED
rules:
  - name: api
    host: api.example.com
    paths: ["/v1/**"]
    inject: [api]
  - name: public
    host: api.example.com
    paths: ["/public/**"]
`

// Upstream connections are pooled apart per set of secrets injected and
// per client: a response an upstream sends for an earlier request on the
// connection reaches only the client that sent requests there, scrubbed
// of the same secrets.
func TestPooledConnectionsKeptApart(t *testing.T) {
	u := &desyncUpstream{stale: true}
	h := newHarness(t, twoRulesOneHost, u)
	c := h.client()
	get := func(c *http.Client, path string) string {
		t.Helper()
		status, body, _ := h.do(c, newRequest(t, "GET", "https://api.example.com"+path, nil))
		if status != 200 {
			t.Fatalf("%s: %d %q", path, status, body)
		}
		if strings.Contains(body, testSecret) {
			t.Fatalf("%s: the client got the secret: %q", path, body)
		}
		return body
	}
	get(c, "/v1/a")
	// A rule that injects nothing: its response is not scrubbed, so it
	// must not come from a connection that carried the secret.
	if body := get(c, "/public/b"); body != "path=/public/b" {
		t.Errorf("/public/b got %q, the answer to another rule's request", body)
	}
	// Another client (the Unix socket's).
	if body := get(h.unixClient(), "/v1/c"); body != "path=/v1/c" {
		t.Errorf("/v1/c from another client got %q, the answer to another client's request", body)
	}
	// The same client and secrets: the pooled connection, scrubbed.
	if body := get(c, "/v1/d"); !strings.HasPrefix(body, "stale auth=Bearer ") {
		t.Errorf("/v1/d got %q", body)
	}
	want := []string{
		"conn=1 GET /v1/a auth=INJECTED close=false",
		"conn=2 GET /public/b auth=none close=false",
		"conn=3 GET /v1/c auth=INJECTED close=false",
		"conn=1 GET /v1/d auth=INJECTED close=false",
	}
	if got := u.requests(); !slices.Equal(got, want) {
		t.Fatalf("the upstream parsed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	h.checkNoSecret()
}

// A secret rotated by a policy reload (same name, new value) does not
// share pooled connections with its old value: a late answer echoing the
// old value would be scrubbed only of the new one.
func TestPooledConnectionsKeptApartAcrossRotation(t *testing.T) {
	u := &desyncUpstream{stale: true}
	var cur atomic.Pointer[policy.Policy]
	h := newHarness(t, twoRulesOneHost, u, func(_ *harness, c *Config) {
		first := c.Policy
		c.Policy = func() *policy.Policy {
			if p := cur.Load(); p != nil {
				return p
			}
			return first()
		}
	})
	c := h.client()
	get := func(path, want string) {
		t.Helper()
		status, body, _ := h.do(c, newRequest(t, "GET", "https://api.example.com"+path, nil))
		if status != 200 || body != want {
			t.Errorf("%s: %d %q, want %q", path, status, body, want)
		}
	}
	get("/v1/a", "path=/v1/a")
	keys := testKeys(t)
	rotated, err := sealing.Seal(rand.Reader, keys.PublicKeys()[0], sealing.Binding{
		Name: "api", Hosts: []string{"api.example.com"}, Header: "Authorization", Format: "Bearer {}",
	}, "sk-test-ROTATED-0123456789abcdef", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse("rotated.yaml", []byte(strings.ReplaceAll(twoRulesOneHost, "SEALED", rotated)), policy.Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	cur.Store(pol)
	get("/v1/b", "path=/v1/b") // on a new connection: not the old value's stale answer
	if got := u.requests(); len(got) != 2 || !strings.HasPrefix(got[1], "conn=2 ") {
		t.Fatalf("the upstream parsed %q: the rotated secret used the old value's connection", got)
	}
	h.checkNoSecret()
}

// Client names that would be taken for another kind of client are
// refused: "unix", an IP address, a name with ":".
func TestTokenNamesAreUnambiguous(t *testing.T) {
	ca, err := NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse("p.yaml", []byte("version: 1\nrules: []\n"), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"unix", "127.0.0.1", "::1", "agent:1", ""} {
		_, err := New(Config{Policy: func() *policy.Policy { return pol }, CA: ca, Tokens: []Token{{Name: name}}})
		if err == nil || !strings.Contains(err.Error(), "token name") {
			t.Errorf("token name %q: %v, want a refusal", name, err)
		}
	}
	srv, err := New(Config{Policy: func() *policy.Policy { return pol }, CA: ca, Tokens: []Token{{Name: "agent-1.x"}}})
	if err != nil {
		t.Fatalf("an ordinary name: %v", err)
	}
	srv.Close()
}

// A new upstream connection (each request with a body gets one) resumes
// the TLS session of an earlier one rather than repeating the full
// handshake.
func TestUpstreamTLSSessionsResumed(t *testing.T) {
	var mu sync.Mutex
	var resumed []bool
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		resumed = append(resumed, r.TLS.DidResume)
		mu.Unlock()
		io.Copy(io.Discard, r.Body)
	}))
	c := h.client()
	for i := 0; i < 3; i++ {
		if status, body, _ := h.do(c, newRequest(t, "POST", "https://api.example.com/v1/x", strings.NewReader("{}"))); status != 200 {
			t.Fatalf("POST %d: %d %q", i, status, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := h.dials.Load(); n != 3 || !slices.Equal(resumed, []bool{false, true, true}) {
		t.Fatalf("%d dials, resumed %v; want 3 dials, the last two resumed", n, resumed)
	}
}
