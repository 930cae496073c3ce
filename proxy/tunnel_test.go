package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokrun/tokrun/policy"
	"github.com/tokrun/tokrun/sealing"
)

// readResponse reads one response from a tunnel and its whole body.
func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// A second request sent while the first is still being answered, after
// the connection has begun to be watched (the watch takes its first
// byte), is served, whole, after it.
func TestPipelinedRequestWhileWatched(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(4 * watchAfter)
		}
		upstreamHandler(w, r)
	}))
	tc := h.tunnel(t, "open.example.com")
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(tc, "GET /slow HTTP/1.1\r\nHost: open.example.com\r\n\r\n")
	time.Sleep(2 * watchAfter)
	io.WriteString(tc, "GET /fast HTTP/1.1\r\nHost: open.example.com\r\n\r\n")
	br := bufio.NewReader(tc)
	for _, path := range []string{"/slow", "/fast"} {
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || !strings.Contains(body, "path="+path) {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
}

// A refused request's small body is read and discarded, so the client
// keeps its connection; a large one closes the connection after the
// refusal, which still arrives whole.
func TestRefusedBodyAndTheConnection(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	for _, tt := range []struct {
		size int
		keep bool
	}{{10 << 10, true}, {4 << 20, false}} {
		tc := h.tunnel(t, "api.example.com")
		tc.SetDeadline(time.Now().Add(20 * time.Second))
		go func() {
			// One write: the small body arrives with the head, before the
			// refusal, and the next request cannot overtake it.
			head := fmt.Sprintf("POST /v2/x HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: %d\r\n\r\n", tt.size)
			tc.Write(append([]byte(head), make([]byte, tt.size)...)) //nolint:errcheck // fails once the proxy closes
		}()
		br := bufio.NewReader(tc)
		resp, body := readResponse(t, br, "POST")
		if resp.StatusCode != 403 || resp.Header.Get("X-Tokrun-Reason") != "path_not_allowed" {
			t.Fatalf("%d bytes: %d %q", tt.size, resp.StatusCode, body)
		}
		if resp.Close == tt.keep {
			t.Errorf("%d bytes: Connection: close is %v", tt.size, resp.Close)
		}
		if tt.keep {
			io.WriteString(tc, "GET /v1/models HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
			if resp, body := readResponse(t, br, "GET"); resp.StatusCode != 200 || !strings.Contains(body, "auth=\"INJECTED\"") {
				t.Errorf("the next request on the connection: %d %q", resp.StatusCode, body)
			}
		}
		tc.Close()
	}
}

// An HTTP/1.0 client gets a response it can frame: a streamed body of
// unknown length ends with the connection, never in chunks.
func TestHTTP10ClientInsideTunnel(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part one, ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part two")
	}))
	tc := h.tunnel(t, "open.example.com")
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(tc, "GET /stream HTTP/1.0\r\nHost: open.example.com\r\n\r\n")
	raw, err := io.ReadAll(tc)
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := strings.Cut(string(raw), "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.1 200 ") || strings.Contains(strings.ToLower(head), "chunked") || body != "part one, part two" {
		t.Fatalf("response:\n%s", raw)
	}
}

// A request the proxy cannot parse is refused with a reason and recorded.
func TestMalformedRequestInsideTunnel(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	for _, tt := range []struct{ name, req, why string }{
		{"garbage", "NOT A REQUEST\r\n\r\n", "malformed request"},
		{"no host", "GET / HTTP/1.1\r\n\r\n", "missing Host header"},
		{"bad header", "GET / HTTP/1.1\r\nHost: open.example.com\r\nX-Bad: a\x01b\r\n\r\n", ""},
		{"expect", "PUT / HTTP/1.1\r\nHost: open.example.com\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", "only Expect: 100-continue"},
		{"http2", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "only HTTP/1.x"},
	} {
		tc := h.tunnel(t, "open.example.com")
		tc.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(tc, tt.req)
		resp, body := readResponse(t, bufio.NewReader(tc), "GET")
		tc.Close()
		if resp.StatusCode != 400 || resp.Header.Get("X-Tokrun-Reason") != "bad_request" || !strings.Contains(body, tt.why) {
			t.Errorf("%s: %d %q", tt.name, resp.StatusCode, body)
		}
	}
	if h.dials.Load() != 0 {
		t.Error("a malformed request reached the upstream")
	}
	h.waitAudit(t, `"reason":"bad_request"`)
}

