package scrub

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const (
	plainSecret   = "sk-live-4f9a8B7c6D5e4F3a2b1C"
	specialSecret = "p@ss/wörd+<&> \"q\"\u2028x=y%z😀~??~?>~" // base64 has + and /, length%3 != 0
	ph            = "TOKRUN_PH_1"
)

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pairs []Pair
		want  string
	}{
		{"no pairs", nil, "no pairs"},
		{"3-byte secret", []Pair{{"abc", ph}}, "pair 0: secret is shorter than 8 bytes"},
		{"7-byte secret", []Pair{{plainSecret, ph}, {"abcdefg", "P2"}}, "pair 1: secret is shorter than 8 bytes"},
		{"huge secret", []Pair{{strings.Repeat("k", MaxSecretLen+1), ph}}, "longer than 4096 bytes"},
		{"empty placeholder", []Pair{{plainSecret, ""}}, "empty placeholder"},
		{"placeholder charset", []Pair{{plainSecret, "{{KEY}}"}}, "outside [A-Za-z0-9_-]"},
		{"placeholder space", []Pair{{plainSecret, "A B"}}, "outside [A-Za-z0-9_-]"},
		{"long placeholder", []Pair{{plainSecret, strings.Repeat("P", MaxPlaceholderLen+1)}}, "placeholder is longer"},
		{"placeholder is the secret", []Pair{{"abcdefgh12", "abcdefgh12"}}, "overlaps an encoding of the secret of pair 0"},
		{"placeholder holds hex", []Pair{{"abcdefgh12", "x" + hex.EncodeToString([]byte("abcdefgh12"))}}, "overlaps"},
		{"placeholder inside secret", []Pair{{"abcdefgh12", "defgh"}}, "overlaps"},
		{"placeholder holds other secret", []Pair{{plainSecret, ph}, {"zzzzzzzz99", "P_zzzzzzzz99"}}, "pair 1: placeholder overlaps an encoding of the secret of pair 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.pairs)
			if err == nil {
				t.Fatalf("New succeeded: %v", s)
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want ErrConfig containing %q", err, tc.want)
			}
			for _, p := range tc.pairs {
				if len(p.Secret) >= 3 && strings.Contains(err.Error(), p.Secret) {
					t.Fatalf("error quotes a secret: %q", err)
				}
			}
		})
	}
}

func TestMinimumSecret(t *testing.T) {
	s := mustNew(t, Pair{"12345678", "P_x"})
	if got, n := s.Replace("id=12345678;"); got != "id=P_x;" || n != 1 {
		t.Fatalf("got %q, %d", got, n)
	}
}

// encodedForms lists each form the package documentation promises, built
// with the encoders themselves rather than with forms.
func encodedForms(secret string) map[string]string {
	b := []byte(secret)
	js := func(html bool) string {
		var buf bytes.Buffer
		e := json.NewEncoder(&buf)
		e.SetEscapeHTML(html)
		if err := e.Encode(secret); err != nil {
			panic(err)
		}
		return strings.Trim(strings.TrimSpace(buf.String()), `"`)
	}
	lower := func(s string) string {
		var out strings.Builder
		for i := 0; i < len(s); i++ {
			out.WriteByte(s[i])
			if s[i] == '%' {
				out.WriteString(strings.ToLower(s[i+1 : i+3]))
				i += 2
			}
		}
		return out.String()
	}
	m := map[string]string{
		"raw":              secret,
		"base64 std":       base64.StdEncoding.EncodeToString(b),
		"base64 std raw":   base64.RawStdEncoding.EncodeToString(b),
		"base64 url":       base64.URLEncoding.EncodeToString(b),
		"base64 url raw":   base64.RawURLEncoding.EncodeToString(b),
		"hex":              hex.EncodeToString(b),
		"HEX":              strings.ToUpper(hex.EncodeToString(b)),
		"query":            url.QueryEscape(secret),
		"query lower":      lower(url.QueryEscape(secret)),
		"path":             url.PathEscape(secret),
		"path lower":       lower(url.PathEscape(secret)),
		"unreserved":       strings.ReplaceAll(url.QueryEscape(secret), "+", "%20"),
		"unreserved lower": lower(strings.ReplaceAll(url.QueryEscape(secret), "+", "%20")),
		"json":             js(true),
		"json no html":     js(false),
		"json slash":       strings.ReplaceAll(js(true), "/", `\/`),
		"json no html \\/": strings.ReplaceAll(js(false), "/", `\/`),
	}
	var ascii strings.Builder
	for _, r := range js(false) {
		if r < 0x80 {
			ascii.WriteRune(r)
		} else {
			q := fmt.Sprintf("%+q", string(r)) // "\u00f6" or "\U0001f600"
			if strings.HasPrefix(q, `"\U`) {
				r1, r2 := 0xD800+((r-0x10000)>>10), 0xDC00+((r-0x10000)&0x3FF)
				q = fmt.Sprintf(`"\u%04x\u%04x"`, r1, r2)
			}
			ascii.WriteString(strings.Trim(q, `"`))
		}
	}
	m["json ascii"] = ascii.String()
	return m
}

