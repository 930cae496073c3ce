package proxy

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokrun/tokrun/policy"
	"github.com/tokrun/tokrun/sealing"
)

// Regression tests for findings of a security review: each was a way for
// a secret or a placeholder to get where it must not.

// An upstream that compresses its echo although identity was asked for:
// the proxy decompresses and scrubs; other encodings are refused.
func TestCompressedEchoIsScrubbedOrRefused(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/br") {
			w.Header().Set("Content-Encoding", "br")
			fmt.Fprintf(w, "opaque %s", r.Header.Get("Authorization"))
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		fmt.Fprintf(gz, "you sent %s (Accept-Encoding=%q)", r.Header.Get("Authorization"), r.Header.Get("Accept-Encoding"))
		gz.Close()
	}))
	status, body, _ := h.do(h.client(), newRequest(t, "GET", "https://api.example.com/v1/echo", nil))
	if status != 200 || strings.Contains(body, testSecret) || !strings.Contains(body, `you sent Bearer tokrun-redacted-api (Accept-Encoding="identity")`) {
		t.Fatalf("gzip: status %d body %q", status, body)
	}
	status, body, reason := h.do(h.client(), newRequest(t, "GET", "https://api.example.com/v1/echo/br", nil))
	if status != 502 || reason != "response_unscannable" || strings.Contains(body, testSecret) {
		t.Fatalf("br: status %d reason %q body %q", status, reason, body)
	}
	h.checkNoSecret()
}

// WebSocket frames cannot be scrubbed, so rules that inject a secret
// refuse upgrades.
func TestWebSocketRefusedOnRulesWithSecrets(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframe-with %s", r.Header.Get("Authorization"))
		brw.Flush()
		time.Sleep(100 * time.Millisecond)
	}))
	req := newRequest(t, "GET", "https://api.example.com/v1/realtime", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	status, body, reason := h.do(h.client(), req)
	if status != 403 || reason != "upgrade_with_secret" || strings.Contains(body, testSecret) {
		t.Fatalf("status %d reason %q body %q", status, reason, body)
	}
	if h.dials.Load() != 0 {
		t.Fatal("the upgrade reached the upstream")
	}
}

// A malformed upstream header that echoes the secret makes the transport
// fail with an error quoting it; the audit log records only the reason.
func TestAuditNeverQuotesUpstreamErrors(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nX-Debug %s\r\nContent-Length: 0\r\n\r\n", r.Header.Get("Authorization"))
		brw.Flush()
	}))
	status, body, _ := h.do(h.client(), newRequest(t, "GET", "https://api.example.com/v1/x", nil))
	if status != 502 || strings.Contains(body, testSecret) {
		t.Fatalf("status %d body %q", status, body)
	}
	if !strings.Contains(h.audit.String(), `"error":"could not complete the request to api.example.com:443"`) {
		t.Fatalf("audit:\n%s", h.audit.String())
	}
	h.checkNoSecret()
}

// The tripwire looks at what is sent, not only at what the client wrote:
// a percent-encoded placeholder in the path, the query, the host name;
// and request trailers are never forwarded.
func TestTripwireSeesDecodedTarget(t *testing.T) {
	var got []string
	pol := strings.Replace(tripPolicy, "deny:", "  - name: wild\n    host: \"*.wild.example.com\"\ndeny:", 1)
	h := newHarness(t, pol, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got = append(got, r.Host+r.URL.RequestURI()+" trailer="+r.Trailer.Get("X-Exfil"))
	}))
	enc := "%74" + placeholder[1:]
	for _, u := range []string{
		"https://open.example.com/x/" + enc,
		"https://open.example.com/x?q=" + enc,
		"https://" + placeholder + ".wild.example.com/",
		"https://" + strings.ToUpper(placeholder) + ".wild.example.com/",
	} {
		status, _, reason := h.do(h.client(), newRequest(t, "GET", u, nil))
		if status != 403 || reason != "tripwire" {
			t.Errorf("%s: status %d reason %q", u, status, reason)
		}
	}
	req := newRequest(t, "POST", "https://open.example.com/x", strings.NewReader("hello"))
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Exfil": {placeholder}}
	h.do(h.client(), req)
	for _, g := range got {
		if strings.Contains(strings.ToLower(g), strings.ToLower(placeholder)) {
			t.Errorf("placeholder reached a foreign host: %s", g)
		}
	}
}

