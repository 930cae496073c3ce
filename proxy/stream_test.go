package proxy

import (
	"bufio"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Server-sent events arrive one by one, while the upstream is still
// writing, not when the response ends.
func TestServerSentEventsStream(t *testing.T) {
	release := make(chan struct{})
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: second\n\n")
	}))
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	resp, err := h.client().Do(newRequest(t, "GET", "https://open.example.com/events", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: second\n\n" {
		t.Fatalf("rest %q", rest)
	}
}

// A WebSocket upgrade is relayed inside an intercepted tunnel, and bytes
// flow both ways after the 101.
func TestWebSocketThroughTunnel(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want websocket", 400)
			return
		}
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
		brw.Flush()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(brw, buf); err != nil {
			return
		}
		conn.Write([]byte(strings.ToUpper(string(buf))))
	}))
	tc := h.tunnel(t, "open.example.com")
	defer tc.Close()
	io.WriteString(tc, "GET /ws HTTP/1.1\r\nHost: open.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	io.WriteString(tc, "hello")
	got := make([]byte, 5)
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "HELLO" {
		t.Fatalf("echo %q, %v", got, err)
	}
}

// tunnel opens a CONNECT tunnel through the proxy and returns the TLS
// connection inside it.
func (h *harness) tunnel(t *testing.T, host string) *tls.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "CONNECT "+host+":443 HTTP/1.1\r\nHost: "+host+":443\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT %s: %v %v", host, resp, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(h.ca.Certificate())
	tc := tls.Client(conn, &tls.Config{ServerName: host, RootCAs: pool})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc
}

// A client that never finishes its headers is cut off, inside a tunnel
// as well as on the proxy port.
func TestSlowHeadersTimeOut(t *testing.T) {
	h := newHarness(t, basicPolicy, nil, func(_ *harness, c *Config) { c.Limits.ReadHeaderTimeout = 300 * time.Millisecond })
	tc := h.tunnel(t, "open.example.com")
	defer tc.Close()
	io.WriteString(tc, "GET / HTTP/1.1\r\nHost: open.example.com\r\nX-Slow: ")
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(tc)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("proxy kept a slow-header connection open for 10s")
	}
}

// Oversized request headers are refused inside a tunnel (431) without the
// proxy buffering them.
func TestOversizedHeadersRefused(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	tc := h.tunnel(t, "open.example.com")
	defer tc.Close()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	go func() {
		io.WriteString(tc, "GET / HTTP/1.1\r\nHost: open.example.com\r\nX-Big: ")
		chunk := strings.Repeat("a", 64<<10)
		for i := 0; i < 1024; i++ { // up to 64 MiB, stops when the proxy closes
			if _, err := io.WriteString(tc, chunk); err != nil {
				return
			}
		}
	}()
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get("X-Tokrun-Reason") != "headers_too_large" {
		t.Fatalf("status %d reason %q", resp.StatusCode, resp.Header.Get("X-Tokrun-Reason"))
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 16<<20 {
		t.Fatalf("refusing an oversized header allocated %d MiB", grown>>20)
	}
	if h.dials.Load() != 0 {
		t.Fatal("oversized request reached upstream")
	}
}

// The header limit is 32 KiB (plus net/http's 4 KiB slack): 40 KiB of
// headers are refused, 16 KiB pass.
func TestHeaderLimitIs32KiB(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	for _, tt := range []struct {
		size   int
		status int
	}{{16 << 10, 200}, {40 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		req := newRequest(t, "GET", "https://open.example.com/", nil)
		req.Header.Set("X-Big", strings.Repeat("a", tt.size))
		resp, err := h.client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%d KiB of headers: status %d, want %d", tt.size>>10, resp.StatusCode, tt.status)
		}
	}
}

// A client that never finishes a request on the proxy port itself is cut
// off too.
func TestSlowHeadersOnProxyPortTimeOut(t *testing.T) {
	h := newHarness(t, basicPolicy, nil, func(_ *harness, c *Config) { c.Limits.ReadHeaderTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "CONNECT open.example.com:443 HTTP/1.1\r\nX-Slow: ")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the proxy port kept a slow-header connection open for 10s")
	}
}

// A plain-http request whose body stalls ends with the connection's
// lifetime, not later: in the start scanned before dialling (whose wait,
// BodyPeekTimeout, would end after it) and after it, once the body goes
// upstream (the scan has lifted its wait: "no deadline" is the
// connection's end).
func TestPlainStalledBodyEndsWithConnection(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer up.Close()
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	const lifetime = 500 * time.Millisecond
	h := newHarness(t, plainRule(tripPolicy, port), nil, func(_ *harness, c *Config) {
		c.Limits.MaxConnDuration = lifetime
		c.Limits.BodyPeekTimeout = time.Hour
	})
	for _, tt := range []struct {
		name   string
		sent   int
		dialed bool
	}{{"in the scanned start", 1000, false}, {"after the scanned start", peekBody + 1000, true}} {
		dials := h.dials.Load()
		start := time.Now()
		conn, err := net.Dial("tcp", h.proxyURL.Host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST http://plain.example.com:%s/up HTTP/1.1\r\nHost: plain.example.com:%s\r\nContent-Length: %d\r\n\r\n%s",
			port, port, 1<<20, strings.Repeat("x", tt.sent))
		conn.SetReadDeadline(time.Now().Add(40 * lifetime)) // only a hang fails
		_, err = io.ReadAll(conn)
		took := time.Since(start)
		conn.Close()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("%s: a stalled body held the connection for %v, past its lifetime of %v", tt.name, took, lifetime)
		} else if took < lifetime {
			t.Errorf("%s: the connection ended after %v, before its lifetime: the body did not stall it", tt.name, took)
		}
		if dialed := h.dials.Load() != dials; dialed != tt.dialed {
			t.Errorf("%s: the upstream was dialled: %v, want %v", tt.name, dialed, tt.dialed)
		}
	}
}
