package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The exposition passes the Prometheus linter, carries the decision
// series with rule and reason labels, never a host or path, and never a
// secret.
func TestMetricsExposition(t *testing.T) {
	h := newHarness(t, tripPolicy, http.HandlerFunc(echoHandler))
	c := h.client()
	for _, u := range []string{"https://api.example.com/v1/echo/raw", "https://api.example.com/admin", "https://evil.example.net/"} {
		if resp, err := c.Get(u); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	problems, err := testutil.GatherAndLint(h.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	for _, want := range []string{
		`tokrun_decisions_total{decision="allow",reason="allowed",rule="api"} 2`, // CONNECT, then GET
		`tokrun_decisions_total{decision="deny",reason="path_not_allowed",rule=""} 1`,
		`tokrun_decisions_total{decision="deny",reason="host_not_allowed",rule=""} 1`,
		`tokrun_injections_total{rule="api",secret="api"} 1`,
		`tokrun_scrubs_total{secret="api"} 2`,
		`tokrun_tripwires_total{secret="api"} 0`,
		`tokrun_leaf_cert_cache_total{result="miss"} 1`,
		`tokrun_upstream_request_duration_seconds_count{rule="api"} 1`,
		`tokrun_policy_info{hash="`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s\n%s", want, grepLines(text, "tokrun_decisions_total|tokrun_scrubs"))
		}
	}
	for _, leak := range []string{testSecret, "evil.example.net", "api.example.com", "/admin", "/v1/echo"} {
		if strings.Contains(text, leak) {
			t.Errorf("exposition contains %q", leak)
		}
	}
}

// An upstream that does not answer in time gives 504 with a reason.
func TestUpstreamTimeoutGives504(t *testing.T) {
	release := make(chan struct{})
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}), func(_ *harness, c *Config) { c.Limits.ResponseHeaderTimeout = 200 * time.Millisecond })
	defer close(release)
	status, body, reason := h.do(h.client(), newRequest(t, "GET", "https://open.example.com/slow", nil))
	if status != 504 || reason != "upstream_timeout" || !strings.Contains(body, "timed out waiting for open.example.com") {
		t.Fatalf("status %d reason %q body %q", status, reason, body)
	}
}

func grepLines(text, prefixes string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, p := range strings.Split(prefixes, "|") {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// An audit record that cannot be written is counted (the example alert
// rule watches this), and the request is still answered; a batched log's
// failures, which no request waits for, are counted too.
func TestAuditWriteErrorsAreCounted(t *testing.T) {
	for name, log := range map[string]func() *AuditLog{
		"at once": func() *AuditLog { return NewAuditLog(failingWriter{}) },
		"batched": func() *AuditLog { return NewBatchedAuditLog(failingWriter{}, time.Millisecond) },
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, basicPolicy, nil, func(_ *harness, c *Config) { c.Audit = log() })
			if status, _, _ := h.do(h.client(), newRequest(t, "GET", "https://open.example.com/", nil)); status != 200 {
				t.Fatalf("status %d", status)
			}
			// The request's record is written when its body is finished, which
			// may be just after the client has read it.
			for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(h.metrics.AuditErrors) < 2; { // the CONNECT and the request
				if time.Now().After(deadline) {
					t.Fatalf("audit write errors %v, want 2", testutil.ToFloat64(h.metrics.AuditErrors))
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
