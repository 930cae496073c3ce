package sealing

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

const fingerprintLabel = "tokrun secret fingerprint v1\x00"

// Secret is an opened sealed secret: its binding and its value.
//
// The value is redacted in every printing path (String, GoString, all fmt
// verbs, JSON, slog), which show the name and fingerprint instead. Code
// that must send the value uses HeaderValue or Reveal, whose names make
// each use visible in review. A Secret is not comparable with ==.
type Secret struct {
	_ [0]func()
	c *compiled
	// v is behind a pointer so that reflection-based printing of a struct
	// that holds a Secret in an unexported field shows an address, not
	// the value.
	v     *hidden
	keyID KeyID
}

type hidden struct {
	s      string
	header string // the header value to inject, formatted once
}

// Name returns the sealed name.
func (s *Secret) Name() string { return s.c.b.Name }

// KeyID returns the id of the key the secret was sealed to.
func (s *Secret) KeyID() KeyID { return s.keyID }

// NotAfter returns when the secret stops being usable, or the zero time
// if it does not expire.
func (s *Secret) NotAfter() time.Time { return s.c.b.NotAfter }

// Binding returns a copy of the sealed binding, in canonical form.
func (s *Secret) Binding() Binding {
	b := s.c.b
	b.Hosts = slices.Clone(b.Hosts)
	b.Methods = slices.Clone(b.Methods)
	b.Paths = slices.Clone(b.Paths)
	return b
}

// Fingerprint returns a short public hash of the value, "fp:" and 16 hex
// digits, so operators can tell which secret a blob holds without seeing
// it. Like any unkeyed hash it lets someone confirm a guess, so it says
// nothing to hide for high-entropy API keys but is no protection for a
// guessable password.
func (s Secret) Fingerprint() string { return Fingerprint(s.v.s) }

// Fingerprint returns the fingerprint of a value, as Secret.Fingerprint.
func Fingerprint(value string) string {
	h := sha256.Sum256([]byte(fingerprintLabel + value))
	return "fp:" + hex.EncodeToString(h[:8])
}

// Permits reports whether the sealed binding allows sending the secret to
// the canonical host with method and normalised path at time now. The
// error wraps ErrExpired, ErrHostNotBound, ErrMethodNotBound or
// ErrPathNotBound.
func (s *Secret) Permits(host, method, path string, now time.Time) error {
	return s.c.permits(host, method, path, now)
}

// HeaderValue returns the header value to inject: the format with the
// value in place of "{}". The value and format were validated at seal and
// open time, so the result holds no CR, LF or other control character.
func (s *Secret) HeaderValue() string { return s.v.header }

// Reveal returns the raw value, for response scrubbing.
func (s *Secret) Reveal() string { return s.v.s }

func (s Secret) redacted() string {
	if s.c == nil || s.v == nil {
		return "sealing.Secret{}"
	}
	return fmt.Sprintf("sealing.Secret{name=%s, %s, REDACTED}", s.c.b.Name, s.Fingerprint())
}

// String returns a redacted description.
func (s Secret) String() string { return s.redacted() }

// GoString returns a redacted description.
func (s Secret) GoString() string { return s.redacted() }

// Format prints a redacted description for every fmt verb.
func (s Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.redacted()) }

// LogValue shows the name and fingerprint in structured logs.
func (s Secret) LogValue() slog.Value {
	if s.c == nil || s.v == nil {
		return slog.StringValue("sealing.Secret{}")
	}
	return slog.GroupValue(slog.String("name", s.c.b.Name), slog.String("fingerprint", s.Fingerprint()))
}

// MarshalJSON encodes the name and fingerprint, never the value.
func (s Secret) MarshalJSON() ([]byte, error) {
	if s.c == nil || s.v == nil {
		return []byte("null"), nil
	}
	return json.Marshal(map[string]string{"name": s.c.b.Name, "fingerprint": s.Fingerprint()})
}

// MarshalText returns the redacted description.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.redacted()), nil }
