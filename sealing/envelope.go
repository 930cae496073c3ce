package sealing

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"golang.org/x/crypto/nacl/box"
)

const (
	tokenPrefix = "tokrun.sealed.v1."
	// MaxTokenSize is the largest sealed token accepted, in bytes.
	MaxTokenSize = 32 << 10
)

var b64 = base64.RawURLEncoding.Strict()

// Envelope is the public part of a sealed token: everything that can be
// read without the private key.
type Envelope struct {
	Version    int    // format version; 1
	KeyID      KeyID  // id of the public key the secret was sealed to
	Ciphertext []byte // box.SealAnonymous output
}

// ParseEnvelope parses a sealed token
//
//	tokrun.sealed.v1.<key id: 16 lowercase hex>.<ciphertext: base64url, no padding>
//
// Only the canonical form is accepted, so a token has exactly one spelling.
// Surrounding whitespace is not trimmed; callers reading from files trim it.
func ParseEnvelope(token string) (Envelope, error) {
	if len(token) > MaxTokenSize {
		return Envelope{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(token), MaxTokenSize)
	}
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		if strings.HasPrefix(token, "tokrun.sealed.") {
			return Envelope{}, fmt.Errorf("%w: unsupported version (this build reads %q tokens)", ErrMalformed, tokenPrefix)
		}
		return Envelope{}, fmt.Errorf("%w: missing %q prefix", ErrMalformed, tokenPrefix)
	}
	idText, ct, ok := strings.Cut(rest, ".")
	if !ok {
		return Envelope{}, fmt.Errorf("%w: expected <key id>.<ciphertext> after the prefix", ErrMalformed)
	}
	var env Envelope
	env.Version = 1
	if len(idText) != 2*len(env.KeyID) || strings.ToLower(idText) != idText {
		return Envelope{}, fmt.Errorf("%w: key id must be %d lowercase hex digits", ErrMalformed, 2*len(env.KeyID))
	}
	if _, err := hex.Decode(env.KeyID[:], []byte(idText)); err != nil {
		return Envelope{}, fmt.Errorf("%w: key id must be %d lowercase hex digits", ErrMalformed, 2*len(env.KeyID))
	}
	// The decoder skips CR and LF even in strict mode; a token has exactly
	// one spelling, so check the alphabet first.
	raw, err := b64.DecodeString(ct)
	if err != nil || strings.IndexFunc(ct, notBase64URL) >= 0 {
		return Envelope{}, fmt.Errorf("%w: ciphertext is not unpadded base64url", ErrMalformed)
	}
	if len(raw) < box.AnonymousOverhead+minPayload {
		return Envelope{}, fmt.Errorf("%w: ciphertext truncated (%d bytes)", ErrMalformed, len(raw))
	}
	env.Ciphertext = raw
	return env, nil
}

// String returns the token form of the envelope.
func (e Envelope) String() string {
	return tokenPrefix + e.KeyID.String() + "." + b64.EncodeToString(e.Ciphertext)
}

func notBase64URL(r rune) bool {
	return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
}
