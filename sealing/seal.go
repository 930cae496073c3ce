package sealing

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"golang.org/x/crypto/nacl/box"
)

// Seal validates b and value and seals them to the public key to. The
// result is a printable token that is safe to commit and to show to
// untrusted code. b.SealedAt is set to now. Randomness comes from rand.
func Seal(rand io.Reader, to PublicKey, b Binding, value string, now time.Time) (string, error) {
	b.SealedAt = now
	c, err := compile(b)
	if err != nil {
		return "", err
	}
	if err := checkValue(value); err != nil {
		return "", err
	}
	if len(value) < MinValueSize {
		unit := "bytes"
		if len(value) == 1 {
			unit = "byte"
		}
		return "", fmt.Errorf("%w: the secret value is %d %s; at least %d are needed to scrub it from responses safely", ErrBinding, len(value), unit, MinValueSize)
	}
	if i := strings.IndexFunc(value, invisible); i >= 0 {
		// A byte-order mark from a file saved by Notepad, a zero-width
		// space from a copy: sent with the key, the API refuses it, and an
		// echo without it would not be scrubbed. (Open accepts tokens
		// sealed before this check.)
		return "", fmt.Errorf("%w: the secret value holds an invisible character (U+%04X) at byte %d; remove it", ErrBinding, []rune(value[i:])[0], i)
	}
	if !c.b.NotAfter.IsZero() && !c.b.NotAfter.After(c.b.SealedAt) {
		return "", fmt.Errorf("%w: not_after %s is not in the future", ErrBinding, c.b.NotAfter.Format(time.RFC3339))
	}
	pt, err := encodePayload(c.b, value)
	if err != nil {
		return "", err
	}
	ct, err := box.SealAnonymous(nil, pt, &to.k, rand)
	if err != nil {
		return "", fmt.Errorf("sealing: %w", err)
	}
	tok := Envelope{Version: payloadVersion, KeyID: to.ID(), Ciphertext: ct}.String()
	if len(tok) > MaxTokenSize {
		return "", fmt.Errorf("%w: token would be %d bytes, limit %d", ErrTooLarge, len(tok), MaxTokenSize)
	}
	return tok, nil
}

// Open parses, decrypts and validates a sealed token with the ring's key
// of the token's key id. It does not check expiry (see Secret.Permits), so
// that an operator can still inspect an expired secret. name, if not
// empty, is what the caller calls the secret (a policy entry); it is used
// in errors, and the sealed name must equal it.
func (r *KeyRing) Open(token, name string) (*Secret, error) {
	label := "sealed secret"
	if name != "" {
		label = fmt.Sprintf("secret %q", name)
	}
	env, err := ParseEnvelope(token)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	k := r.lookup(env.KeyID)
	if k == nil {
		return nil, fmt.Errorf("%s: %w %s (this key file holds %s)", label, ErrUnknownKey, env.KeyID, r.ids())
	}
	pt, ok := box.OpenAnonymous(nil, env.Ciphertext, &k.pub.k, k.k)
	if !ok {
		return nil, fmt.Errorf("%s: %w with key %s: it was modified, truncated or forged", label, ErrDecrypt, env.KeyID)
	}
	b, value, err := decodePayload(pt)
	clear(pt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	c, err := compile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	if err := checkValue(value); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	if name != "" && c.b.Name != name {
		return nil, fmt.Errorf("%s: %w: sealed with name %q", label, ErrBinding, c.b.Name)
	}
	return &Secret{c: c, v: &hidden{s: value, header: strings.Replace(c.b.Format, "{}", value, 1)}, keyID: env.KeyID}, nil
}

func (r *KeyRing) ids() string {
	s := ""
	for i, k := range r.keys {
		if i > 0 {
			s += ", "
		}
		s += k.pub.ID().String()
	}
	return s
}

// invisible reports a character that prints as nothing, or as blank space
// other than the ASCII space: format characters (U+FEFF, U+200B...), and
// other spaces (U+00A0...).
func invisible(r rune) bool { return r != ' ' && !unicode.IsPrint(r) }
