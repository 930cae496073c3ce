package proxy

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

const placeholder = "tokrun-ph-api-0123456789"

var tripPolicy = strings.Replace(basicPolicy, "    sealed: SEALED\n", "    sealed: SEALED\n    placeholders: ["+placeholder+"]\n", 1)

// A placeholder headed to a host outside its secret's binding is refused
// before anything is sent, wherever it hides; sent to its own host it
// passes.
func TestTripwire(t *testing.T) {
	var mu sync.Mutex
	var events []TripwireEvent
	var bodyBytes atomic.Int64
	h := newHarness(t, tripPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		bodyBytes.Add(n)
		upstreamHandler(w, r)
	}), func(_ *harness, c *Config) {
		c.OnTripwire = func(e TripwireEvent) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}
	})
	c := h.client()
	b64 := base64.StdEncoding.EncodeToString([]byte("user:" + placeholder))
	tests := []struct {
		name  string
		req   *http.Request
		where string
	}{
		{"header", withHeader(newRequest(t, "GET", "https://open.example.com/", nil), "X-Key", placeholder), "header"},
		{"basic auth", withHeader(newRequest(t, "GET", "https://open.example.com/", nil), "Authorization", "Basic "+b64), "header"},
		{"query", newRequest(t, "GET", "https://open.example.com/?k="+placeholder, nil), "url"},
		{"header name", withHeader(newRequest(t, "GET", "https://open.example.com/", nil), placeholder, "1"), "header"},
		{"query after a bad escape", newRequest(t, "GET", "https://open.example.com/?a=%zz&b="+strings.Replace(placeholder, "a", "%61", 1), nil), "url"},
		{"path", newRequest(t, "GET", "https://open.example.com/x/"+placeholder, nil), "url"},
		{"small body", newRequest(t, "POST", "https://open.example.com/", strings.NewReader(`{"key":"`+placeholder+`"}`)), "body"},
	}
	for _, tt := range tests {
		dialsBefore := h.dials.Load()
		status, body, reason := h.do(c, tt.req)
		if status != 403 || reason != "tripwire" || !strings.Contains(body, "placeholder of secret api") {
			t.Errorf("%s: status %d reason %q body %q", tt.name, status, reason, body)
		}
		if h.dials.Load() != dialsBefore {
			t.Errorf("%s: upstream was dialled", tt.name)
		}
	}
	if got := testutil.ToFloat64(h.metrics.Tripwires.WithLabelValues("api")); got != float64(len(tests)) {
		t.Fatalf("tripwire metric %v", got)
	}
	mu.Lock()
	if len(events) != len(tests) || events[0].Secret != "api" || events[0].Host != "open.example.com" || events[len(events)-1].Where != "body" {
		t.Fatalf("events %+v", events)
	}
	mu.Unlock()

	// Far into a large body: refused, and the upstream never gets the
	// placeholder.
	big := strings.Repeat("x", 1<<20) + placeholder + strings.Repeat("y", 1<<20)
	resp, err := c.Post("https://open.example.com/upload", "text/plain", strings.NewReader(big))
	if err == nil {
		if resp.StatusCode != 403 || resp.Header.Get("X-Tokrun-Reason") != "tripwire" {
			t.Fatalf("large body: status %d", resp.StatusCode)
		}
		resp.Body.Close()
	}
	if bodyBytes.Load() >= int64(len(big)) {
		t.Fatal("upstream received the whole body with the placeholder")
	}

	// To the secret's own host, the placeholder is harmless and passes.
	req := withHeader(newRequest(t, "POST", "https://api.example.com/v1/chat", strings.NewReader("quote: "+placeholder)), "X-Key", placeholder)
	if status, body, _ := h.do(c, req); status != 200 {
		t.Fatalf("own host: %d %q", status, body)
	}
	if !strings.Contains(h.audit.String(), `"tripwire":"api"`) {
		t.Fatal("audit lacks the tripwire")
	}
}

func withHeader(r *http.Request, k, v string) *http.Request {
	r.Header.Set(k, v)
	return r
}