// Deny rules also catch the spellings some servers fold together.
func TestDenyRuleCatchesLooseSpellings(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	for _, p := range []string{"/v1/admin/x", "/v1/ADMIN/x", "/v1/admin;a=b/x", "/v1/admin./x"} {
		status, _, reason := h.do(h.client(), newRequest(t, "GET", "https://api.example.com"+p, nil))
		if status != 403 || reason != "denied_by_rule" {
			t.Errorf("%s: status %d reason %q", p, status, reason)
		}
	}
	if h.dials.Load() != 0 {
		t.Fatal("a denied spelling reached the upstream")
	}
}

// A body that trickles in too slowly to be scanned before dialling is cut
// off instead of holding the connection.
func TestTrickledBodyTimesOut(t *testing.T) {
	h := newHarness(t, tripPolicy, nil, func(_ *harness, c *Config) { c.Limits.BodyPeekTimeout = 200 * time.Millisecond })
	pr, pw := io.Pipe()
	defer pw.Close()
	go io.WriteString(pw, "start of a body that never ends")
	req := newRequest(t, "POST", "https://open.example.com/upload", pr)
	req.ContentLength = 1 << 20
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := h.client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a trickling body held the request for 20s")
	}
	if h.dials.Load() != 0 {
		t.Fatal("a body that never arrived was sent upstream")
	}
}

// A late failure (the response cannot be scanned) is one decision, a
// denial, and its audit record still names the rule and the secret sent.
func TestLateFailureIsOneDecision(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "br")
		io.WriteString(w, "opaque")
	}))
	if status, _, reason := h.do(h.client(), newRequest(t, "GET", "https://api.example.com/v1/x", nil)); status != 502 || reason != "response_unscannable" {
		t.Fatalf("status %d reason %q", status, reason)
	}
	if got := testutil.ToFloat64(h.metrics.Decisions.WithLabelValues("allow", "api", "allowed")); got != 1 { // the CONNECT only
		t.Fatalf("allow decisions %v, want 1", got)
	}
	if got := testutil.ToFloat64(h.metrics.Decisions.WithLabelValues("deny", "api", "response_unscannable")); got != 1 {
		t.Fatalf("unscannable decisions %v, want 1", got)
	}
	h.waitAudit(t, `"rule":"api","method":"GET","scheme":"https","host":"api.example.com","port":443,"path":"/v1/x","secrets":["api"],"status":502`)
}

// Placeholders registered at run time (tokrun's per-run ones) trip the
// tripwire and are what scrubbing puts in place of the secret.
func TestRegisteredPlaceholders(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(echoHandler))
	srv := h.srv
	if err := srv.AddPlaceholders("api", "bad placeholder"); err == nil {
		t.Fatal("invalid placeholder accepted")
	}
	const runPH = "tokrun-run-ph-0123456789"
	if err := srv.AddPlaceholders("api", runPH); err != nil {
		t.Fatal(err)
	}
	status, _, reason := h.do(h.client(), withHeader(newRequest(t, "GET", "https://open.example.com/", nil), "X-Key", runPH))
	if status != 403 || reason != "tripwire" {
		t.Fatalf("foreign host: status %d reason %q", status, reason)
	}
	status, body, _ := h.do(h.client(), newRequest(t, "GET", "https://api.example.com/v1/echo/raw", nil))
	if status != 200 || !strings.Contains(body, "Hello "+runPH+"!") {
		t.Fatalf("scrubbed echo: status %d body %q", status, body)
	}
}

// An encoding the proxy cannot scan is refused with a fixed explanation:
// the upstream can echo the secret into Content-Encoding itself, and the
// refusal must not quote it back (in any case: the value is folded).
func TestUnscannableEncodingIsNotQuoted(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "x-echo "+r.Header.Get("Authorization"))
		io.WriteString(w, "hello")
	}))
	status, body, reason := h.do(h.client(), newRequest(t, "GET", "https://api.example.com/v1/x", nil))
	if status != 502 || reason != "response_unscannable" || strings.Contains(strings.ToLower(body), strings.ToLower(testSecret)) {
		t.Fatalf("status %d reason %q body %q", status, reason, body)
	}
	if !strings.Contains(h.audit.String(), `"error":"the upstream answered with a Content-Encoding other than gzip`) {
		t.Fatalf("audit:\n%s", h.audit.String())
	}
	h.checkNoSecret()
}

