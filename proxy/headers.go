package proxy

import (
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// hopByHop are the headers that describe one connection, not the message
// (RFC 9110 section 7.6.1), plus the proxy's own.
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// stripHopByHop removes hop-by-hop headers, every header named in
// Connection, every Proxy-* header and the proxy's own X-Tokrun-* headers.
// It runs before injection, so a client that names the injected header in
// Connection cannot have it removed.
func stripHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
	for name := range h {
		if strings.HasPrefix(name, "Proxy-") || strings.HasPrefix(name, "X-Tokrun-") {
			delete(h, name)
		}
	}
}

// isWebSocketUpgrade reports whether the client asks to switch to the
// WebSocket protocol, the only upgrade the proxy relays.
func isWebSocketUpgrade(h http.Header) bool {
	return httpguts.HeaderValuesContainsToken(h["Connection"], "upgrade") &&
		httpguts.HeaderValuesContainsToken(h["Upgrade"], "websocket")
}
