package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokrun/tokrun/internal/scrub"
	"github.com/tokrun/tokrun/sealing"
)

// echoEncodings are the encodings echoHandler and fixedEchoHandler echo
// the secret in, by the last element of the path.
var echoEncodings = []string{"raw", "base64", "base64url", "basic", "hex", "percent", "json"}

// echoed returns secret in the encoding enc (see echoEncodings).
func echoed(secret, enc string) string {
	switch enc {
	case "raw":
		return secret
	case "base64":
		return base64.StdEncoding.EncodeToString([]byte(secret))
	case "base64url":
		return base64.RawURLEncoding.EncodeToString([]byte(secret))
	case "basic":
		return base64.StdEncoding.EncodeToString([]byte("user:" + secret))
	case "hex":
		return hex.EncodeToString([]byte(secret))
	case "percent":
		return url.QueryEscape(secret + "/+&")
	case "json":
		b, _ := json.Marshal(map[string]string{"you_sent": "Bearer " + secret})
		return string(b)
	}
	return ""
}

// secretForms are the encodings of testSecret that must never reach the
// client.
var secretForms = []string{testSecret, base64.StdEncoding.EncodeToString([]byte(testSecret)), base64.RawURLEncoding.EncodeToString([]byte(testSecret)),
	hex.EncodeToString([]byte(testSecret)), url.QueryEscape(testSecret)}

// echoHandler returns the injected secret in the encoding the path
// names, split in two writes with a flush between them so the proxy sees
// it across read boundaries, and also in a response header. The body has
// no Content-Length: it streams.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	secret := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	enc := echoed(secret, path.Base(r.URL.Path))
	w.Header().Set("X-Echo", "Bearer "+secret)
	w.Header().Set("Content-Length", "") // let the body stream
	w.Header().Del("Content-Length")
	io.WriteString(w, "Hello ")
	half := len(enc) / 2
	io.WriteString(w, enc[:half])
	w.(http.Flusher).Flush()
	time.Sleep(5 * time.Millisecond)
	io.WriteString(w, enc[half:]+"!\n")
}

// An upstream that echoes the injected secret back, in any common
// encoding and split across reads, returns the placeholder instead.
func TestResponseScrubbing(t *testing.T) {
	h := newHarness(t, tripPolicy, http.HandlerFunc(echoHandler))
	c := h.client()
	for _, enc := range echoEncodings {
		resp, err := c.Get("https://api.example.com/v1/echo/" + enc)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ContentLength != -1 {
			t.Errorf("%s: a streamed body arrived with a Content-Length", enc)
		}
		all := string(body) + resp.Header.Get("X-Echo")
		for _, f := range secretForms {
			if strings.Contains(all, f) {
				t.Errorf("%s: secret reached the client: %q", enc, all)
			}
		}
		if enc == "raw" && !strings.Contains(string(body), "Hello "+placeholder+"!") {
			t.Errorf("raw echo not replaced by the placeholder: %q", body)
		}
		if resp.Header.Get("X-Echo") != "Bearer "+placeholder {
			t.Errorf("%s: header echo %q", enc, resp.Header.Get("X-Echo"))
		}
	}
	if got := testutil.ToFloat64(h.metrics.Scrubs.WithLabelValues("api")); got < 14 {
		t.Fatalf("scrubs metric %v", got)
	}
	if !strings.Contains(h.audit.String(), `"scrubbed":`) {
		t.Fatal("audit lacks scrub counts")
	}
	h.checkNoSecret()
}

// writeInPieces writes body in pieces cut at the given offsets, flushing
// and pausing after each, so that the proxy reads it across several
// reads.
func writeInPieces(w http.ResponseWriter, body string, cuts ...int) {
	prev := 0
	for _, c := range append(cuts, len(body)) {
		io.WriteString(w, body[prev:c])
		w.(http.Flusher).Flush()
		time.Sleep(2 * time.Millisecond)
		prev = c
	}
}