// Content-Encoding lines form one list: "identity" then "gzip" on two
// lines is gzip (decoded and scrubbed), and gzip twice is refused; the
// first line alone would have let a compressed echo through.
func TestEveryContentEncodingLineCounts(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Encoding"] = []string{"identity", "gzip"}
		if strings.HasSuffix(r.URL.Path, "/twice") {
			w.Header()["Content-Encoding"] = []string{"gzip", "gzip"}
		}
		gz := gzip.NewWriter(w)
		if strings.HasSuffix(r.URL.Path, "/twice") {
			gz2 := gzip.NewWriter(gz)
			fmt.Fprintf(gz2, "you sent %s", r.Header.Get("Authorization"))
			gz2.Close()
		} else {
			fmt.Fprintf(gz, "you sent %s", r.Header.Get("Authorization"))
		}
		gz.Close()
	}))
	c := h.client()
	c.Transport.(*http.Transport).DisableCompression = true // show the bytes as sent
	resp, err := c.Do(newRequest(t, "GET", "https://api.example.com/v1/x", nil))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(resp.Header.Values("Content-Encoding")) != 0 || string(body) != "you sent Bearer tokrun-redacted-api" {
		t.Fatalf("identity then gzip: status %d Content-Encoding %q body %q", resp.StatusCode, resp.Header.Values("Content-Encoding"), body)
	}
	status, body2, reason := h.do(c, newRequest(t, "GET", "https://api.example.com/v1/twice", nil))
	if status != 502 || reason != "response_unscannable" {
		t.Fatalf("gzip twice: status %d reason %q body %q", status, reason, body2)
	}
	h.checkNoSecret()
}

// A header name cannot be scrubbed (Go's reader rewrites it in canonical
// case), so a response header whose name holds the secret, in any case,
// is dropped, and counted as a scrub.
func TestSecretInResponseHeaderNameIsDropped(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sec := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header()["X-"+strings.ToUpper(sec)] = []string{"1"}
		w.Header()[sec] = []string{"2"}
		w.Header().Set("X-Kept", "3")
		io.WriteString(w, "ok")
	}))
	tc := h.tunnel(t, "api.example.com")
	defer tc.Close()
	io.WriteString(tc, "GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var head strings.Builder
	resp.Header.Write(&head)
	if strings.Contains(strings.ToLower(head.String()), strings.ToLower(testSecret)) || resp.Header.Get("X-Kept") != "3" {
		t.Fatalf("response headers:\n%s", head.String())
	}
	if rec := h.waitAudit(t, `"path":"/v1/x"`); !strings.Contains(rec, `"scrubbed":2`) {
		t.Fatalf("audit record %s, want 2 scrubbed", rec)
	}
	h.checkNoSecret()
}

// A response without a body (to HEAD, or a 304) may name the encoding
// its body would have had: there is nothing to decode, and it passes.
func TestBodilessEncodedResponsePasses(t *testing.T) {
	pol := strings.Replace(basicPolicy, "methods: [GET, POST]", "methods: [GET, POST, HEAD]", 1)
	h := newHarness(t, pol, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		if strings.HasSuffix(r.URL.Path, "/304") {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Length", "20")
	}))
	c := h.client()
	c.Transport.(*http.Transport).DisableCompression = true
	for _, tt := range []struct {
		method, path string
		status       int
	}{{"HEAD", "/v1/x", 200}, {"GET", "/v1/304", 304}} {
		resp, err := c.Do(newRequest(t, tt.method, "https://api.example.com"+tt.path, nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s %s: status %d Content-Encoding %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Content-Encoding"))
		}
	}
}

