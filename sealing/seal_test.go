package sealing

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustKey(t, "rt")
	b := openaiBinding()
	b.Header = "authorization"
	b.NotAfter = t0.Add(48 * time.Hour)
	tok := mustSeal(t, k.Public(), b, "sk-test-123")
	if !strings.HasPrefix(tok, "tokrun.sealed.v1."+k.Public().ID().String()+".") {
		t.Fatalf("token %q lacks version prefix and key id", tok[:40])
	}
	s, err := mustRing(t, k).Open(tok, "openai")
	if err != nil {
		t.Fatal(err)
	}
	got := s.Binding()
	if got.Name != "openai" || got.Header != "Authorization" || got.Format != "Bearer {}" ||
		strings.Join(got.Hosts, ",") != "api.openai.com" || strings.Join(got.Methods, ",") != "GET,POST" ||
		strings.Join(got.Paths, ",") != "/v1/**" || !got.SealedAt.Equal(t0) || !got.NotAfter.Equal(b.NotAfter) {
		t.Fatalf("binding %+v", got)
	}
	if s.HeaderValue() != "Bearer sk-test-123" || s.Reveal() != "sk-test-123" {
		t.Fatal("value did not round trip")
	}
	if s.Fingerprint() != Fingerprint("sk-test-123") || !strings.HasPrefix(s.Fingerprint(), "fp:") || len(s.Fingerprint()) != 19 {
		t.Fatalf("fingerprint %q", s.Fingerprint())
	}
	if s.KeyID() != k.Public().ID() {
		t.Fatal("key id")
	}
	// Two seals of the same input differ (fresh ephemeral key).
	if mustSeal(t, k.Public(), b, "sk-test-123") == tok {
		t.Fatal("sealing is deterministic")
	}
}

func TestOpenWithRotation(t *testing.T) {
	old, cur := mustKey(t, "old"), mustKey(t, "new")
	ring := mustRing(t, cur, old)
	for _, k := range []*PrivateKey{old, cur} {
		if _, err := ring.Open(mustSeal(t, k.Public(), openaiBinding(), "value-0001"), ""); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenWrongKey(t *testing.T) {
	tok := mustSeal(t, mustKey(t, "a").Public(), openaiBinding(), "value-0001")
	_, err := mustRing(t, mustKey(t, "b")).Open(tok, "openai")
	if !errors.Is(err, ErrUnknownKey) || !strings.HasPrefix(err.Error(), `secret "openai": `) {
		t.Fatalf("err = %v", err)
	}
	// A token whose key id is rewritten to the ring's key still fails:
	// the id selects a key, the ciphertext must also open with it.
	b := mustKey(t, "b")
	env, _ := ParseEnvelope(tok)
	env.KeyID = b.Public().ID()
	if _, err := mustRing(t, b).Open(env.String(), ""); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("rewritten key id: err = %v", err)
	}
}

// Every single-character change of a token must fail to open. A few
// replacement characters per position keep this fast under -race while
// covering the prefix, key id, and every ciphertext byte.
func TestEverySingleByteModificationFails(t *testing.T) {
	k := mustKey(t, "tamper")
	ring := mustRing(t, k)
	tok := mustSeal(t, k.Public(), openaiBinding(), "sk-tamper")
	for i := 0; i < len(tok); i++ {
		for _, c := range []byte{'A', 'q', '_', '.', '0'} {
			if tok[i] == c {
				continue
			}
			mut := tok[:i] + string(c) + tok[i+1:]
			if _, err := ring.Open(mut, ""); err == nil {
				t.Fatalf("modified token (position %d to %q) opened", i, c)
			}
		}
		mut := tok[:i] + string(tok[i]^0x01) + tok[i+1:]
		if _, err := ring.Open(mut, ""); err == nil {
			t.Fatalf("bit flip at position %d opened", i)
		}
	}
}

func TestTruncatedAndOversized(t *testing.T) {
	k := mustKey(t, "trunc")
	ring := mustRing(t, k)
	tok := mustSeal(t, k.Public(), openaiBinding(), "sk-trunc")
	for n := 0; n < len(tok); n++ {
		if _, err := ring.Open(tok[:n], ""); err == nil {
			t.Fatalf("truncated token (%d of %d) opened", n, len(tok))
		}
	}
	if _, err := ring.Open(tok+"AA", ""); err == nil {
		t.Fatal("extended token opened")
	}
	if _, err := ring.Open(tok+strings.Repeat("A", MaxTokenSize), ""); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized token: %v", err)
	}
	if _, err := Seal(rand.Reader, k.Public(), openaiBinding(), strings.Repeat("x", MaxValueSize+1), t0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized value: %v", err)
	}
	if _, err := Seal(rand.Reader, k.Public(), openaiBinding(), strings.Repeat("x", MaxValueSize), t0); err != nil {
		t.Fatalf("value at the limit: %v", err)
	}
}

