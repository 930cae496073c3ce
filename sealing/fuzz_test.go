package sealing

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func seedTokens(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(vectorDir, "*", "*.sealed"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.TrimSuffix(string(data), "\n"))
	}
	if len(paths) == 0 {
		f.Fatal("no seed vectors in testdata/sealing")
	}
}

// A token parses only in its canonical form: parse then encode reproduces
// the input byte for byte, so a token has exactly one spelling.
func FuzzEnvelope(f *testing.F) {
	seedTokens(f)
	f.Fuzz(func(t *testing.T, s string) {
		env, err := ParseEnvelope(s)
		if err != nil {
			return
		}
		if got := env.String(); got != s {
			t.Fatalf("ParseEnvelope(%q).String() = %q", s, got)
		}
	})
}

// Opening arbitrary tokens with the vector key fails cleanly or yields a
// secret whose binding is valid.
func FuzzOpen(f *testing.F) {
	seedTokens(f)
	ring := vectorKey(f)
	f.Fuzz(func(t *testing.T, s string) {
		sec, err := ring.Open(s, "")
		if err != nil {
			return
		}
		if _, err := compile(sec.Binding()); err != nil {
			t.Fatalf("opened secret has an invalid binding: %v", err)
		}
	})
}

// Key text parses only in canonical form.
func FuzzKeyText(f *testing.F) {
	data, err := os.ReadFile(filepath.Join(vectorDir, "key.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f.Add(line)
		if rest, ok := strings.CutPrefix(line, "# public key: "); ok {
			f.Add(rest)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := ParsePrivateKey(s); err == nil && k.Reveal() != s {
			t.Fatalf("private key text not canonical")
		}
		if p, err := ParsePublicKey(s); err == nil && p.String() != s {
			t.Fatalf("ParsePublicKey(%q).String() = %q", s, p.String())
		}
		if r, err := ParseKeyFile("fuzz", []byte(s)); err == nil {
			for _, k := range r.keys {
				if !strings.Contains(s, k.Reveal()) {
					t.Fatal("key file yielded a key not written in it")
				}
			}
		}
	})
}

// A payload that decodes and validates re-encodes to a payload that
// decodes to the same binding and value.
func FuzzPayload(f *testing.F) {
	f.Add(`{"v":1,"name":"x","value":"k","hosts":["a.example","*.b.example"],"header":"x-api-key","format":"Bearer {}","methods":["GET"],"paths":["/v1/**"],"not_after":"2030-01-01T00:00:00Z","sealed_at":"2026-01-01T00:00:00Z"}`)
	f.Add(`{"v":1,"name":"x","value":"k","hosts":["A.EXAMPLE."],"header":"X-Key","format":"{}","sealed_at":"2026-01-01T00:00:00.5+02:00"}`)
	f.Add(`{"v":1,"name":"x","name":"y"}`)
	f.Fuzz(func(t *testing.T, s string) {
		b, value, err := decodePayload([]byte(s))
		if err != nil {
			return
		}
		c, err := compile(b)
		if err != nil || checkValue(value) != nil {
			return
		}
		again, err := encodePayload(c.b, value)
		if err != nil {
			t.Fatalf("re-encoding a valid payload: %v", err)
		}
		b2, v2, err := decodePayload(again)
		if err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		c2, err := compile(b2)
		if err != nil {
			t.Fatalf("re-encoded binding invalid: %v", err)
		}
		if !reflect.DeepEqual(c.b, c2.b) || v2 != value {
			t.Fatalf("round trip changed the binding:\n%+v\n%+v", c.b, c2.b)
		}
	})
}
