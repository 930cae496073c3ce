package proxy

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// echoHandler returns the injected secret in the encoding the path
// names, split in two writes with a flush between them so the proxy sees
// it across read boundaries, and also in a response header.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	secret := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	var enc string
	switch strings.TrimPrefix(r.URL.Path, "/v1/echo/") {
	case "raw":
		enc = secret
	case "base64":
		enc = base64.StdEncoding.EncodeToString([]byte(secret))
	case "base64url":
		enc = base64.RawURLEncoding.EncodeToString([]byte(secret))
	case "basic":
		enc = base64.StdEncoding.EncodeToString([]byte("user:" + secret))
	case "hex":
		enc = hex.EncodeToString([]byte(secret))
	case "percent":
		enc = url.QueryEscape(secret + "/+&")
	case "json":
		b, _ := json.Marshal(map[string]string{"you_sent": "Bearer " + secret})
		enc = string(b)
	}
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
	forms := []string{testSecret, base64.StdEncoding.EncodeToString([]byte(testSecret)), base64.RawURLEncoding.EncodeToString([]byte(testSecret)),
		hex.EncodeToString([]byte(testSecret)), url.QueryEscape(testSecret)}
	for _, enc := range []string{"raw", "base64", "base64url", "basic", "hex", "percent", "json"} {
		resp, err := c.Get("https://api.example.com/v1/echo/" + enc)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		all := string(body) + resp.Header.Get("X-Echo")
		for _, f := range forms {
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