func TestEveryFormReplaced(t *testing.T) {
	for _, secret := range []string{plainSecret, specialSecret} {
		s := mustNew(t, Pair{secret, ph})
		for name, form := range encodedForms(secret) {
			in := "<<" + form + ">>"
			want := "<<" + ph + ">>"
			if got, n := s.Replace(in); got != want || n != 1 {
				t.Errorf("%q %s: Replace = %q, %d; want %q, 1", secret, name, got, n, want)
			}
			if got, n := scrubAll(t, s, strings.NewReader(in)); got != want || n != 1 {
				t.Errorf("%q %s: Reader = %q, %d; want %q, 1", secret, name, got, n, want)
			}
		}
	}
	// The special secret exercises every escaping rule: each form differs.
	distinct := map[string]bool{}
	for _, f := range encodedForms(specialSecret) {
		distinct[f] = true
	}
	if len(distinct) != len(encodedForms(specialSecret)) {
		t.Errorf("special secret has only %d distinct forms", len(distinct))
	}
	// And forms finds nothing the encoders do not produce, apart from the
	// embedded base64 runs (TestEmbeddedBase64).
	if got, want := len(forms(specialSecret)), len(distinct)+2*3; got != want {
		t.Errorf("forms: %d needles, want %d", got, want)
	}
}

// TestEmbeddedBase64 checks "Basic base64(user:secret)"-style echoes for
// every alignment, with and without text after the secret.
func TestEmbeddedBase64(t *testing.T) {
	for _, secret := range []string{plainSecret, specialSecret, "12345678"} {
		s := mustNew(t, Pair{secret, ph})
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			for pre := range 7 {
				for post := range 4 {
					plain := strings.Repeat("u", pre) + secret + strings.Repeat("v", post)
					if pre > 0 {
						plain = "user:"[:min(pre, 5)] + plain[min(pre, 5):]
					}
					in := "Basic " + enc.EncodeToString([]byte(plain))
					if !decodesTo(in, secret) {
						t.Fatalf("test vector %q does not hold the secret", in)
					}
					out, n := s.Replace(in)
					if n != 1 || !strings.Contains(out, ph) || decodesTo(out, secret[:8]) || decodesTo(out, secret[len(secret)-8:]) {
						t.Errorf("secret %q pre=%d post=%d: %q -> %q (%d)", secret, pre, post, in, out, n)
					}
				}
			}
		}
	}
}

// decodesTo reports whether some base64 decoding of a run in s, at any of
// the four character offsets, in either alphabet, contains want.
func decodesTo(s, want string) bool {
	isB64 := func(r rune) bool {
		return 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || strings.ContainsRune("+/-_", r)
	}
	for _, run := range strings.FieldsFunc(s, func(r rune) bool { return !isB64(r) }) {
		for off := range 4 {
			if off >= len(run) {
				break
			}
			r := run[off:]
			if len(r)%4 == 1 {
				r = r[:len(r)-1]
			}
			for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
				// Decode the longest valid prefix in this alphabet.
				b, _ := enc.DecodeString(r)
				if strings.Contains(string(b), want) {
					return true
				}
			}
		}
	}
	return false
}

func TestLeftmostLongest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pairs []Pair
		in    string
		want  string
	}{
		{"same start, longer wins", []Pair{{"12345678", "_A_"}, {"1234567890", "_B_"}}, "x1234567890y", "x_B_y"},
		{"same start, falls back to shorter", []Pair{{"12345678", "_A_"}, {"1234567890", "_B_"}}, "x123456789y", "x_A_9y"},
		{"leftmost wins over longer later", []Pair{{"abcdefghij", "_A_"}, {"cdefghijklmnop", "_B_"}}, "abcdefghijklmnop", "_A_klmnop"},
		{"containing needle ends later", []Pair{{"cdefghij", "_A_"}, {"abcdefghijkl", "_B_"}}, "_abcdefghijkl_", "__B__"},
		{"containing needle fails", []Pair{{"cdefghij", "_A_"}, {"abcdefghijkl", "_B_"}}, "_abcdefghijkX_", "_ab_A_kX_"},
		{"back to back", []Pair{{"abcdefgh", "_A_"}}, "abcdefghabcdefgh", "_A__A_"},
		{"self overlap", []Pair{{"aaaaaaaa", "_A_"}}, "aaaaaaaaaaaaaaaaa", "_A__A_a"},
		{"first pair wins a shared form", []Pair{{"abcdefgh", "_A_"}, {"abcdefgh", "_B_"}}, "abcdefgh", "_A_"},
		{"long false start first", []Pair{{"0123456789abcdefghij", "_A_"}}, "0123456789abcdefgh0123456789abcdefghij", "0123456789abcdefgh_A_"},
		{"false start overlaps the match", []Pair{{"abababababababab", "_A_"}}, "ababababababababab", "_A_ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustNew(t, tc.pairs...)
			if got, _ := s.Replace(tc.in); got != tc.want {
				t.Errorf("Replace(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got, _ := s.AppendReplace([]byte("<"), []byte(tc.in)); string(got) != "<"+tc.want {
				t.Errorf("AppendReplace(%q) = %q, want %q", tc.in, got, "<"+tc.want)
			}
			for i := 0; i <= len(tc.in); i++ {
				for j := i; j <= len(tc.in); j++ {
					if got, _ := scrubAll(t, s, splitReader([]byte(tc.in), i, j)); got != tc.want {
						t.Fatalf("split at %d,%d: %q, want %q", i, j, got, tc.want)
					}
				}
			}
		})
	}
}

