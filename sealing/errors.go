package sealing

import "errors"

// Sentinel errors. Every error returned by this package wraps one of them
// (test with errors.Is). Messages may name a secret, a key id or a field;
// they never contain secret values, private keys or decrypted payloads.
var (
	// ErrKey reports key text or a key file that cannot be used.
	ErrKey = errors.New("invalid key")
	// ErrMalformed reports a sealed token that is not well formed.
	ErrMalformed = errors.New("malformed token")
	// ErrTooLarge reports input over a size limit.
	ErrTooLarge = errors.New("too large")
	// ErrUnknownKey reports a token sealed to a key the ring does not hold.
	ErrUnknownKey = errors.New("sealed to an unknown key")
	// ErrDecrypt reports a ciphertext that does not open with the matching
	// key: it was modified, truncated or forged.
	ErrDecrypt = errors.New("does not decrypt")
	// ErrPayload reports a decrypted payload that is not a valid version 1
	// payload (unknown, missing or duplicate fields, bad types).
	ErrPayload = errors.New("invalid sealed payload")
	// ErrBinding reports a binding that is not acceptable (bad host,
	// header, format, method or path), at seal time or at open time.
	ErrBinding = errors.New("invalid binding")
	// ErrExpired reports a secret used after its not_after time.
	ErrExpired = errors.New("sealed secret expired")

	// ErrHostNotBound, ErrMethodNotBound and ErrPathNotBound report a use
	// of a secret that its sealed binding does not permit.
	ErrHostNotBound   = errors.New("host not in the secret's sealed binding")
	ErrMethodNotBound = errors.New("method not in the secret's sealed binding")
	ErrPathNotBound   = errors.New("path not in the secret's sealed binding")
)
