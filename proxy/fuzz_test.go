package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// Whatever headers a client sends, after stripping and injection the
// injected header holds exactly the secret's value, and no hop-by-hop
// header, header named in Connection, Proxy-* or X-Tokrun-* header is
// left, nor one of those or a framing header spelled with "_".
func FuzzHeaderHandling(f *testing.F) {
	f.Add("Connection", "Authorization, X-Foo", "Authorization", "Bearer client")
	f.Add("Transfer_Encoding", "chunked", "content_length", "5")
	f.Add("Proxy_Connection", "x", "HOST_", "x")
	f.Add("Transfer.Encoding", "chunked", "Content.length", "5")
	f.Add("connection", "keep-alive, upgrade", "Upgrade", "websocket")
	f.Add("Proxy-Authorization", "Basic x", "X-Tokrun-Reason", "x")
	f.Add("Connection", "authorization", "AUTHORIZATION", "x")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		h := http.Header{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if httpguts.ValidHeaderFieldName(kv[0]) && httpguts.ValidHeaderFieldValue(kv[1]) {
				h.Add(kv[0], kv[1])
			}
		}
		named := map[string]bool{}
		for _, v := range h.Values("Connection") {
			for _, n := range strings.Split(v, ",") {
				if n = strings.TrimSpace(n); n != "" {
					named[http.CanonicalHeaderKey(n)] = true
				}
			}
		}
		stripHopByHop(h)
		const injected = "Bearer sk-injected"
		h.Set("Authorization", injected)
		if got := h.Values("Authorization"); len(got) != 1 || got[0] != injected {
			t.Fatalf("injected header = %q", got)
		}
		for name := range h {
			canon := http.CanonicalHeaderKey(name)
			if canon == "Authorization" {
				continue
			}
			if dashed := http.CanonicalHeaderKey(strings.NewReplacer("_", "-", ".", "-").Replace(name)); dashed != canon {
				if dashed == "Content-Length" || dashed == "Host" || isHopByHop(dashed) {
					t.Fatalf("header %s, read as %s by CGI-style servers, left", name, dashed)
				}
			}
			for _, hop := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
				"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
				if canon == hop {
					t.Fatalf("hop-by-hop header %s left", name)
				}
			}
			if named[canon] || strings.HasPrefix(canon, "Proxy-") || strings.HasPrefix(canon, "X-Tokrun-") {
				t.Fatalf("header %s left after stripping", name)
			}
		}
	})
}

// writeHeader writes the same lines as Header.Write, in any order, for
// any header, valid or not.
func FuzzWriteHeader(f *testing.F) {
	f.Add("Content-Type", "text/plain", "X-A", " spaced \t", "x-b", "a\r\nInjected: 1")
	f.Add("Bad Name", "v", "Set-Cookie", "a\nb", "", "\r")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		h := http.Header{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}, {k3, v3}} {
			h[kv[0]] = append(h[kv[0]], kv[1]) // raw: no canonicalisation or checks
		}
		var want, got bytes.Buffer
		if err := h.Write(&want); err != nil {
			t.Fatal(err)
		}
		bw := bufio.NewWriter(&got)
		writeHeader(bw, h, nil)
		bw.Flush()
		lines := func(b []byte) []string {
			l := strings.SplitAfter(string(b), "\r\n")
			slices.Sort(l)
			return l
		}
		if w, g := lines(want.Bytes()), lines(got.Bytes()); !slices.Equal(w, g) {
			t.Fatalf("writeHeader wrote\n%q\nHeader.Write\n%q", g, w)
		}
	})
}

// writeBodiless writes what Request.Write writes for a request without a
// body, up to the order of header lines.
func FuzzWriteBodiless(f *testing.F) {
	f.Add("GET", "api.example.com", "/v1/x", "a=1", "User-Agent", "curl/8", "Accept", "*/*")
	f.Add("DELETE", "api.example.com:8443", "//x", "", "Content-Length", "0", "X-Bad", "a\r\nb")
	f.Add("POST", "[::1]:443", "/", "", "User-Agent", "", "Host", "evil.example")
	f.Add("PUT", "h%25", "/", "", "Trailer", "x", "Transfer-Encoding", "chunked")
	f.Fuzz(func(t *testing.T, method, host, path, query, k1, v1, k2, v2 string) {
		h := http.Header{}
		h[k1] = append(h[k1], v1)
		h[k2] = append(h[k2], v2)
		u := &url.URL{Scheme: "https", Host: host, Opaque: path, RawQuery: query}
		req := func() *http.Request {
			return &http.Request{Method: method, URL: u, Host: host, Header: h, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Body: http.NoBody}
		}
		var want, got bytes.Buffer
		werr := req().Write(&want)
		bw := bufio.NewWriter(&got)
		gerr := writeBodiless(bw, req())
		bw.Flush()
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("Request.Write: %v, writeBodiless: %v", werr, gerr)
		}
		if werr != nil {
			return
		}
		lines := func(b []byte) []string {
			l := strings.SplitAfter(string(b), "\r\n")
			slices.Sort(l[1:]) // the request line stays first
			return l
		}
		if w, g := lines(want.Bytes()), lines(got.Bytes()); !slices.Equal(w, g) {
			t.Fatalf("writeBodiless wrote\n%q\nRequest.Write\n%q", g, w)
		}
	})
}