// A plain-http request whose body stalls is answered once BodyPeekTimeout
// has passed (the start of the body is scanned for placeholders before
// dialling), as inside a tunnel.
func TestPlainBodyPeekTimesOut(t *testing.T) {
	pol := strings.Replace(tripPolicy, "deny:", "  - name: plain\n    host: plain.example.com\n    scheme: http\ndeny:", 1)
	h := newHarness(t, pol, nil, func(_ *harness, c *Config) { c.Limits.BodyPeekTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST http://plain.example.com/up HTTP/1.1\r\nHost: plain.example.com\r\nContent-Length: 1000000\r\n\r\nthe start of a body that stalls")
	conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // a hundred times the limit: only a hang fails
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	if resp.StatusCode != 400 || resp.Header.Get("X-Tokrun-Reason") != "bad_request" {
		t.Fatalf("status %d reason %q", resp.StatusCode, resp.Header.Get("X-Tokrun-Reason"))
	}
	if h.dials.Load() != 0 {
		t.Fatal("the request reached the upstream")
	}
}

// lateTripUpstream answers before it reads the request body, as streaming
// APIs do: "started\n", whole (with its length) if whole, else as the
// start of a stream. Then it reads the body and reports what reached it.
func lateTripUpstream(got chan<- string, whole bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex() //nolint:errcheck // HTTP/1 supports it
		w.Header().Set("Content-Type", "text/plain")
		if whole {
			w.Header().Set("Content-Length", "8")
		}
		io.WriteString(w, "started\n")
		w.(http.Flusher).Flush()
		b, _ := io.ReadAll(r.Body)
		select { // the first request's body; a test that fails may send more
		case got <- string(b):
		default:
		}
	}
}

// checkNotReached waits for what a late-trip upstream read of the body,
// which must not hold the placeholder.
func checkNotReached(t *testing.T, got <-chan string) {
	t.Helper()
	select {
	case b := <-got:
		if strings.Contains(b, placeholder) {
			t.Fatal("the placeholder reached the foreign host")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the upstream never finished reading")
	}
}

// checkLateTrip checks that a placeholder sent after the response began
// never reached the upstream, cut the response off, and was reported:
// callback, metric and the request's audit record.
func checkLateTrip(t *testing.T, h *harness, events *atomic.Int32, got <-chan string, respErr error, path string) {
	t.Helper()
	checkNotReached(t, got)
	if respErr == nil {
		t.Error("the response was not cut off")
	}
	rec := h.waitAudit(t, `"path":"`+path+`"`)
	if !strings.Contains(rec, `"tripwire":"api"`) || !strings.Contains(rec, `"error":"cut off: a placeholder of secret api`) {
		t.Errorf("audit record %s", rec)
	}
	if events.Load() != 1 || testutil.ToFloat64(h.metrics.Tripwires.WithLabelValues("api")) != 1 {
		t.Errorf("tripwire events %d, metric %v", events.Load(), testutil.ToFloat64(h.metrics.Tripwires.WithLabelValues("api")))
	}
}

// A placeholder after the scanned start of a body, sent once the
// upstream has begun its answer, cannot be refused any more: the upload
// and the response are cut off, and the tripwire is reported as any other
// (so that tokrun's --on-tripwire kill acts on it).
func TestLateTripwireIsReported(t *testing.T) {
	var events atomic.Int32
	got := make(chan string, 1)
	h := newHarness(t, tripPolicy, lateTripUpstream(got, false), func(_ *harness, c *Config) {
		c.OnTripwire = func(TripwireEvent) { events.Add(1) }
	})
	tc := h.tunnel(t, "open.example.com")
	defer tc.Close()
	err := uploadLate(t, tc, "POST /upload HTTP/1.1\r\nHost: open.example.com\r\n")
	checkLateTrip(t, h, &events, got, err, "/upload")
}

// uploadLate sends a request (head, without its end) whose body carries
// the placeholder past the part scanned before dialling, sent only once
// the response has begun; it returns how reading the response ended.
func uploadLate(t *testing.T, conn net.Conn, head string) error {
	t.Helper()
	filler := strings.Repeat("x", peekBody+1024)
	rest := placeholder + strings.Repeat("y", 100)
	fmt.Fprintf(conn, "%sContent-Length: %d\r\n\r\n%s", head, len(filler)+len(rest), filler)
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, rest)
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// plainRule adds to a policy a rule for plain http to plain.example.com
// on port.
func plainRule(pol, port string) string {
	return strings.Replace(pol, "deny:", "  - name: plain\n    host: plain.example.com\n    scheme: http\n    port: "+port+"\ndeny:", 1)
}

// The same over plain http, which the proxy answers itself: the response
// is cut off, not ended as if it were whole.
func TestLateTripwireIsReportedPlain(t *testing.T) {
	got := make(chan string, 1)
	up := httptest.NewServer(lateTripUpstream(got, false))
	defer up.Close()
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	pol := plainRule(tripPolicy, port)
	var events atomic.Int32
	h := newHarness(t, pol, nil, func(_ *harness, c *Config) {
		c.OnTripwire = func(TripwireEvent) { events.Add(1) }
	})
	conn, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = uploadLate(t, conn, "POST http://plain.example.com:"+port+"/upload HTTP/1.1\r\nHost: plain.example.com:"+port+"\r\n")
	checkLateTrip(t, h, &events, got, err, "/upload")
}

// An upstream that dies in the middle of a chunked body: over plain http
// the client must see a broken response, never a whole one.
func TestPlainResponseCutShortIsNotWhole(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		io.WriteString(brw, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		brw.Flush()
		c.Close()
	}))
	defer up.Close()
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	pol := plainRule(basicPolicy, port)
	h := newHarness(t, pol, nil)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(h.proxyURL)}}
	resp, err := c.Get("http://plain.example.com:" + port + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("a body cut short upstream arrived whole: %q", body)
	}
	// Its record says so: it is not a whole answer.
	h.waitAudit(t, `"error":"the response was cut short: the upstream's body failed or ended early"`)
}

