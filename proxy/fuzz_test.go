package proxy

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// Whatever headers a client sends, after stripping and injection the
// injected header holds exactly the secret's value, and no hop-by-hop
// header, header named in Connection, Proxy-* or X-Tokrun-* header is left.
func FuzzHeaderHandling(f *testing.F) {
	f.Add("Connection", "Authorization, X-Foo", "Authorization", "Bearer client")
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