// Shutdown closes idle tunnels at once and lets one with a request in
// flight finish its response, then close.
func TestShutdownDrainsTunnels(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		upstreamHandler(w, r)
	}))
	idle := h.tunnel(t, "open.example.com")
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(20 * time.Second))
	idleBR := bufio.NewReader(idle)
	io.WriteString(idle, "GET /first HTTP/1.1\r\nHost: open.example.com\r\n\r\n")
	readResponse(t, idleBR, "GET")

	busy := h.tunnel(t, "open.example.com")
	defer busy.Close()
	busy.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: open.example.com\r\n\r\n")
	<-arrived

	stopped := make(chan error, 1)
	go func() { stopped <- h.srv.Shutdown(context.Background()) }()
	if _, err := idleBR.ReadByte(); err == nil {
		t.Error("the idle tunnel sent something after Shutdown")
	}
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned with a request in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	br := bufio.NewReader(busy)
	resp, body := readResponse(t, br, "GET")
	if resp.StatusCode != 200 || !strings.Contains(body, "path=/slow") || !resp.Close {
		t.Errorf("in-flight request: %d close=%v %q", resp.StatusCode, resp.Close, body)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the drained tunnel stayed open")
	}
}

// wsHold answers a WebSocket handshake and holds the connection until the
// proxy closes it.
func wsHold(w http.ResponseWriter, r *http.Request) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	brw.Flush()
	io.Copy(io.Discard, brw)
}

const wsRequest = "GET /ws HTTP/1.1\r\nHost: open.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
	"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

// A WebSocket upgrade request with a body is refused before anything is
// dialled: after the switch the connection carries frames, and the body
// would be read twice.
func TestUpgradeWithBodyRefused(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(wsHold))
	tc := h.tunnel(t, "open.example.com")
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(tc, wsRequest+"Content-Length: 5\r\n\r\nhello")
	resp, body := readResponse(t, bufio.NewReader(tc), "GET")
	if resp.StatusCode != 400 || resp.Header.Get("X-Tokrun-Reason") != "bad_request" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if h.dials.Load() != 0 {
		t.Error("the upgrade with a body reached the upstream")
	}
}

// An open WebSocket relay does not hold Shutdown: it is closed, as a
// hijacked connection was by net/http's server.
func TestShutdownClosesWebSocketRelay(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(wsHold))
	tc := h.tunnel(t, "open.example.com")
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(tc, wsRequest+"\r\n")
	br := bufio.NewReader(tc)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a WebSocket open: %v", err)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the relay stayed open")
	}
}

// A tunnel's lifetime limit ends its exchange too, even one whose
// upstream has stopped reading the request body.
func TestTunnelLifetimeEndsExchange(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // never reads the body
	}), func(_ *harness, c *Config) { c.Limits.MaxConnDuration = 500 * time.Millisecond })
	tc := h.tunnel(t, "open.example.com")
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		io.WriteString(tc, "POST /up HTTP/1.1\r\nHost: open.example.com\r\nContent-Length: 100000000\r\n\r\n")
		chunk := make([]byte, 64<<10)
		for {
			if _, err := tc.Write(chunk); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	time.Sleep(time.Second)
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("the exchange outlived its tunnel's lifetime: Shutdown: %v", err)
	}
}