// earlyConn sends its CONNECT in the same write as the first bytes of the
// TLS handshake, as some clients do, and reads the proxy's 200 before it
// gives the rest to TLS.
type earlyClientConn struct {
	net.Conn
	connect        string
	br             *bufio.Reader
	sent, answered bool
}

func (c *earlyClientConn) Write(b []byte) (int, error) {
	if !c.sent {
		c.sent = true
		if _, err := c.Conn.Write(append([]byte(c.connect), b...)); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *earlyClientConn) Read(b []byte) (int, error) {
	if !c.answered {
		c.answered = true
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("CONNECT answered %d", resp.StatusCode)
		}
	}
	return c.br.Read(b)
}

// Bytes sent right behind a CONNECT (the ClientHello in the same packet)
// are kept for the tunnel, not dropped with net/http's read buffer.
func TestBytesAfterConnectAreKept(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	raw, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ec := &earlyClientConn{Conn: raw, br: bufio.NewReader(raw),
		connect: "CONNECT open.example.com:443 HTTP/1.1\r\nHost: open.example.com:443\r\n\r\n"}
	pool := x509.NewCertPool()
	pool.AddCert(h.ca.Certificate())
	tc := tls.Client(ec, &tls.Config{ServerName: "open.example.com", RootCAs: pool})
	raw.SetDeadline(time.Now().Add(20 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("a handshake sent with the CONNECT: %v", err)
	}
	fmt.Fprintf(tc, "GET /x HTTP/1.1\r\nHost: open.example.com\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request in the tunnel: %v %v", resp, err)
	}
}

// A plain-http connection has a lifetime, as a tunnel has: an endless
// response ends with it, and so does the upstream request.
func TestPlainConnectionLifetime(t *testing.T) {
	upDone := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(upDone)
		for {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
				io.WriteString(w, "tick\n")
				w.(http.Flusher).Flush()
			}
		}
	}))
	defer up.Close()
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	pol := plainRule(basicPolicy, port)
	h := newHarness(t, pol, nil, func(_ *harness, c *Config) { c.Limits.MaxConnDuration = 500 * time.Millisecond })
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(h.proxyURL)}}
	resp, err := c.Get("http://plain.example.com:" + port + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		read <- err
	}()
	select {
	case err := <-read:
		if err == nil {
			t.Error("the endless response ended as if whole")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the response outlived the connection's lifetime by 20s")
	}
	select {
	case <-upDone:
	case <-time.After(20 * time.Second):
		t.Fatal("the upstream request outlived the connection's lifetime by 20s")
	}
}