// fixedEchoHandler echoes the injected secret as echoHandler does, but
// announces the body's length, and writes it in three pieces that cut
// the echo.
func fixedEchoHandler(w http.ResponseWriter, r *http.Request) {
	secret := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	enc := echoed(secret, path.Base(r.URL.Path))
	body := "Hello " + enc + "!\n"
	w.Header().Set("X-Echo", "Bearer "+secret)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	writeInPieces(w, body, 6+len(enc)/3, 6+2*len(enc)/3)
}

// A small body with a Content-Length is read whole, scrubbed in one pass
// and sent with its new Content-Length, not chunked, whatever the
// encoding of the echo and however the upstream's writes cut it.
func TestSmallBodyScrubbedWhole(t *testing.T) {
	h := newHarness(t, tripPolicy, http.HandlerFunc(fixedEchoHandler))
	c := h.client()
	for _, enc := range echoEncodings {
		resp, err := c.Get("https://api.example.com/v1/echo/" + enc)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if resp.StatusCode != 200 || resp.ContentLength != int64(len(body)) || len(resp.TransferEncoding) > 0 {
			t.Errorf("%s: status %d, Content-Length %d, Transfer-Encoding %q for %d bytes", enc, resp.StatusCode, resp.ContentLength, resp.TransferEncoding, len(body))
		}
		all := string(body) + resp.Header.Get("X-Echo")
		for _, f := range secretForms {
			if strings.Contains(all, f) {
				t.Errorf("%s: secret reached the client: %q", enc, all)
			}
		}
		if !strings.HasPrefix(string(body), "Hello ") || !strings.HasSuffix(string(body), "!\n") {
			t.Errorf("%s: body %q", enc, body)
		}
		if enc == "raw" && string(body) != "Hello "+placeholder+"!\n" {
			t.Errorf("raw echo not replaced by the placeholder: %q", body)
		}
		if resp.Header.Get("X-Echo") != "Bearer "+placeholder {
			t.Errorf("%s: header echo %q", enc, resp.Header.Get("X-Echo"))
		}
		rec := h.waitAudit(t, `"path":"/v1/echo/`+enc+`"`)
		if want := fmt.Sprintf(`"status":200,"bytes_in":0,"bytes_out":%d,`, len(body)); !strings.Contains(rec, want) || !strings.HasSuffix(rec, `"scrubbed":2}`) {
			t.Errorf("%s: audit record %s, want %s and 2 scrubbed", enc, rec, want)
		}
	}
	if got := testutil.ToFloat64(h.metrics.Scrubs.WithLabelValues("api")); got != float64(2*len(echoEncodings)) {
		t.Fatalf("scrubs metric %v, want %d", got, 2*len(echoEncodings))
	}
	h.checkNoSecret()
}

// A body longer than maxWholeBody, or of unknown length, streams as
// before: chunked, scrubbed on the way. One of exactly maxWholeBody is
// still read whole, and one without an echo keeps its length.
func TestWholeBodyBound(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		n, _ := strconv.Atoi(path.Base(r.URL.Path))
		if r.URL.Query().Get("echo") == "none" {
			secret = strings.Repeat("-", len(secret))
		}
		body := "<" + secret + strings.Repeat(".", n-2*len(secret)-2) + secret + ">"
		if r.URL.Query().Get("length") != "none" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		writeInPieces(w, body, 1+len(secret)/2, len(body)-1-len(secret)/2)
	}))
	const ph = "tokrun-redacted-api"
	for _, tc := range []struct {
		url   string
		n     int
		whole bool
	}{
		{"/v1/len/100", 100, true},
		{"/v1/len/100?echo=none", 100, true},
		{fmt.Sprintf("/v1/len/%d", maxWholeBody), maxWholeBody, true},
		{fmt.Sprintf("/v1/len/%d", maxWholeBody+1), maxWholeBody + 1, false},
		{"/v1/len/300000", 300000, false},
		{"/v1/len/100?length=none", 100, false},
	} {
		resp, err := h.client().Get("https://api.example.com" + tc.url)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		echo := ph
		if strings.Contains(tc.url, "echo=none") {
			echo = strings.Repeat("-", len(testSecret))
		}
		want := "<" + echo + strings.Repeat(".", tc.n-2*len(testSecret)-2) + echo + ">"
		if string(body) != want {
			t.Errorf("%s: body of %d bytes is not the scrubbed one", tc.url, len(body))
		}
		if tc.whole && (resp.ContentLength != int64(len(want)) || len(resp.TransferEncoding) > 0) {
			t.Errorf("%s: read whole, but sent with Content-Length %d, Transfer-Encoding %q", tc.url, resp.ContentLength, resp.TransferEncoding)
		}
		if !tc.whole && (resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked") {
			t.Errorf("%s: streamed, but sent with Content-Length %d, Transfer-Encoding %q", tc.url, resp.ContentLength, resp.TransferEncoding)
		}
	}
	h.checkNoSecret()
}

