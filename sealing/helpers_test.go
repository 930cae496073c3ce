package sealing

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// seededReader is a deterministic randomness source for reproducible
// test keys and vectors.
type seededReader struct {
	state [32]byte
	buf   []byte
}

func newSeeded(seed string) *seededReader { return &seededReader{state: sha256.Sum256([]byte(seed))} }

func (r *seededReader) Read(p []byte) (int, error) {
	for n := 0; n < len(p); {
		if len(r.buf) == 0 {
			r.state = sha256.Sum256(r.state[:])
			r.buf = r.state[:]
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return len(p), nil
}

func mustKey(t testing.TB, seed string) *PrivateKey {
	t.Helper()
	k, err := GenerateKey(newSeeded(seed))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRing(t testing.TB, keys ...*PrivateKey) *KeyRing {
	t.Helper()
	r, err := NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openaiBinding() Binding {
	return Binding{
		Name:    "openai",
		Hosts:   []string{"api.openai.com"},
		Header:  "Authorization",
		Format:  "Bearer {}",
		Methods: []string{"GET", "POST"},
		Paths:   []string{"/v1/**"},
	}
}

func mustSeal(t testing.TB, to PublicKey, b Binding, value string) string {
	t.Helper()
	tok, err := Seal(rand.Reader, to, b, value, t0)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// sealRaw seals arbitrary payload bytes, bypassing validation, to build
// malformed payloads that a hostile sealer could produce.
func sealRaw(t testing.TB, rnd *seededReader, to PublicKey, payload string) string {
	t.Helper()
	ct, err := box.SealAnonymous(nil, []byte(payload), &to.k, rnd)
	if err != nil {
		t.Fatal(err)
	}
	return Envelope{Version: 1, KeyID: to.ID(), Ciphertext: ct}.String()
}

func containsAny(haystack string, needles ...string) bool {
	for _, n := range needles {
		if n != "" && bytes.Contains([]byte(haystack), []byte(n)) {
			return true
		}
	}
	return false
}
