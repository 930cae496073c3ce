package proxy

import (
	"io"
	"net/http"
	"testing"
)

// A client's "Connection: close" ends the client's connection, not the
// pooled upstream one: the next request reuses it.
func TestClientConnectionCloseKeepsUpstreamPooled(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	c := h.client()
	for i := 0; i < 3; i++ {
		req := newRequest(t, "GET", "https://open.example.com/x", nil)
		req.Close = true // sends Connection: close
		status, body, _ := h.do(c, req)
		if status != 200 || body == "" {
			t.Fatalf("status %d", status)
		}
	}
	if n := h.dials.Load(); n != 1 {
		t.Fatalf("%d upstream dials for 3 requests; want 1 pooled connection", n)
	}
}

// Proxy environment variables of the proxy's own process are ignored: the
// upstream is dialled directly.
func TestIgnoresProxyEnvironment(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("ALL_PROXY", "http://127.0.0.1:1")
	h := newHarness(t, basicPolicy, nil)
	status, body, _ := h.do(h.client(), newRequest(t, "GET", "https://open.example.com/x", nil))
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
}

// Many concurrent requests to one host keep more than two upstream
// connections alive (net/http's default is 2 idle per host).
func TestUpstreamPoolHoldsManyIdleConnections(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 8)
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "ok")
	}))
	c := h.client()
	done := make(chan struct{})
	for i := 0; i < 8; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			if resp, err := c.Get("https://open.example.com/x"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	for i := 0; i < 8; i++ {
		<-arrived
	}
	close(release)
	for i := 0; i < 8; i++ {
		<-done
	}
	first := h.dials.Load()
	// A second burst of 8 reuses the 8 pooled connections.
	for i := 0; i < 8; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			if resp, err := c.Get("https://open.example.com/y"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	for i := 0; i < 8; i++ {
		<-arrived
	}
	for i := 0; i < 8; i++ {
		<-done
	}
	if first != 8 || h.dials.Load() != 8 {
		t.Fatalf("dials: %d for the first burst, %d in all; want 8 and 8", first, h.dials.Load())
	}
}