// A method-override header turns a POST into another method at many
// APIs: it is judged as that method, under the same rule (another rule
// that allows it does not inject this one's secret), however the name is
// spelled; the refusal quotes at most 24 bytes of the value.
func TestMethodOverrideIsDecidedToo(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	pol := strings.Replace(basicPolicy, "  - name: open\n", "  - name: api-delete\n    host: api.example.com\n    methods: [DELETE]\n    paths: [\"/v1/**\"]\n  - name: open\n", 1)
	h := newHarness(t, pol, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		for _, k := range []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} {
			seen = append(seen, r.Header[k]...)
		}
		mu.Unlock()
	})) // rule api: GET and POST on /v1/**, with the secret; rule api-delete: DELETE, without
	c := h.client()
	for _, tt := range []struct {
		header, value string
		status        int
		reason        string
	}{
		{"X-HTTP-Method-Override", "DELETE", 403, "method_not_allowed"},
		{"X-Http-Method", "put", 403, "method_not_allowed"},
		{"X-Method-Override", "GET", 200, ""},
		{"X-HTTP-Method-Override", "POST", 200, ""},
		{"X-HTTP-Method-Override", " ", 200, ""}, // empty: no override
		{"X_HTTP_METHOD_OVERRIDE", "DELETE", 403, "method_not_allowed"},
		{"x_method_override", "PATCH", 403, "method_not_allowed"},
		{"X.HTTP.Method.Override", "DELETE", 403, "method_not_allowed"}, // PHP: HTTP_X_HTTP_METHOD_OVERRIDE
		{"X-HTTP-Method-Override", strings.Repeat("Q", 40), 403, "method_not_allowed"},
	} {
		req := newRequest(t, "POST", "https://api.example.com/v1/x", strings.NewReader("{}"))
		req.Header.Set(tt.header, tt.value)
		status, body, reason := h.do(c, req)
		if status != tt.status || reason != tt.reason {
			t.Errorf("%s: %s: status %d reason %q body %q", tt.header, tt.value, status, reason, body)
		}
		if strings.Contains(body, strings.Repeat("Q", 25)) {
			t.Errorf("the refusal quotes more than 24 bytes of the value: %q", body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []string{"GET", "POST", ""}) {
		t.Errorf("the upstream saw overrides %q, want only the allowed ones", seen)
	}
}

// A path-override header (X-Original-URL, X-Rewrite-URL: IIS's URL
// Rewrite, older Symfony and Zend) is decided as the path it names, with
// every method the request may be read as, under the same rule.
func TestPathOverrideIsDecidedToo(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	pol := strings.Replace(basicPolicy, "    methods: [GET, POST]\n", "    methods: [GET, POST, DELETE]\n", 1) +
		"  - name: no-admin-delete\n    host: api.example.com\n    methods: [DELETE]\n    paths: [\"/v1/keys/**\"]\n"
	h := newHarness(t, pol, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		for _, k := range []string{"X-Original-Url", "X-Rewrite-Url", "X_original_url"} {
			seen = append(seen, r.Header[k]...)
		}
		mu.Unlock()
	})) // rule api: GET, POST and DELETE on /v1/**, but no /v1/admin/**, and no DELETE on /v1/keys/**
	c := h.client()
	for _, tt := range []struct {
		headers map[string][]string
		status  int
		reason  string
	}{
		{map[string][]string{"X-Original-URL": {"/v1/admin/keys"}}, 403, "denied_by_rule"},
		{map[string][]string{"X-Rewrite-URL": {"/other"}}, 403, "path_not_allowed"},
		{map[string][]string{"X-Original-URL": {"/v1/ok?x=/admin"}}, 200, ""},
		{map[string][]string{"X-Original-URL": {"https://api.example.com/v1/fine"}}, 200, ""},
		{map[string][]string{"X-Original-URL": {"https://elsewhere.example/v1/admin/x"}}, 403, "denied_by_rule"},
		{map[string][]string{"X-Original-URL": {"/v1/%2e%2e/admin/x"}}, 403, "path_not_allowed"}, // /admin/x
		{map[string][]string{"X-Original-URL": {"admin"}}, 400, "invalid_path"},
		{map[string][]string{"X-Original-URL": {"http:admin/x"}}, 400, "invalid_path"},
		{map[string][]string{"X_ORIGINAL_URL": {"/admin"}}, 403, "path_not_allowed"},
		{map[string][]string{"X.Original.URL": {"/admin"}}, 403, "path_not_allowed"},
		{map[string][]string{"X-Original-URL": {" "}}, 200, ""}, // empty: no override
		// Each is allowed alone, not together: DELETE on /v1/keys/x.
		{map[string][]string{"X-HTTP-Method-Override": {"DELETE"}}, 200, ""},
		{map[string][]string{"X-Original-URL": {"/v1/keys/x"}}, 200, ""},
		{map[string][]string{"X-HTTP-Method-Override": {"DELETE"}, "X-Original-URL": {"/v1/keys/x"}}, 403, "denied_by_rule"},
		{map[string][]string{"X-Original-URL": {"/v1/a", "/v1/b", "/v1/c"}, "X-Rewrite-URL": {"/v1/d", "/v1/e"}}, 400, "bad_request"},
	} {
		req := newRequest(t, "POST", "https://api.example.com/v1/x", strings.NewReader("{}"))
		for k, vs := range tt.headers {
			req.Header[k] = vs
		}
		status, body, reason := h.do(c, req)
		if status != tt.status || reason != tt.reason {
			t.Errorf("%q: status %d reason %q body %q", tt.headers, status, reason, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/v1/ok?x=/admin", "https://api.example.com/v1/fine", "", "/v1/keys/x"}; !slices.Equal(seen, want) {
		t.Errorf("the upstream saw path overrides %q, want only the allowed ones %q", seen, want)
	}
}

// The _method query parameter (Laravel, Symfony, Spring, Express) is
// judged as the method it names, however its name is encoded and with
// either separator.
func TestMethodOverrideParamIsDecidedToo(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.RawQuery)
		mu.Unlock()
	})) // rule api: GET and POST on /v1/**
	c := h.client()
	for _, tt := range []struct {
		query  string
		status int
	}{
		{"_method=DELETE", 403},
		{"a=1&_method=put", 403},
		{"a=1;_method=%20patch%20", 403},
		{"%5Fmethod=DELETE", 403},
		{"%5f%6Dethod=DELETE", 403},
		{"_method=GET&_method=DELETE", 403},
		{".method=DELETE", 403},       // PHP: "." becomes "_"
		{"+_method=DELETE", 403},      // PHP: leading spaces dropped
		{"%20.method=DELETE", 403},    // both
		{"_method%00x=DELETE", 403},   // PHP: the name ends at NUL
		{"_method%00%zz=DELETE", 403}, // PHP keeps an invalid escape, then cuts at NUL
		{"_method%00%=DELETE", 403},
		{"_method=get", 200},
		{"_method=&_method", 200}, // empty: no framework overrides
		{"x_method=DELETE&_methods=DELETE&_meth.od=DELETE", 200},
		{"_method%zz=DELETE", 200},
		{"q=%zz", 200},
	} {
		req := newRequest(t, "POST", "https://api.example.com/v1/x?"+tt.query, strings.NewReader("{}"))
		status, body, reason := h.do(c, req)
		if status != tt.status || (status == 403) != (reason == "method_not_allowed") {
			t.Errorf("?%s: status %d reason %q body %q", tt.query, status, reason, body)
		}
		if status == 403 && !strings.Contains(body, "query parameter _method") {
			t.Errorf("?%s: the refusal does not say why: %q", tt.query, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []string{"_method=get", "_method=&_method", "x_method=DELETE&_methods=DELETE&_meth.od=DELETE", "_method%zz=DELETE", "q=%zz"}) {
		t.Errorf("the upstream saw queries %q, want only the allowed ones", seen)
	}
}

// A late tripwire that fires while a response to a request with a secret
// is read whole (nothing sent to the client yet) is the answer: 403
// tripwire, and the request's record names it.
func TestLateTripwireDuringWholeReadIsTheAnswer(t *testing.T) {
	keys := testKeys(t)
	other, err := sealing.Seal(rand.Reader, keys.PublicKeys()[0], sealing.Binding{
		Name: "other", Hosts: []string{"other.example.com"}, Header: "Authorization", Format: "Bearer {}",
	}, "sk-other-0123456789abcdef", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const otherPH = "tokrun-ph-other-0123456789"
	got := make(chan string, 1)
	var events atomic.Int32
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex() //nolint:errcheck // HTTP/1 supports it
		w.Header().Set("Content-Length", "8")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
		io.WriteString(w, "finished")
	}), func(h *harness, c *Config) {
		doc := fmt.Sprintf("version: 1\nsecrets:\n  api:\n    sealed: %s\n  other:\n    sealed: %s\n    placeholders: [%s]\nrules:\n  - name: api\n    host: api.example.com\n    inject: [api]\n  - name: other\n    host: other.example.com\n    inject: [other]\n", h.sealed, other, otherPH)
		pol, err := policy.Parse("t.yaml", []byte(doc), policy.Options{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		c.Policy = func() *policy.Policy { return pol }
		c.OnTripwire = func(TripwireEvent) { events.Add(1) }
	})
	tc := h.tunnel(t, "api.example.com")
	defer tc.Close()
	filler := strings.Repeat("x", peekBody+1024)
	rest := otherPH + strings.Repeat("y", 100)
	fmt.Fprintf(tc, "POST /v1/up HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: %d\r\n\r\n%s", len(filler)+len(rest), filler)
	time.Sleep(300 * time.Millisecond) // the upstream's headers reach the proxy first (were they later, the tripwire would fire early: also a 403)
	io.WriteString(tc, rest)
	tc.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("X-Tokrun-Reason") != "tripwire" {
		t.Errorf("client got %d %s, want 403 tripwire", resp.StatusCode, resp.Header.Get("X-Tokrun-Reason"))
	}
	select {
	case b := <-got:
		if strings.Contains(b, otherPH) {
			t.Fatal("the placeholder reached the upstream")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the upstream never finished reading")
	}
	rec := h.waitAudit(t, `"path":"/v1/up"`)
	if !strings.Contains(rec, `"tripwire":"other"`) || !strings.Contains(rec, `"reason":"tripwire"`) {
		t.Errorf("audit record %s", rec)
	}
	if events.Load() != 1 || testutil.ToFloat64(h.metrics.Tripwires.WithLabelValues("other")) != 1 {
		t.Errorf("tripwire events %d, metric %v: want each once", events.Load(), testutil.ToFloat64(h.metrics.Tripwires.WithLabelValues("other")))
	}
}

// TestMalformedRequestBodyIsTheClients: a request body whose chunks are
// malformed fails the exchange as the client's bad request, not as an
// upstream failure (which would set off upstream alerts).
func TestMalformedRequestBodyIsTheClients(t *testing.T) {
	// An upstream that answers only after the whole body (which never
	// comes), so the exchange fails on the body, not on a race with an
	// early answer.
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) //nolint:errcheck // ends when the proxy gives up on the body
	}))
	tc := h.tunnel(t, "api.example.com")
	defer tc.Close()
	io.WriteString(tc, "POST /v1/upload HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZZ\r\n\r\n")
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Tokrun-Reason") != "bad_request" {
		t.Errorf("status %d, reason %q; want 400 bad_request", resp.StatusCode, resp.Header.Get("X-Tokrun-Reason"))
	}
	h.waitAudit(t, `"reason":"bad_request"`)
}