// An upstream that sends less than its Content-Length and then closes or
// resets the connection gets the client the proxy's upstream failure and
// an audit record, never a truncated 200 nor any of the body.
func TestShortBodyIsUpstreamError(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sent  int // bytes of the body sent, of 200
		reset bool
	}{{"cut", 40, false}, {"reset", 40, true}, {"no body", 0, false}} {
		h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			body := ("Hello " + r.Header.Get("Authorization") + strings.Repeat(".", 200))[:tc.sent]
			fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 200\r\n\r\n%s", body)
			brw.Flush()
			if c, ok := conn.(*tls.Conn); ok && tc.reset {
				c.NetConn().(*net.TCPConn).SetLinger(0)
				c.NetConn().Close()
				return
			}
			conn.Close()
		}))
		resp, err := h.client().Get("https://api.example.com/v1/short")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Tokrun-Reason") != string(ReasonUpstreamError) ||
			strings.Contains(string(body), "Hello") || strings.Contains(string(body), testSecret[:12]) {
			t.Fatalf("%s: status %d reason %q body %q, %v", tc.name, resp.StatusCode, resp.Header.Get("X-Tokrun-Reason"), body, err)
		}
		rec := h.waitAudit(t, `"path":"/v1/short"`)
		for _, want := range []string{`"decision":"deny","reason":"` + string(ReasonUpstreamError) + `","rule":"api"`, `"secrets":["api"],"status":502,`, `"error":"could not complete the request to api.example.com:443"`} {
			if !strings.Contains(rec, want) {
				t.Errorf("%s: audit record %s lacks %s", tc.name, rec, want)
			}
		}
		if got := testutil.ToFloat64(h.metrics.Decisions.WithLabelValues("deny", "api", string(ReasonUpstreamError))); got != 1 {
			t.Errorf("%s: upstream failure decisions %v", tc.name, got)
		}
		h.checkNoSecret()
	}
}

// Responses without a body to scrub (to HEAD, 204, 304, an empty 200)
// pass as before, though they announce a length.
func TestBodilessResponsesWithSecret(t *testing.T) {
	h := newHarness(t, strings.Replace(basicPolicy, "methods: [GET, POST]", "methods: [GET, POST, HEAD]", 1), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch path.Base(r.URL.Path) {
		case "head":
			w.Header().Set("Content-Length", "5000")
		case "204":
			w.WriteHeader(http.StatusNoContent)
		case "304":
			w.WriteHeader(http.StatusNotModified)
		case "empty":
			w.Header().Set("Content-Length", "0")
		}
	}))
	for _, tc := range []struct {
		method, path string
		status       int
	}{{"HEAD", "/v1/head", 200}, {"GET", "/v1/204", 204}, {"GET", "/v1/304", 304}, {"GET", "/v1/empty", 200}} {
		status, body, reason := h.do(h.client(), newRequest(t, tc.method, "https://api.example.com"+tc.path, nil))
		if status != tc.status || body != "" || reason != "" {
			t.Errorf("%s %s: status %d, body %q, reason %q", tc.method, tc.path, status, body, reason)
		}
	}
}