func TestReplaceHeader(t *testing.T) {
	s := mustNew(t, Pair{plainSecret, ph}, Pair{specialSecret, "PH_2"})
	for _, tc := range []struct{ in, want string }{
		{"Bearer " + plainSecret, "Bearer " + ph},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("api:"+plainSecret)), ""},
		{"token=" + url.QueryEscape(specialSecret) + "; other=" + hex.EncodeToString([]byte(plainSecret)), "token=PH_2; other=" + ph},
		{"no secret here", "no secret here"},
		{"", ""},
		{"x=" + plainSecret[:20] + plainSecret + plainSecret[:27], "x=" + plainSecret[:20] + ph + plainSecret[:27]},
	} {
		got, n := s.Replace(tc.in)
		if tc.want != "" && got != tc.want || strings.Contains(got, plainSecret) || decodesTo(got, plainSecret[:8]) {
			t.Errorf("Replace(%q) = %q, %d", tc.in, got, n)
		}
		if (n == 0) != (got == tc.in) {
			t.Errorf("Replace(%q): count %d with output %q", tc.in, n, got)
		}
	}
}

// Scanning text that holds no form allocates nothing, whether it is a
// header value or a body, and however many prefixes of forms it holds.
func TestNoMatchAllocatesNothing(t *testing.T) {
	s := mustNew(t, Pair{plainSecret, ph}, Pair{specialSecret, "PH_2"})
	clean := "application/json; charset=utf-8; " + plainSecret[:20] + " " + base64.StdEncoding.EncodeToString([]byte(plainSecret))[:30]
	if _, n := s.Replace(clean); n != 0 {
		t.Fatal("the clean text holds a form")
	}
	dst := make([]byte, 0, len(clean))
	for name, f := range map[string]func(){
		"Replace":       func() { s.Replace(clean) },
		"AppendReplace": func() { dst, _ = s.AppendReplace(dst[:0], []byte(clean)) },
		"Contains":      func() { s.Contains([]byte(clean)) },
	} {
		if a := testing.AllocsPerRun(100, f); a != 0 {
			t.Errorf("%s of clean text allocates %v times", name, a)
		}
	}
	if a := testing.AllocsPerRun(100, func() { s.Replace("Bearer " + plainSecret) }); a == 0 {
		t.Error("Replace of a secret allocated nothing: the test no longer measures")
	}
}

func TestRedacted(t *testing.T) {
	s := mustNew(t, Pair{plainSecret, ph}, Pair{specialSecret, "PH_2"})
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("built", "scrubber", s)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("built", "scrubber", s)
	texts := []string{logs.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		texts = append(texts, fmt.Sprintf(verb, s), fmt.Sprintf(verb, *s))
	}
	for _, text := range texts {
		if containsAny(text, s.m.needles) || strings.Contains(text, "sk-live") || decodesTo(text, plainSecret[:8]) {
			t.Errorf("secret material printed: %s", text)
		}
	}
	if got := fmt.Sprint(s); got != "scrub.Scrubber{pairs=2, REDACTED}" {
		t.Errorf("Sprint = %q", got)
	}
}

// A header name can carry a form of the secret in any case (Go's reader
// rewrites names in canonical case); ContainsFold finds it however it is
// cased, and finds nothing in ordinary names.
func TestContainsFold(t *testing.T) {
	const secret = "sk-live-0123456789abcdef"
	s, err := New([]Pair{{Secret: secret, Placeholder: "PH"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range forms(secret) {
		for _, name := range []string{f, strings.ToUpper(f), http.CanonicalHeaderKey("X-" + f), "X-" + strings.ToLower(f) + "-Y"} {
			if !s.ContainsFold(name) {
				t.Errorf("ContainsFold(%q) = false", name)
			}
		}
	}
	long := strings.Repeat("A", 300) + strings.ToUpper(secret)
	if !s.ContainsFold(long) {
		t.Error("ContainsFold misses the secret in a name longer than its buffer")
	}
	for _, name := range []string{"Content-Type", "X-Request-Id", "Sk-Live-0123456789abcde", strings.Repeat("Z", 500)} {
		if s.ContainsFold(name) {
			t.Errorf("ContainsFold(%q) = true", name)
		}
	}
	if n := testing.AllocsPerRun(100, func() { s.ContainsFold("X-Content-Type-Options") }); n != 0 {
		t.Errorf("ContainsFold allocates %v times for a short name", n)
	}
}
