package scrub

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// forms returns every encoded form of secret that is matched, without
// duplicates, in a fixed order. See the package documentation.
func forms(secret string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(vs ...string) {
		for _, v := range vs {
			if v != "" && !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	add(secret)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		raw := enc.WithPadding(base64.NoPadding)
		add(enc.EncodeToString([]byte(secret)), raw.EncodeToString([]byte(secret)))
		for k := range 3 {
			add(base64Run(raw, secret, k))
		}
	}
	h := hex.EncodeToString([]byte(secret))
	add(h, strings.ToUpper(h))
	for _, p := range []string{url.QueryEscape(secret), url.PathEscape(secret), escapeUnreserved(secret)} {
		add(p, lowerEscapes(p))
	}
	for _, html := range []bool{true, false} {
		j := jsonString(secret, html)
		add(j, strings.ReplaceAll(j, "/", `\/`))
	}
	add(asciiJSON(jsonString(secret, false)))
	return out
}

// base64Run returns the characters of the base64 encoding of secret
// preceded by k bytes that depend on secret's bits alone: character i
// covers bits [6i, 6i+6) and secret covers bits [8k, 8k+8n).
func base64Run(raw *base64.Encoding, secret string, k int) string {
	buf := make([]byte, k+len(secret))
	copy(buf[k:], secret)
	e := raw.EncodeToString(buf)
	lo := (8*k + 5) / 6
	hi := 8 * (k + len(secret)) / 6
	return e[lo:hi]
}

// escapeUnreserved percent-encodes every byte outside RFC 3986's
// unreserved set, with uppercase hex digits.
func escapeUnreserved(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// lowerEscapes rewrites every %XX escape of s with lowercase hex digits.
func lowerEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1] = lowerHex(b[i+1])
			b[i+2] = lowerHex(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lowerHex(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

// jsonString returns s as encoding/json writes it inside a string literal,
// without the quotes.
func jsonString(s string, escapeHTML bool) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(escapeHTML)
	_ = e.Encode(s) // encoding a string cannot fail
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))[1 : b.Len()-2])
}

// asciiJSON rewrites every non-ASCII character of a JSON string body as
// \uXXXX escapes (UTF-16 surrogate pairs above U+FFFF).
func asciiJSON(j string) string {
	var b strings.Builder
	for _, r := range j {
		switch {
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}