// With several secrets injected, each one's scrubber runs over the body
// in turn, and each counts its own replacements.
func TestSeveralSecretsScrubbedWhole(t *testing.T) {
	const other = "other-SECRET-9876543210fedcba"
	pol := withSecondSecret(t, other)
	h := newHarness(t, pol, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api, oth := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), r.Header.Get("X-Other-Key")
		body := "a=" + api + " b=" + base64.StdEncoding.EncodeToString([]byte(oth)) + " c=" + oth + " d=" + hex.EncodeToString([]byte(api)) + "."
		w.Header().Set("X-Echo", oth)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		writeInPieces(w, body, len(body)/2)
	}))
	resp, err := h.client().Get("https://api.example.com/v1/both")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	const want = "a=tokrun-redacted-api b=tokrun-redacted-other c=tokrun-redacted-other d=tokrun-redacted-api."
	if err != nil || string(body) != want || resp.ContentLength != int64(len(want)) || resp.Header.Get("X-Echo") != "tokrun-redacted-other" {
		t.Fatalf("body %q (Content-Length %d), X-Echo %q, %v", body, resp.ContentLength, resp.Header.Get("X-Echo"), err)
	}
	if rec := h.waitAudit(t, `"path":"/v1/both"`); !strings.HasSuffix(rec, `"scrubbed":5}`) {
		t.Errorf("audit record %s, want 5 scrubbed", rec)
	}
	for name, want := range map[string]float64{"api": 2, "other": 3} {
		if got := testutil.ToFloat64(h.metrics.Scrubs.WithLabelValues(name)); got != want {
			t.Errorf("scrubs of %s: %v, want %v", name, got, want)
		}
	}
	if strings.Contains(h.audit.String(), other) {
		t.Error("the second secret reached the audit log")
	}
	h.checkNoSecret()
}

// errorAfter returns its data, then err.
type errorAfter struct {
	data []byte
	err  error
}

func (e *errorAfter) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