func TestEnvelopeErrors(t *testing.T) {
	k := mustKey(t, "env")
	tok := mustSeal(t, k.Public(), openaiBinding(), "value-0001")
	id := k.Public().ID().String()
	body := tok[len("tokrun.sealed.v1.")+17:]
	tests := []struct{ tok, want string }{
		{"", `malformed token: missing "tokrun.sealed.v1." prefix`},
		{"tokrun.sealed.v2." + id + "." + body, "malformed token: unsupported version"},
		{"tokrun.sealed.v1." + strings.ToUpper(id) + "." + body, "malformed token: key id must be 16 lowercase hex digits"},
		{"tokrun.sealed.v1." + id + body, "malformed token: expected <key id>.<ciphertext> after the prefix"},
		{"tokrun.sealed.v1." + id + "0." + body, "malformed token: key id must be 16 lowercase hex digits"},
		{"tokrun.sealed.v1." + id[:15] + "g." + body, "malformed token: key id must be 16 lowercase hex digits"},
		{"tokrun.sealed.v1." + id + "." + body + "=", "malformed token: ciphertext is not unpadded base64url"},
		{"tokrun.sealed.v1." + id + ".AAAA", "malformed token: ciphertext truncated (3 bytes)"},
		{" " + tok, "malformed token: missing"},
	}
	for _, tt := range tests {
		_, err := ParseEnvelope(tt.tok)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseEnvelope(%.40q) = %v, want %q", tt.tok, err, tt.want)
		}
	}
}

func TestPayloadStrictness(t *testing.T) {
	k := mustKey(t, "strict")
	ring := mustRing(t, k)
	rnd := newSeeded("strict payloads")
	const good = `"name":"x","value":"SENTINEL-VALUE","hosts":["a.example"],"header":"X-Api-Key","format":"{}","sealed_at":"2026-01-01T00:00:00Z"`
	if _, err := ring.Open(sealRaw(t, rnd, k.Public(), `{"v":1,`+good+`}`), ""); err != nil {
		t.Fatalf("baseline payload: %v", err)
	}
	tests := []struct{ payload, want string }{
		{`{"v":1,` + good + `,"extra":1}`, `unknown field "extra"`},
		{`{"v":1,` + good + `,"name":"y"}`, `duplicate field "name"`},
		{`{"v":1,` + good + `,"NAME":"y"}`, `unknown field "NAME"`},
		{`{"v":1,` + strings.Replace(good, `"header":"X-Api-Key",`, "", 1) + `}`, `missing required field "header"`},
		{`{` + good + `}`, `missing required field "v"`},
		{`{"v":2,` + good + `}`, `unsupported payload version 2`},
		{`{"v":"1",` + good + `}`, `field "v": wrong type or format`},
		{`{"v":1,` + good + `,"methods":null}`, `field "methods": null is not allowed`},
		{`{"v":1,` + good + `,"paths":null}`, `field "paths": null is not allowed`},
		{`{"v":1,` + good + `,"not_after":null}`, `field "not_after": null is not allowed`},
		{`{"v":1,` + strings.Replace(good, `"header":"X-Api-Key"`, `"header":null`, 1) + `}`, `field "header": null is not allowed`},
		{`{"v":1,` + strings.Replace(good, `"hosts":["a.example"]`, `"hosts":null`, 1) + `}`, `field "hosts": null is not allowed`},
		{`{"v":null,` + good + `}`, `field "v": null is not allowed`},
		{`{"v":1,` + good + `} {}`, `data after the JSON object`},
		{`[` + good + `]`, `not a JSON object`},
		{`{"v":1,` + strings.Replace(good, `"format":"{}"`, `"format":"Bearer"`, 1) + `}`, `invalid binding: format: must contain exactly one {}`},
		{`{"v":1,` + strings.Replace(good, `X-Api-Key`, `Connection`, 1) + `}`, `invalid binding: header: Connection cannot carry a secret`},
		{`{"v":1,` + strings.Replace(good, `SENTINEL-VALUE`, `SENTINEL\r\nX-Evil: 1`, 1) + `}`, `invalid binding: the secret value contains control characters`},
		{`{"v":1,` + strings.Replace(good, `"a.example"`, `"*.com"`, 1) + `}`, `invalid binding: hosts[0]:`},
		{`{"v":1,` + good + `,"sealed_at":"yesterday"}`, `duplicate field "sealed_at"`},
		{`{"v":1,` + strings.Replace(good, `2026-01-01T00:00:00Z`, `yesterday`, 1) + `}`, `field "sealed_at": wrong type or format`},
		{`{"v":1,` + good + `,"paths":["/v1/../x"]}`, `invalid binding: paths[0]:`},
		{`{"v":1,` + good + strings.Repeat(" ", maxPayload) + `}`, `too large`},
	}
	for _, tt := range tests {
		_, err := ring.Open(sealRaw(t, rnd, k.Public(), tt.payload), "")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("payload %.60s...: err = %v, want %q", tt.payload, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "SENTINEL") {
			t.Errorf("error echoes the value: %v", err)
		}
	}
}