// A client that goes away in the middle of a response is recorded with an
// error, in a tunnel and over plain http: the record must not read as an
// answer delivered whole, nor blame the upstream.
func TestClientGoneMidResponseIsRecorded(t *testing.T) {
	const want = `"error":"the client went away before the response's end"`
	streaming := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "first part\n")
		w.(http.Flusher).Flush()
		select { // the rest never comes while the client is there
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	}
	read := func(t *testing.T, c *http.Client, url string) {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len("first part\n"))
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // mid-body: the client's transport closes the connection
		c.CloseIdleConnections()
	}
	t.Run("tunnel", func(t *testing.T) {
		h := newHarness(t, basicPolicy, http.HandlerFunc(streaming))
		read(t, h.client(), "https://open.example.com/stream")
		rec := h.waitAudit(t, want)
		if strings.Contains(rec, "upstream") {
			t.Errorf("the client's leaving is blamed on the upstream: %s", rec)
		}
	})
	t.Run("plain", func(t *testing.T) {
		up := httptest.NewServer(http.HandlerFunc(streaming))
		defer up.Close()
		_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
		h := newHarness(t, plainRule(basicPolicy, port), nil)
		read(t, &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(h.proxyURL)}}, "http://plain.example.com:"+port+"/stream")
		rec := h.waitAudit(t, want)
		if strings.Contains(rec, "upstream") {
			t.Errorf("the client's leaving is blamed on the upstream: %s", rec)
		}
	})
}