// A tunnel remembers only what passed: a later request with another Host
// or authority is still refused (421), and a decision made under one
// policy is not reused under the next.
func TestTunnelRemembersOnlyWhatPassed(t *testing.T) {
	pols := map[string]*policy.Policy{}
	var cur atomic.Pointer[policy.Policy]
	h := newHarness(t, basicPolicy, nil, func(h *harness, c *Config) {
		for name, extra := range map[string]string{"open": "", "closed": "\n  - name: no-x\n    host: api.example.com\n    paths: [\"/v1/x\"]\n"} {
			p, err := policy.Parse(name+".yaml", []byte(strings.ReplaceAll(basicPolicy, "SEALED", h.sealed)+extra), policy.Options{Keys: testKeys(t)})
			if err != nil {
				t.Fatal(err)
			}
			pols[name] = p
		}
		cur.Store(pols["open"])
		c.Policy = cur.Load
	})
	tc := h.tunnel(t, "api.example.com")
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(tc)
	send := func(req string) (int, string) {
		t.Helper()
		io.WriteString(tc, req)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Tokrun-Reason")
	}
	for _, tt := range []struct {
		req    string
		pol    string
		status int
		reason string
	}{
		{"GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "open", 200, ""},
		{"DELETE /v1/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "open", 403, "method_not_allowed"},
		{"GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "open", 200, ""},
		{"GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "closed", 403, "denied_by_rule"},
		{"GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "open", 200, ""},
		{"GET https://open.example.com/v1/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "open", 421, "host_mismatch"},
	} {
		cur.Store(pols[tt.pol])
		if status, reason := send(tt.req); status != tt.status || reason != tt.reason {
			t.Fatalf("%q under %s: %d %q, want %d %q", tt.req, tt.pol, status, reason, tt.status, tt.reason)
		}
	}
	// Another Host on a tunnel whose last request passed.
	tc2 := h.tunnel(t, "api.example.com")
	defer tc2.Close()
	tc2.SetDeadline(time.Now().Add(20 * time.Second))
	tc, br = tc2, bufio.NewReader(tc2)
	if status, _ := send("GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"); status != 200 {
		t.Fatalf("first request: %d", status)
	}
	if status, reason := send("GET /v1/x HTTP/1.1\r\nHost: open.example.com\r\n\r\n"); status != 421 || reason != "host_mismatch" {
		t.Fatalf("another Host after one that passed: %d %q", status, reason)
	}
}

// A tunnel's repeated request is not allowed from its last decision once
// the secret that decision injected has expired.
func TestTunnelDecisionEndsWithItsSecret(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	expiry := time.Unix(0, now.Load()).Add(time.Hour).Truncate(time.Second) // sealed to the second
	h := newHarness(t, basicPolicy, nil, func(h *harness, c *Config) {
		keys := testKeys(t)
		sealed, err := sealing.Seal(rand.Reader, keys.PublicKeys()[0], sealing.Binding{
			Name: "api", Hosts: []string{"api.example.com"}, Header: "Authorization", Format: "Bearer {}", NotAfter: expiry,
		}, testSecret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		p, err := policy.Parse("expiring.yaml", []byte(strings.ReplaceAll(basicPolicy, "SEALED", sealed)),
			policy.Options{Keys: keys, Now: func() time.Time { return time.Unix(0, now.Load()) }})
		if err != nil {
			t.Fatal(err)
		}
		c.Policy = func() *policy.Policy { return p }
	})
	tc := h.tunnel(t, "api.example.com")
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(tc)
	for _, tt := range []struct {
		at     time.Time
		status int
		reason string
	}{
		{expiry.Add(-time.Minute), 200, ""},
		{expiry, 200, ""},
		{expiry.Add(time.Second), 403, "secret_expired"},
	} {
		now.Store(tt.at.UnixNano())
		io.WriteString(tc, "GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("X-Tokrun-Reason") != tt.reason {
			t.Fatalf("at %s: %d %q, want %d %q", tt.at, resp.StatusCode, resp.Header.Get("X-Tokrun-Reason"), tt.status, tt.reason)
		}
	}
}

// A placeholder registered while a tunnel is open is caught on that
// tunnel's next request: what a tunnel remembers of the secrets ends with
// the index it came from.
func TestTunnelSeesPlaceholdersRegisteredLater(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	tc := h.tunnel(t, "open.example.com")
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(tc)
	const ph = "tokrun-ph-late-0123456789"
	for i, want := range []int{200, 403} {
		if i == 1 {
			if err := h.srv.AddPlaceholders("api", ph); err != nil {
				t.Fatal(err)
			}
		}
		io.WriteString(tc, "GET /x HTTP/1.1\r\nHost: open.example.com\r\nX-Key: "+ph+"\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || want == 403 && resp.Header.Get("X-Tokrun-Reason") != "tripwire" {
			t.Fatalf("request %d: %d %q, want %d", i, resp.StatusCode, resp.Header.Get("X-Tokrun-Reason"), want)
		}
	}
}

// A cancelled exchange ends its tunnel: after a tripwire that fired late,
// once the response had ended whole on a connection that could be kept,
// the client's next request on the connection is not served.
func TestCancelledExchangeEndsTunnel(t *testing.T) {
	h := newHarness(t, tripPolicy, lateTripUpstream(make(chan string, 1), true))
	tc := h.tunnel(t, "open.example.com")
	defer tc.Close()
	br := bufio.NewReader(tc)
	if resp := uploadAfterAnswer(t, h, tc, br); resp.Close {
		t.Fatal("the response closed the connection: the tunnel would end anyway")
	}
	io.WriteString(tc, "GET /next HTTP/1.1\r\nHost: open.example.com\r\n\r\n")
	tc.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("the tunnel served a request after its exchange was cancelled: %d %s", resp.StatusCode, resp.Header.Get("X-Tokrun-Reason"))
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatal("the tunnel neither ended nor answered after its exchange was cancelled")
	}
}