// readWhole takes exactly Content-Length bytes followed by the source's
// end; anything else is an error.
func TestReadWhole(t *testing.T) {
	errReset := errors.New("connection reset")
	for _, tc := range []struct {
		name   string
		length int64
		src    io.Reader
		want   error
	}{
		{"exact", 5, strings.NewReader("hello"), nil},
		{"exact in pieces", 5, iotest.OneByteReader(strings.NewReader("hello")), nil},
		{"empty", 0, strings.NewReader(""), nil},
		{"short", 5, strings.NewReader("hell"), io.ErrUnexpectedEOF},
		{"nothing", 5, strings.NewReader(""), io.ErrUnexpectedEOF},
		{"longer", 5, strings.NewReader("hello!"), errLongerBody},
		{"fails inside", 5, &errorAfter{[]byte("he"), errReset}, errReset},
		{"fails at the end", 5, &errorAfter{[]byte("hello"), errReset}, errReset},
	} {
		resp := &http.Response{StatusCode: 200, ContentLength: tc.length, Body: io.NopCloser(tc.src)}
		w, err := readWhole(resp)
		if !errors.Is(err, tc.want) || (err == nil) != (w != nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		if w == nil {
			continue
		}
		got, err := io.ReadAll(w)
		if err != nil || int64(len(got)) != tc.length || string(got) != "hello"[:tc.length] {
			t.Errorf("%s: read %q, %v", tc.name, got, err)
		}
	}
}

// The buffers of a body read whole go back to their pool zeroed (they
// held the unscrubbed body), once it has been read or closed, and a
// read after that finds the body ended.
func TestWholeBodyBuffersAreZeroed(t *testing.T) {
	sc, err := scrub.New([]scrub.Pair{{Secret: testSecret, Placeholder: placeholder}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := scrub.New([]scrub.Pair{{Secret: "other-SECRET-9876543210", Placeholder: "PH_OTHER"}})
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("x", 3000) + testSecret + " other-SECRET-9876543210 " + testSecret
	for _, closeEarly := range []bool{false, true} {
		w, err := readWhole(&http.Response{StatusCode: 200, ContentLength: int64(len(text)), Body: io.NopCloser(strings.NewReader(text))})
		if err != nil {
			t.Fatal(err)
		}
		if n := w.scrub(sc) + w.scrub(other); n != 3 {
			t.Fatalf("%d replacements, want 3", n)
		}
		var held [][]byte
		for _, bb := range w.bufs {
			held = append(held, bb.b[:cap(bb.b)])
		}
		want := strings.Repeat("x", 3000) + placeholder + " PH_OTHER " + placeholder
		if closeEarly {
			buf := make([]byte, 100)
			if n, err := w.Read(buf); n != 100 || err != nil || string(buf) != want[:100] {
				t.Fatalf("first read %d, %v", n, err)
			}
			w.Close()
		} else if got, err := io.ReadAll(w); string(got) != want || err != nil {
			t.Fatalf("read %q, %v", got, err)
		}
		for i, b := range held {
			if bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }) {
				t.Errorf("closed early %v: buffer %d was released holding data", closeEarly, i)
			}
		}
		if n, err := w.Read(make([]byte, 10)); n != 0 || err != io.EOF {
			t.Errorf("closed early %v: read after the end: %d, %v", closeEarly, n, err)
		}
	}
}

// Body buffers come in pooled sizes up to maxWholeBody, and a larger one
// is made when asked for.
func TestBodyBufSizes(t *testing.T) {
	for _, tc := range []struct{ n, cap int }{{0, 4 << 10}, {1, 4 << 10}, {4 << 10, 4 << 10}, {4<<10 + 1, 8 << 10}, {maxWholeBody, maxWholeBody}, {maxWholeBody + 1, maxWholeBody + 1}} {
		bb := getBodyBuf(tc.n)
		if len(bb.b) != 0 || cap(bb.b) != tc.cap {
			t.Errorf("getBodyBuf(%d): len %d cap %d, want 0 and %d", tc.n, len(bb.b), cap(bb.b), tc.cap)
		}
		putBodyBuf(bb)
	}
}

// A secret that holds another injected secret is replaced whole, in a
// body read whole and in a streamed one: the one inside it must not break
// it up first and leave the rest to the client.
func TestNestedSecretsAreScrubbedWhole(t *testing.T) {
	other := testSecret + "-TAIL-of-the-second-secret"
	pol := withSecondSecret(t, other)
	for _, whole := range []bool{true, false} {
		h := newHarness(t, pol, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body := "echo=" + r.Header.Get("X-Other-Key") + " hex=" + hex.EncodeToString([]byte(r.Header.Get("X-Other-Key"))) + "."
			if whole {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			}
			io.WriteString(w, body)
		}))
		resp, err := h.client().Get("https://api.example.com/v1/both")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "echo=tokrun-redacted-other hex=tokrun-redacted-other."; string(body) != want {
			t.Errorf("whole=%v: body %q, want %q", whole, body, want)
		}
	}
}

// A response without a body (to HEAD) keeps its Content-Length when a
// secret was injected, as it does without one.
func TestHeadWithSecretKeepsContentLength(t *testing.T) {
	h := newHarness(t, strings.Replace(basicPolicy, "methods: [GET, POST]", "methods: [GET, POST, HEAD]", 1), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5000")
	}))
	resp, err := h.client().Do(newRequest(t, "HEAD", "https://api.example.com/v1/head", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 5000 || resp.Header.Get("Content-Length") != "5000" {
		t.Fatalf("status %d, ContentLength %d, header %q; want 5000", resp.StatusCode, resp.ContentLength, resp.Header.Get("Content-Length"))
	}
}

// withSecondSecret is basicPolicy with a second secret, "other" (value
// other, header X-Other-Key, bound to api.example.com), injected by rule
// api with api.
func withSecondSecret(t *testing.T, other string) string {
	t.Helper()
	sealed, err := sealing.Seal(rand.Reader, testKeys(t).PublicKeys()[0], sealing.Binding{
		Name: "other", Hosts: []string{"api.example.com"}, Header: "X-Other-Key", Format: "{}",
	}, other, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pol := strings.Replace(basicPolicy, "secrets:\n", "secrets:\n  other:\n    sealed: "+sealed+"\n", 1)
	return strings.Replace(pol, "inject: [api]", "inject: [api, other]", 1)
}
