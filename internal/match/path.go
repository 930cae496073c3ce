package match

import (
	"errors"
	"fmt"
	"strings"
)

// ErrPath reports a request path that cannot be matched safely.
var ErrPath = errors.New("invalid path")

// maxPathLen bounds the raw path accepted for normalisation.
const maxPathLen = 8 << 10

// NormalizePath returns the canonical form of an escaped request path (the
// part of a request target before "?"). The result is what rules match
// and what should be sent upstream, so that the proxy and the server see
// the same path:
//
//   - percent-encodings of unreserved characters (A-Z a-z 0-9 - . _ ~) are
//     decoded and every other percent-encoding is written in upper case;
//   - bytes that may not appear raw in a path are percent-encoded;
//   - runs of "/" collapse into one, and "." and ".." segments are removed
//     as in RFC 3986 section 5.2.4 (".." never climbs above "/").
//
// Ambiguous paths are refused with ErrPath: an encoded "/" (%2F) or "\"
// (%5C), a raw "\", a control character, raw or encoded (%00-%1F, %7F:
// some servers trim an encoded line end or tab, or let a "$" in a route
// pattern match before one), a segment such as "..;x" or ".;x" that some
// servers read as a dot-segment, and malformed percent-encodings.
// NormalizePath is idempotent.
func NormalizePath(p string) (string, error) {
	if isNormal(p) {
		return p, nil
	}
	return normalizePath(p)
}

// isNormal reports whether p is already in the form NormalizePath returns,
// so that it can be returned as is without allocating: it starts with "/",
// holds only bytes that stay raw and escapes that stay as written, and has
// no repeated "/", no "." or ".." segment and no segment NormalizePath
// refuses. A fuzz test checks that normalizePath returns such a p
// unchanged.
func isNormal(p string) bool {
	if p == "" || p[0] != '/' || len(p) > maxPathLen {
		return false
	}
	start := 1 // of the current segment
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			switch c := p[i]; {
			case c == '%':
				if !isNormalEscape(p[i:]) {
					return false
				}
				i += 2
			case !isPathChar(c):
				return false
			}
			continue
		}
		seg := p[start:i]
		if seg == "" && i < len(p) || seg == "." || seg == ".." || strings.HasPrefix(seg, "..;") || strings.HasPrefix(seg, ".;") {
			return false
		}
		start = i + 1
	}
	return true
}

// isNormalEscape reports whether s starts with a percent-encoding that
// NormalizePath keeps as written: upper-case hex digits of a byte that is
// neither unreserved nor refused.
func isNormalEscape(s string) bool {
	if len(s) < 3 || !isUpperHex(s[1]) || !isUpperHex(s[2]) {
		return false
	}
	d := unhex(s[1])<<4 | unhex(s[2])
	return d != '/' && d != '\\' && !isCTLByte(d) && !isUnreserved(d)
}

// normalizePath is NormalizePath for a path that is not already normal.
func normalizePath(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	if len(p) > maxPathLen {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrPath, maxPathLen)
	}
	if p[0] != '/' {
		return "", fmt.Errorf("%w: does not start with \"/\"", ErrPath)
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", fmt.Errorf("%w: malformed percent-encoding", ErrPath)
			}
			d := unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			switch {
			case d == '/' || d == '\\':
				return "", fmt.Errorf("%w: encoded slash or backslash is ambiguous", ErrPath)
			case isCTLByte(d):
				return "", fmt.Errorf("%w: encoded control character", ErrPath)
			case isUnreserved(d):
				b.WriteByte(d)
			default:
				writeEscaped(&b, d)
			}
		case c == '\\':
			return "", fmt.Errorf("%w: backslash is ambiguous", ErrPath)
		case isCTLByte(c):
			return "", fmt.Errorf("%w: control character", ErrPath)
		case isPathChar(c):
			b.WriteByte(c)
		default:
			writeEscaped(&b, c)
		}
	}
	if b.Len() > maxPathLen {
		return "", fmt.Errorf("%w: longer than %d bytes once escaped", ErrPath, maxPathLen)
	}
	return removeDotSegments(b.String())
}

func removeDotSegments(p string) (string, error) {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case s == "":
			// Repeated slash, or the trailing one.
			trailing = last
			continue
		case s == ".":
			trailing = true
			continue
		case s == "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = true
			continue
		case strings.HasPrefix(s, "..;") || strings.HasPrefix(s, ".;"):
			return "", fmt.Errorf("%w: segment %q is read as a dot-segment by some servers", ErrPath, s)
		}
		out = append(out, s)
		trailing = false
	}
	if len(out) == 0 {
		return "/", nil
	}
	r := "/" + strings.Join(out, "/")
	if trailing {
		r += "/"
	}
	return r, nil
}

// LenientUnescape decodes a query component as lenient servers do (PHP,
// Node's querystring): "+" is a space, a valid %XX escape its byte, and
// anything else, an invalid escape included, stays as it is.
func LenientUnescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isUpperHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func writeEscaped(b *strings.Builder, c byte) {
	const hexUpper = "0123456789ABCDEF"
	b.WriteByte('%')
	b.WriteByte(hexUpper[c>>4])
	b.WriteByte(hexUpper[c&15])
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// isPathChar reports whether c may appear raw in a normalised path:
// unreserved, sub-delims, ":", "@" and "/" (RFC 3986 pchar plus "/").
func isPathChar(c byte) bool {
	if isUnreserved(c) {
		return true
	}
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@', '/':
		return true
	}
	return false
}

// isCTLByte reports whether c is an ASCII control character.
func isCTLByte(c byte) bool { return c < 0x20 || c == 0x7f }
