// Package sealing seals API secrets to a proxy's public key and opens them
// again inside the proxy, with the places the secret may ever be used
// bound inside the ciphertext.
//
// # Keys
//
// Keys are X25519 (golang.org/x/crypto/nacl/box). A private key is written
// as uppercase Bech32 with the prefix "TOKRUN-SECRET-KEY-1", a public key
// as lowercase Bech32 with the prefix "tokrunpub1"; both carry a checksum,
// so a mistyped key is rejected and a leaked private key is easy to grep
// for. A [PrivateKey] has no printable form and is not comparable with ==;
// [PrivateKey.Reveal] is the one way to its text.
//
// A key file holds one private key per line; blank lines and lines
// starting with "#" are comments. Several keys allow rotation. Key files
// are created with O_EXCL and mode 0600 ([WriteKeyFile]); [LoadKeyFile]
// warns when a key file is accessible by group or others.
//
// # Sealed tokens
//
// A sealed secret is one printable token:
//
//	tokrun.sealed.v1.<key id>.<ciphertext>
//
// where the key id is 16 lowercase hex digits (the first 8 bytes of
// SHA-256("tokrun key id v1\x00" || public key)) and the ciphertext is
// box.SealAnonymous of a JSON payload, in unpadded base64url. The key id
// tells a proxy with several keys which one to use. Only the canonical
// spelling is accepted. Tokens are at most [MaxTokenSize] bytes.
//
// The version 1 payload is a JSON object with exactly these keys:
//
//	v          1 (required)
//	name       secret name: letters, digits, '-', '_', '.' (required)
//	value      the secret: printable, no surrounding space, at most MaxValueSize bytes (required)
//	hosts      exact hosts or "*.suffix" wildcards, canonical form (required, non-empty)
//	header     header to inject into, canonical form (required)
//	format     header value with exactly one "{}" for the value (required)
//	methods    allowed methods (optional)
//	paths      allowed path globs on the normalised path (optional)
//	not_after  RFC 3339 expiry (optional)
//	sealed_at  RFC 3339 sealing time (required)
//
// Decoding is strict: unknown keys, keys in another case, duplicate keys,
// null values, wrong types, trailing data and oversized payloads are
// errors, and the binding is validated again after decryption, so a
// hand-crafted payload gets no more than sealctl would have produced.
// The header may never be hop-by-hop (a client could name it in
// Connection and have it stripped after injection), Proxy-*, Host,
// framing headers or X-Tokrun-*; neither format nor value may contain
// CR, LF or other control characters, so the injected header cannot be
// split.
//
// # Security properties
//
// The binding is inside the authenticated ciphertext: nobody without the
// private key can read it, and nobody can change it without the token
// failing to open. A policy can narrow where a secret goes but never widen
// it ([Secret.Permits]). Anyone with the public key can seal a token, so a
// token proves nothing about who sealed it; it only guarantees that the
// binding and value travel together.
//
// An opened [Secret] prints as its name and [Fingerprint] in every path
// (fmt verbs, JSON, slog); errors never contain values or key material.
// Test vectors that every future version must keep opening live in
// testdata/sealing.
package sealing
