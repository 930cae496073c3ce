package proxy

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// uploadAfterAnswer sends, in a tunnel to open.example.com, a POST to
// /upload whose body carries the placeholder past the part scanned before
// dialling, sent only once the whole response has arrived and the
// request's audit record is written; it returns that response once the
// tripwire has fired.
func uploadAfterAnswer(t *testing.T, h *harness, conn net.Conn, br *bufio.Reader) *http.Response {
	t.Helper()
	filler := strings.Repeat("x", peekBody+1024)
	rest := placeholder + strings.Repeat("y", 100)
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: open.example.com\r\nContent-Length: %d\r\n\r\n%s", len(filler)+len(rest), filler)
	resp, body := readResponse(t, br, "POST")
	if resp.StatusCode != 200 || body != "started\n" {
		t.Fatalf("response %d %q", resp.StatusCode, body)
	}
	h.waitAudit(t, `"decision":"allow","reason":"allowed","rule":"open","method":"POST"`)
	io.WriteString(conn, rest)
	h.waitAudit(t, `"decision":"deny","reason":"tripwire"`)
	return resp
}

// A placeholder sent once the response has ended whole, and the request's
// record (allow) is written, is reported in a record of its own: deny,
// tripwire, the rest of the body cut off. It never reaches the upstream,
// and the tripwire is reported once. (Over plain http the body cannot
// outlive its response: net/http ends the read when the handler returns.)
func TestLateTripwireAfterTheRecord(t *testing.T) {
	got := make(chan string, 1)
	var events atomic.Int32
	h := newHarness(t, tripPolicy, lateTripUpstream(got, true), func(_ *harness, c *Config) {
		c.OnTripwire = func(TripwireEvent) { events.Add(1) }
	})
	tc := h.tunnel(t, "open.example.com")
	defer tc.Close()
	uploadAfterAnswer(t, h, tc, bufio.NewReader(tc))
	checkNotReached(t, got)
	var recs []Record
	for _, l := range strings.Split(strings.TrimSpace(h.audit.String()), "\n") {
		var r Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		if r.Path == "/upload" {
			recs = append(recs, r)
		}
	}
	const why = "the rest of the request body was cut off: a placeholder of secret api was sent in the request body to a host outside its binding"
	switch {
	case len(recs) != 2:
		t.Fatalf("records of /upload: %+v, want the request's and the tripwire's", recs)
	case recs[0].Decision != "allow" || recs[0].Tripwire != "" || recs[0].Error != "":
		t.Errorf("the request's record: %+v", recs[0])
	case recs[1].Decision != "deny" || recs[1].Reason != "tripwire" || recs[1].Tripwire != "api" || recs[1].Error != why ||
		recs[1].Rule != "open" || recs[1].Method != "POST" || recs[1].Host != "open.example.com":
		t.Errorf("the tripwire's record: %+v", recs[1])
	}
	if events.Load() != 1 || testutil.ToFloat64(h.metrics.Tripwires.WithLabelValues("api")) != 1 {
		t.Errorf("tripwire events %d, metric %v: want each once", events.Load(), testutil.ToFloat64(h.metrics.Tripwires.WithLabelValues("api")))
	}
}

// countingSource hands out its chunks one read at a time and counts the
// reads.
type countingSource struct {
	chunks []string
	reads  int
}

func (s *countingSource) Read(p []byte) (int, error) {
	s.reads++
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.chunks[0])
	if s.chunks[0] = s.chunks[0][n:]; s.chunks[0] == "" {
		s.chunks = s.chunks[1:]
	}
	return n, nil
}

// A tripReader reports its first hit once, whichever of several secrets'
// placeholders it finds, in one read or in several: the callback
// registered by afterResponse runs once, with that hit, and every later
// read returns the same error without reading on. A hit before the
// callback is registered is afterResponse's answer, and the callback never
// runs.
func TestTripReaderReportsOnce(t *testing.T) {
	const otherPH = "tokrun-ph-other-0123456789"
	h := newHarness(t, withSecondSecret(t, "sk-other-0123456789abcdef"), nil)
	if err := h.srv.AddPlaceholders("api", placeholder); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.AddPlaceholders("other", otherPH); err != nil {
		t.Fatal(err)
	}
	dets := h.srv.secrets(h.srv.cfg.Policy()).foreign("open.example.com")
	if len(dets) != 2 {
		t.Fatalf("%d foreign detectors, want api's and other's", len(dets))
	}
	for _, tt := range []struct {
		name   string
		chunks []string
	}{
		{"both in one read", []string{"a " + placeholder + " b " + otherPH + " c"}},
		{"one read each", []string{"a " + otherPH + " b", " c " + placeholder + " d", " e"}},
		{"the second after the hit", []string{"a " + placeholder + strings.Repeat("b", 100<<10), otherPH}},
	} {
		for _, registered := range []string{"before", "after"} {
			src := &countingSource{chunks: slices.Clone(tt.chunks)}
			tr := newTripReader(io.NopCloser(src), dets)
			var calls []*tripwireError
			late := func(hit *tripwireError) { calls = append(calls, hit) }
			if registered == "before" {
				if hit := tr.afterResponse(late); hit != nil {
					t.Fatalf("%s: afterResponse found %v before any read", tt.name, hit)
				}
			}
			_, err := io.ReadAll(tr)
			var hit *tripwireError
			if !errors.As(err, &hit) || hit.where != "body" {
				t.Fatalf("%s: read ended with %v, want a tripwire in the body", tt.name, err)
			}
			if registered == "after" {
				if got := tr.afterResponse(late); got != hit {
					t.Errorf("%s: afterResponse after the hit returned %v, want the hit", tt.name, got)
				}
			}
			reads := src.reads
			for range 3 {
				if n, again := tr.Read(make([]byte, 512)); n != 0 || again != err {
					t.Errorf("%s, registered %s: a read after the hit returned (%d, %v), want (0, the same error)", tt.name, registered, n, again)
				}
			}
			if src.reads != reads {
				t.Errorf("%s, registered %s: the body was read on after the hit", tt.name, registered)
			}
			want := 1
			if registered == "after" {
				want = 0
			}
			if len(calls) != want || want == 1 && calls[0] != hit {
				t.Errorf("%s, registered %s: the callback ran with %v, want %d time(s) with the hit", tt.name, registered, calls, want)
			}
		}
	}
}

// A host name is compared in lower case, so a placeholder with capitals
// (a policy's fixed placeholder may have them) is looked for in lower case
// there: sent as a DNS label under a wildcard rule without secrets, it
// would otherwise leave in DNS, SNI and Host. Refused at CONNECT and
// inside a tunnel to another host alike, with nothing dialled.
func TestTripwireSeesMixedCasePlaceholderInHost(t *testing.T) {
	const mixed = "TokRun-PH-Api-0123456789"
	pol := strings.Replace(basicPolicy, "    sealed: SEALED\n", "    sealed: SEALED\n    placeholders: ["+mixed+"]\n", 1)
	pol = strings.Replace(pol, "deny:\n", "  - name: wild\n    host: \"*.example.org\"\ndeny:\n", 1)
	h := newHarness(t, pol, nil)
	c := h.client()
	host := strings.ToLower(mixed) + ".example.org"
	status, _, reason := h.do(c, newRequest(t, "GET", "https://"+host+"/", nil))
	if status != 403 || reason != "tripwire" {
		t.Errorf("CONNECT to %s: status %d reason %q, want 403 tripwire", host, status, reason)
	}
	if h.dials.Load() != 0 {
		t.Errorf("the upstream was dialled %d times", h.dials.Load())
	}
}
