package sealing

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Test vectors in testdata/sealing: tokens that every future version must
// keep opening, and malformed tokens that must keep failing with the same
// error. Vectors are append-only: -update-vectors writes only missing
// files and never rewrites an existing one.
var updateVectors = flag.Bool("update-vectors", false, "write missing test vectors in testdata/sealing")

const vectorDir = "../testdata/sealing"

// vectorTime is the "now" at which vectors are opened; some vectors expire
// before it.
var vectorTime = time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)

type goodVector struct {
	Binding     Binding `json:"binding"`
	Value       string  `json:"value"`
	Fingerprint string  `json:"fingerprint"`
	Expired     bool    `json:"expired_at_vector_time"`
}

func vectorKey(t testing.TB) *KeyRing {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorDir, "key.txt"))
	if os.IsNotExist(err) && *updateVectors {
		k := mustKey(t, "tokrun test vectors v1")
		data = append([]byte("# TEST KEY: public test vectors only; never use it for real secrets.\n"), KeyFileText(k, t0)...)
		if err := os.MkdirAll(vectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(vectorDir, "key.txt"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	r, err := ParseKeyFile("key.txt", data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeIfMissing(t testing.TB, path string, data []byte) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

func generateVectors(t *testing.T, ring *KeyRing) {
	pub := ring.PublicKeys()[0]
	rnd := newSeeded("tokrun vector tokens v1")
	good := map[string]struct {
		b     Binding
		value string
		at    time.Time
	}{
		"minimal": {Binding{Name: "api", Hosts: []string{"api.example.com"}, Header: "X-Api-Key", Format: "{}"}, "k-minimal-0001", t0},
		"full": {Binding{Name: "openai", Hosts: []string{"api.openai.com", "*.openai.azure.com"}, Header: "Authorization",
			Format: "Bearer {}", Methods: []string{"GET", "POST"}, Paths: []string{"/v1/**", "/models/*"},
			NotAfter: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, "sk-proj-vector-0002", t0},
		"expired": {Binding{Name: "old", Hosts: []string{"api.example.com"}, Header: "Authorization", Format: "token {}",
			NotAfter: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}, "ghp_vector0003", t0},
		"unicode-host": {Binding{Name: "intl", Hosts: []string{"bücher.example"}, Header: "X-Key", Format: "{}"}, "k-unicode-0004", t0},
	}
	for name, g := range good {
		tok, err := Seal(rnd, pub, g.b, g.value, g.at)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ring.Open(tok, "")
		if err != nil {
			t.Fatal(err)
		}
		exp := goodVector{Binding: s.Binding(), Value: g.value, Fingerprint: s.Fingerprint(), Expired: s.Permits(s.Binding().Hosts[0], "GET", "/v1/x", vectorTime) != nil && errorsIsExpired(s, vectorTime)}
		j, _ := json.MarshalIndent(exp, "", "  ")
		if _, err := os.Stat(filepath.Join(vectorDir, "good", name+".sealed")); err == nil {
			continue
		}
		writeIfMissing(t, filepath.Join(vectorDir, "good", name+".json"), append(j, '\n'))
		writeIfMissing(t, filepath.Join(vectorDir, "good", name+".sealed"), []byte(tok+"\n"))
	}
	const ok = `"name":"x","value":"k-bad","hosts":["a.example"],"header":"X-Api-Key","format":"{}","sealed_at":"2026-01-01T00:00:00Z"`
	valid := sealRaw(t, rnd, pub, `{"v":1,`+ok+`}`)
	other := mustKey(t, "not the vector key")
	bad := map[string]string{
		"unknown-field":     sealRaw(t, rnd, pub, `{"v":1,`+ok+`,"hosts_extra":["*"]}`),
		"duplicate-field":   sealRaw(t, rnd, pub, `{"v":1,`+ok+`,"hosts":["evil.example"]}`),
		"missing-hosts":     sealRaw(t, rnd, pub, `{"v":1,`+strings.Replace(ok, `"hosts":["a.example"],`, "", 1)+`}`),
		"case-variant-key":  sealRaw(t, rnd, pub, `{"v":1,`+ok+`,"Methods":["GET"]}`),
		"version-2-payload": sealRaw(t, rnd, pub, `{"v":2,`+ok+`}`),
		"header-injection":  sealRaw(t, rnd, pub, `{"v":1,`+strings.Replace(ok, `"format":"{}"`, `"format":"{}\r\nX-Evil: 1"`, 1)+`}`),
		"hop-by-hop-header": sealRaw(t, rnd, pub, `{"v":1,`+strings.Replace(ok, `X-Api-Key`, `Keep-Alive`, 1)+`}`),
		"unknown-key":       sealRaw(t, rnd, other.Public(), `{"v":1,`+ok+`}`),
		"tampered":          valid[:len(valid)-10] + flipChar(valid[len(valid)-10]) + valid[len(valid)-9:],
		"truncated":         valid[:len(valid)-4],
		"bad-prefix":        strings.Replace(valid, "tokrun.sealed.v1.", "tokrun.sealed.v9.", 1),
		"padded-base64":     valid + "==",
	}
	for name, tok := range bad {
		if _, err := os.Stat(filepath.Join(vectorDir, "bad", name+".sealed")); err == nil {
			continue
		}
		_, err := ring.Open(tok, "")
		if err == nil {
			t.Fatalf("bad vector %s opened", name)
		}
		writeIfMissing(t, filepath.Join(vectorDir, "bad", name+".err"), []byte(err.Error()+"\n"))
		writeIfMissing(t, filepath.Join(vectorDir, "bad", name+".sealed"), []byte(tok+"\n"))
	}
}

func flipChar(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func errorsIsExpired(s *Secret, now time.Time) bool {
	b := s.Binding()
	return !b.NotAfter.IsZero() && now.After(b.NotAfter)
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(data), "\n")
}

func TestVectors(t *testing.T) {
	ring := vectorKey(t)
	if *updateVectors {
		generateVectors(t, ring)
	}
	goods, _ := filepath.Glob(filepath.Join(vectorDir, "good", "*.sealed"))
	bads, _ := filepath.Glob(filepath.Join(vectorDir, "bad", "*.sealed"))
	if len(goods) < 4 || len(bads) < 12 {
		t.Fatalf("found %d good and %d bad vectors; testdata/sealing is incomplete", len(goods), len(bads))
	}
	for _, path := range goods {
		t.Run("good/"+filepath.Base(path), func(t *testing.T) {
			s, err := ring.Open(readToken(t, path), "")
			if err != nil {
				t.Fatal(err)
			}
			var want goodVector
			data, err := os.ReadFile(strings.TrimSuffix(path, ".sealed") + ".json")
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			got := s.Binding()
			if !reflect.DeepEqual(got, want.Binding) {
				t.Errorf("binding\n got %+v\nwant %+v", got, want.Binding)
			}
			if s.Reveal() != want.Value || s.Fingerprint() != want.Fingerprint {
				t.Errorf("value or fingerprint changed")
			}
			if errorsIsExpired(s, vectorTime) != want.Expired {
				t.Errorf("expired = %v, want %v", !want.Expired, want.Expired)
			}
		})
	}
	for _, path := range bads {
		t.Run("bad/"+filepath.Base(path), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(path, ".sealed") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			_, err = ring.Open(readToken(t, path), "")
			if err == nil {
				t.Fatal("malformed vector opened")
			}
			if got := err.Error() + "\n"; got != string(want) {
				t.Errorf("error\n got %q\nwant %q", got, want)
			}
		})
	}
}
