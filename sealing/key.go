package sealing

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"

	"github.com/tokrun/tokrun/internal/bech32"
)

const (
	privateHRP = "tokrun-secret-key-"
	publicHRP  = "tokrunpub"
	keyIDLabel = "tokrun key id v1\x00"
)

// PublicKey is an X25519 public key that secrets are sealed to. Its text
// form is lowercase Bech32 starting with "tokrunpub1".
type PublicKey struct {
	k [32]byte
}

// PrivateKey is an X25519 private key that opens sealed secrets.
//
// It has no printable form: String is absent, fmt verbs print a redacted
// placeholder, JSON encoding fails, and slog shows only the key id. It
// cannot be compared with == (use Equal). The only way to get its text is
// Reveal, whose callers write key files.
type PrivateKey struct {
	_ [0]func() // not comparable
	// k is behind a pointer so that reflection-based printing of a struct
	// that embeds a PrivateKey in an unexported field shows an address,
	// not key bytes.
	k   *[32]byte
	pub PublicKey
}

// KeyID identifies a public key inside sealed tokens: the first 8 bytes of
// a domain-separated SHA-256 of the key, written as 16 lowercase hex
// digits. It is public.
type KeyID [8]byte

// String returns the key id as 16 lowercase hex digits.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// GenerateKey returns a new private key using randomness from rand.
func GenerateKey(rand io.Reader) (*PrivateKey, error) {
	pub, priv, err := box.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("%w: generating key: %v", ErrKey, err)
	}
	return &PrivateKey{k: priv, pub: PublicKey{k: *pub}}, nil
}

func newPrivateKey(b []byte) (*PrivateKey, error) {
	if len(b) != 32 {
		return nil, fmt.Errorf("%w: private key must be 32 bytes", ErrKey)
	}
	k := &PrivateKey{k: new([32]byte)}
	copy(k.k[:], b)
	pub, err := curve25519.X25519(k.k[:], curve25519.Basepoint)
	if err != nil {
		return nil, fmt.Errorf("%w: private key has no valid public key", ErrKey)
	}
	copy(k.pub.k[:], pub)
	return k, nil
}

// ParsePrivateKey parses a "TOKRUN-SECRET-KEY-1..." string. Only the
// canonical uppercase form is accepted. Errors never quote the input.
func ParsePrivateKey(s string) (*PrivateKey, error) {
	hrp, data, err := bech32.Decode(s)
	if err != nil {
		return nil, fmt.Errorf("%w: private key text: %v", ErrKey, err)
	}
	if hrp != privateHRP {
		return nil, fmt.Errorf("%w: not a tokrun private key (want prefix %q)", ErrKey, strings.ToUpper(privateHRP)+"1")
	}
	k, err := newPrivateKey(data)
	if err != nil {
		return nil, err
	}
	if k.Reveal() != s {
		return nil, fmt.Errorf("%w: private key text is not in canonical uppercase form", ErrKey)
	}
	return k, nil
}

// Reveal returns the private key's text form ("TOKRUN-SECRET-KEY-1...").
// It is the only path to the key material; use it only to write a key
// file.
func (k *PrivateKey) Reveal() string {
	if k.k == nil {
		return ""
	}
	s, err := bech32.Encode(privateHRP, k.k[:])
	if err != nil {
		panic("sealing: encoding a valid key failed: " + err.Error()) // unreachable: fixed valid HRP
	}
	return strings.ToUpper(s)
}

// Public returns the public key of k.
func (k *PrivateKey) Public() PublicKey { return k.pub }

// Equal reports whether k and o are the same key, in constant time.
func (k *PrivateKey) Equal(o *PrivateKey) bool {
	if k.k == nil || o.k == nil {
		return k.k == o.k
	}
	return subtle.ConstantTimeCompare(k.k[:], o.k[:]) == 1
}

// Format prints a redacted placeholder for every fmt verb.
func (k PrivateKey) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "sealing.PrivateKey{id=%s, REDACTED}", k.pub.ID())
}

// GoString returns a redacted placeholder.
func (k PrivateKey) GoString() string {
	return fmt.Sprintf("sealing.PrivateKey{id=%s, REDACTED}", k.pub.ID())
}

// LogValue shows only the key id in structured logs.
func (k PrivateKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key_id", k.pub.ID().String()), slog.String("private_key", "REDACTED"))
}

// MarshalJSON always fails: private keys are never serialised implicitly.
func (k PrivateKey) MarshalJSON() ([]byte, error) {
	return nil, fmt.Errorf("%w: private keys cannot be encoded as JSON", ErrKey)
}

// MarshalText always fails: private keys are never serialised implicitly.
func (k PrivateKey) MarshalText() ([]byte, error) {
	return nil, fmt.Errorf("%w: private keys cannot be encoded as text", ErrKey)
}

// ParsePublicKey parses a "tokrunpub1..." string. Only the canonical
// lowercase form is accepted.
func ParsePublicKey(s string) (PublicKey, error) {
	hrp, data, err := bech32.Decode(s)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: public key text: %v", ErrKey, err)
	}
	if hrp != publicHRP {
		return PublicKey{}, fmt.Errorf("%w: not a tokrun public key (want prefix %q)", ErrKey, publicHRP+"1")
	}
	if len(data) != 32 {
		return PublicKey{}, fmt.Errorf("%w: public key must be 32 bytes", ErrKey)
	}
	var p PublicKey
	copy(p.k[:], data)
	if p.String() != s {
		return PublicKey{}, fmt.Errorf("%w: public key text is not in canonical lowercase form", ErrKey)
	}
	return p, nil
}

// String returns the public key's text form ("tokrunpub1...").
func (p PublicKey) String() string {
	s, err := bech32.Encode(publicHRP, p.k[:])
	if err != nil {
		panic("sealing: encoding a valid key failed: " + err.Error()) // unreachable: fixed valid HRP
	}
	return s
}

// ID returns the key id that tokens sealed to p carry.
func (p PublicKey) ID() KeyID {
	h := sha256.New()
	h.Write([]byte(keyIDLabel))
	h.Write(p.k[:])
	var id KeyID
	copy(id[:], h.Sum(nil))
	return id
}

// MarshalText encodes the public key as its text form.
func (p PublicKey) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses the public key's text form.
func (p *PublicKey) UnmarshalText(b []byte) error {
	k, err := ParsePublicKey(string(b))
	if err != nil {
		return err
	}
	*p = k
	return nil
}
