package proxy

import (
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// isHopByHop reports whether a canonical header name describes one
// connection, not the message (RFC 9110 section 7.6.1), or belongs to the
// proxy: every Proxy-* header and the proxy's own X-Tokrun-* headers.
func isHopByHop(name string) bool {
	switch name {
	case "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return strings.HasPrefix(name, "Proxy-") || strings.HasPrefix(name, "X-Tokrun-")
}

// stripHopByHop removes hop-by-hop headers (isHopByHop) and every header
// named in Connection. It runs before injection, so a client that names
// the injected header in Connection cannot have it removed. So are
// framing and hop-by-hop headers spelled with "_" or "." (Transfer_Encoding,
// Content.Length), which CGI-style servers read as the real ones.
func stripHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for name := range h {
		if isHopByHop(name) {
			delete(h, name)
		} else if cgi, ok := cgiSpelling(name); ok && isFraming(cgi) {
			delete(h, name)
		}
	}
}

// cgiSpelling returns the canonical name a CGI-style server may take a
// header's name for, every character but letters, digits and "-" made
// "-" (PHP makes "_", "." and " " alike), when that differs from the name.
func cgiSpelling(name string) (string, bool) {
	if strings.IndexFunc(name, notAlnumDash) < 0 {
		return "", false
	}
	return http.CanonicalHeaderKey(strings.Map(func(r rune) rune {
		if notAlnumDash(r) {
			return '-'
		}
		return r
	}, name)), true
}

func notAlnumDash(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
}

// isFraming reports whether a canonical header name is hop-by-hop or
// frames the message or names its target.
func isFraming(name string) bool {
	return isHopByHop(name) || name == "Content-Length" || name == "Host"
}

// isWebSocketUpgrade reports whether the client asks to switch to the
// WebSocket protocol, the only upgrade the proxy relays.
func isWebSocketUpgrade(h http.Header) bool {
	return httpguts.HeaderValuesContainsToken(h["Connection"], "upgrade") &&
		httpguts.HeaderValuesContainsToken(h["Upgrade"], "websocket")
}