func TestBindingValidation(t *testing.T) {
	pub := mustKey(t, "bind").Public()
	tests := []struct {
		name   string
		modify func(*Binding)
		want   string
	}{
		{"no hosts", func(b *Binding) { b.Hosts = nil }, "hosts: at least one host is required"},
		{"public suffix wildcard", func(b *Binding) { b.Hosts = []string{"*.co.uk"} }, "hosts[0]:"},
		{"bad host", func(b *Binding) { b.Hosts = []string{"api.openai.com/evil"} }, "hosts[0]:"},
		{"no header", func(b *Binding) { b.Header = "" }, "header: not a valid header name"},
		{"header with space", func(b *Binding) { b.Header = "X Key" }, "not a valid header name"},
		{"header with colon", func(b *Binding) { b.Header = "X-Key:" }, "not a valid header name"},
		{"hop-by-hop", func(b *Binding) { b.Header = "connection" }, "header: Connection cannot carry a secret"},
		{"te", func(b *Binding) { b.Header = "TE" }, "header: Te cannot carry a secret"},
		{"upgrade", func(b *Binding) { b.Header = "Upgrade" }, "cannot carry a secret"},
		{"proxy", func(b *Binding) { b.Header = "Proxy-Authorization" }, "header: Proxy-Authorization cannot carry a secret"},
		{"host", func(b *Binding) { b.Header = "Host" }, "header: Host cannot carry a secret"},
		{"framing", func(b *Binding) { b.Header = "Transfer-Encoding" }, "cannot carry a secret"},
		{"reserved", func(b *Binding) { b.Header = "X-Tokrun-Secret" }, "cannot carry a secret"},
		{"cgi spelling", func(b *Binding) { b.Header = "Transfer_Encoding" }, "header: Transfer_encoding cannot carry a secret"},
		{"cgi spelling of proxy", func(b *Binding) { b.Header = "proxy.authorization" }, "cannot carry a secret"},
		{"rewritten by the proxy", func(b *Binding) { b.Header = "Accept-Encoding" }, "cannot carry a secret"},
		{"removed by the proxy", func(b *Binding) { b.Header = "range" }, "header: Range cannot carry a secret"},
		{"method override", func(b *Binding) { b.Header = "X-HTTP-Method-Override" }, "cannot carry a secret"},
		{"path override", func(b *Binding) { b.Header = "X_Original_URL" }, "cannot carry a secret"},
		{"forwarded", func(b *Binding) { b.Header = "X-Forwarded-Host" }, "cannot carry a secret"},
		{"websocket handshake", func(b *Binding) { b.Header = "Sec-WebSocket-Key" }, "cannot carry a secret"},
		{"no placeholder", func(b *Binding) { b.Format = "Bearer" }, "format: must contain exactly one {}"},
		{"two placeholders", func(b *Binding) { b.Format = "{}{}" }, "format: must contain exactly one {}"},
		{"format CRLF", func(b *Binding) { b.Format = "Bearer {}\r\nX-Evil: 1" }, "format: must be at most 256 printable characters without CR, LF"},
		{"format LF", func(b *Binding) { b.Format = "{}\n" }, "without CR, LF"},
		{"format NUL", func(b *Binding) { b.Format = "{}\x00" }, "without CR, LF"},
		{"unknown method", func(b *Binding) { b.Methods = []string{"PSOT"} }, `methods[0]: unknown method "PSOT"`},
		{"trace", func(b *Binding) { b.Methods = []string{"TRACE"} }, `methods[0]:`},
		{"repeated method", func(b *Binding) { b.Methods = []string{"GET", "GET"} }, `methods[1]: GET listed twice`},
		{"bad glob", func(b *Binding) { b.Paths = []string{"v1/**"} }, `paths[0]:`},
		{"unnormalised glob", func(b *Binding) { b.Paths = []string{"/v1/../admin"} }, `paths[0]:`},
		{"bad name", func(b *Binding) { b.Name = "open ai" }, `name: "open ai" may contain only`},
		{"expired", func(b *Binding) { b.NotAfter = t0.Add(-time.Hour) }, "not_after 2026-11-01T11:00:00Z is not in the future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openaiBinding()
			tt.modify(&b)
			_, err := Seal(rand.Reader, pub, b, "SENTINEL-VALUE", t0)
			if !errors.Is(err, ErrBinding) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	for _, v := range []string{"", "short", "a\r\nb-long-enough", "a\nb-long-enough", "a\x00b-long-enough", " leading-space", "trailing-space ", "\xff-not-utf-8"} {
		if _, err := Seal(rand.Reader, pub, openaiBinding(), v, t0); !errors.Is(err, ErrBinding) {
			t.Errorf("value %q accepted: %v", v, err)
		}
	}
}

// Every header a secret may not be sealed for is refused, in its own
// spelling, in lower case, and with "_" or "." for "-". The list is
// written out here, not taken from the code, so that dropping a name
// from the code fails the test.
func TestEveryForbiddenHeaderRefused(t *testing.T) {
	pub := mustKey(t, "forbidden").Public()
	names := []string{
		"Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "HTTP2-Settings",
		"Host", "Content-Length", "Content-Type", "Content-Encoding", "Set-Cookie", "Expect", "Max-Forwards",
		"Accept-Encoding", "Range", "If-Range", "Forwarded",
		"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Original-URL", "X-Rewrite-URL",
		// One of each family.
		"Proxy-Authorization", "Proxy-Connection", "X-Tokrun-Decision", "X-Forwarded-For", "X-Forwarded-Host",
		"Sec-WebSocket-Key", "Sec-WebSocket-Protocol",
	}
	for _, name := range names {
		for _, spelling := range []string{name, strings.ToLower(name), strings.ReplaceAll(name, "-", "_"), strings.ReplaceAll(name, "-", ".")} {
			b := openaiBinding()
			b.Header = spelling
			if _, err := Seal(rand.Reader, pub, b, "SENTINEL-VALUE", t0); !errors.Is(err, ErrBinding) || !strings.Contains(err.Error(), "cannot carry a secret") {
				t.Errorf("header %q: %v", spelling, err)
			}
		}
	}
	// C1 controls (U+0080 to U+009F) are control characters too.
	b := openaiBinding()
	b.Format = "{}\u0085"
	if _, err := Seal(rand.Reader, pub, b, "SENTINEL-VALUE", t0); !errors.Is(err, ErrBinding) || !strings.Contains(err.Error(), "without CR, LF") {
		t.Errorf("format with U+0085: %v", err)
	}
}

func TestPermits(t *testing.T) {
	k := mustKey(t, "permits")
	b := openaiBinding()
	b.Hosts = []string{"api.openai.com", "*.example.com"}
	b.NotAfter = t0.Add(time.Hour)
	s, err := mustRing(t, k).Open(mustSeal(t, k.Public(), b, "value-0001"), "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host, method, path string
		now                time.Time
		want               error
	}{
		{"api.openai.com", "POST", "/v1/chat", t0, nil},
		{"api.openai.com", "GET", "/v1", t0, nil},
		{"a.b.example.com", "GET", "/v1/x", t0, nil},
		{"example.com", "GET", "/v1/x", t0, ErrHostNotBound},
		{"api.openai.com.evil.net", "GET", "/v1/x", t0, ErrHostNotBound},
		{"evilexample.com", "GET", "/v1/x", t0, ErrHostNotBound},
		{"api.openai.com", "DELETE", "/v1/x", t0, ErrMethodNotBound},
		{"api.openai.com", "GET", "/admin", t0, ErrPathNotBound},
		{"api.openai.com", "GET", "/v10", t0, ErrPathNotBound},
		{"api.openai.com", "GET", "/v1/x", t0.Add(2 * time.Hour), ErrExpired},
	}
	for _, tt := range tests {
		err := s.Permits(tt.host, tt.method, tt.path, tt.now)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("Permits(%s %s %s) = %v, want %v", tt.method, tt.host, tt.path, err, tt.want)
		}
	}
}

func TestOpenNameMismatch(t *testing.T) {
	k := mustKey(t, "names")
	_, err := mustRing(t, k).Open(mustSeal(t, k.Public(), openaiBinding(), "value-0001"), "github")
	if !errors.Is(err, ErrBinding) || err.Error() != `secret "github": invalid binding: sealed with name "openai"` {
		t.Fatalf("err = %v", err)
	}
}

// The last character of a token carries padding bits; every other
// character of the alphabet there must fail, or a token would have two
// spellings (base64 without strict decoding accepts them).
func TestEveryLastCharacterFails(t *testing.T) {
	k := mustKey(t, "last char")
	ring := mustRing(t, k)
	tok := mustSeal(t, k.Public(), openaiBinding(), "sk-last-char")
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := len(tok) - 1
	for _, c := range alphabet {
		if byte(c) == tok[last] {
			continue
		}
		if _, err := ring.Open(tok[:last]+string(c), ""); err == nil {
			t.Fatalf("token with last character %q opened", c)
		}
	}
}