// An upstream's hop-by-hop headers, the headers its Connection names, and
// any Proxy-* or X-Tokrun-* header (it could forge the proxy's verdicts to
// the agent) never reach the client, in a tunnel or over plain http.
func TestUpstreamHopByHopHeadersDropped(t *testing.T) {
	forging := func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "1")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", "Basic realm=x")
		h.Set("X-Tokrun-Decision", "deny")
		h.Set("X-Tokrun-Reason", "tripwire")
		h.Set("X-Kept", "yes")
		io.WriteString(w, "ok")
	}
	check := func(t *testing.T, resp *http.Response, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("X-Kept") != "yes" {
			t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
		}
		for _, name := range []string{"X-Hop", "Keep-Alive", "Proxy-Authenticate", "X-Tokrun-Decision", "X-Tokrun-Reason"} {
			if v, ok := resp.Header[name]; ok {
				t.Errorf("%s: %q reached the client", name, v)
			}
		}
	}
	t.Run("tunnel", func(t *testing.T) {
		h := newHarness(t, basicPolicy, http.HandlerFunc(forging))
		resp, err := h.client().Get("https://open.example.com/")
		check(t, resp, err)
	})
	t.Run("plain", func(t *testing.T) {
		up := httptest.NewServer(http.HandlerFunc(forging))
		defer up.Close()
		_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
		h := newHarness(t, plainRule(basicPolicy, port), nil)
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(h.proxyURL)}}
		resp, err := c.Get("http://plain.example.com:" + port + "/")
		check(t, resp, err)
	})
}

// A request that carries a secret is sent without Range and If-Range, and
// its answer comes whole: a range of a page that echoes the secret would
// hold no whole form of it to scrub, and ranges put together would give
// the secret back.
func TestRangeDroppedWhenASecretIsInjected(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Range")+"|"+r.Header.Get("If-Range"))
		mu.Unlock()
		http.ServeContent(w, r, "echo.txt", time.Time{}, strings.NewReader("echo: "+r.Header.Get("Authorization")))
	}))
	req := newRequest(t, "GET", "https://api.example.com/v1/echo", nil)
	req.Header.Set("Range", "bytes=0-15")
	req.Header.Set("If-Range", `"x"`)
	resp, err := h.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "echo: Bearer tokrun-redacted-api" {
		t.Errorf("status %d, body %q: want the whole answer, scrubbed", resp.StatusCode, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "|" {
		t.Errorf("the upstream saw Range|If-Range %q", seen)
	}
	h.checkNoSecret()
}
