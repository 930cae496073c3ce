package proxy

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
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
