// Package scrub removes secrets that an upstream API echoes back in a
// response, before the response reaches the sandbox.
//
// A Scrubber is built once from pairs of (secret, placeholder) and is then
// safe for concurrent use. Reader wraps a response body and streams it with
// every encoding of every secret replaced by that secret's placeholder;
// Replace does the same for a header value, and AppendReplace for a body
// held whole in memory:
//
//	s, err := scrub.New([]scrub.Pair{{Secret: key, Placeholder: "tokrun_ph_1"}})
//	...
//	body := s.Reader(resp.Body)
//	resp.Body = body
//	...
//	scrubs.Add(float64(body.Count())) // after the body is read
//
// # What is matched
//
// For a secret S (at least MinSecretLen bytes) the following forms are
// matched, each exactly as written (byte for byte, so "case variants" are
// listed explicitly):
//
//   - S itself.
//   - Base64 of S alone, standard and URL alphabets, with and without
//     padding.
//   - Base64 of S embedded in a longer base64 text (such as
//     "Basic base64(user:S)"): for each of the three alignments (S preceded
//     by a multiple of 3 bytes, plus 0, 1 or 2 bytes), the run of encoded
//     characters that depends only on the bytes of S, in both alphabets.
//     The characters at either end that mix bits of S with its neighbours
//     are not part of that run and are left in place; they carry at most
//     4 bits of S each.
//   - Lowercase and uppercase hex of S (mixed case is not matched).
//   - Percent-encoded S as produced by url.QueryEscape, url.PathEscape and
//     by escaping every byte outside RFC 3986's unreserved set (as
//     encodeURIComponent and Python's quote(s, safe="") do, apart from
//     encodeURIComponent's !'()*), each with uppercase and with lowercase
//     hex digits.
//   - S as the body of a JSON string, as encoding/json writes it with and
//     without HTML escaping (\u003c, \u003e, \u0026, \u2028, \u2029), each
//     also with "/" written as "\/" (PHP's default), and, if S is not
//     ASCII, with every non-ASCII character written as \uXXXX (Python's
//     default).
//
// Not matched: encodings nested in one another (percent-encoded base64,
// JSON-escaped hex), base64 with line breaks inside S's run (MIME, PEM),
// mixed-case hex or percent escapes, compressed or encrypted bodies (the
// proxy asks upstream for identity encoding), partial echoes (a truncated
// or otherwise altered S), and any other transformation.
//
// # Replacement
//
// Every matched form is replaced by the raw placeholder. Placeholders are
// restricted to [A-Za-z0-9_-], so a replacement keeps a JSON string,
// a URL component, a header value and a base64url text well formed. When
// needles overlap, the match that starts leftmost wins, and among those the
// longest; matches do not overlap. The placeholder's own text is not
// scanned again: New refuses a placeholder that contains, or is contained
// in, a form of any secret, but a form that begins inside a placeholder and
// ends in the text next to it is not detected.
//
// # Limits
//
// New refuses secrets shorter than MinSecretLen bytes: a short secret would
// match ordinary text and corrupt responses. It refuses secrets longer
// than MaxSecretLen bytes, which bounds the automaton's memory. Errors name
// the pair by index and never quote a secret; a Scrubber prints redacted
// under every fmt verb and in slog.
//
// # Cost
//
// Matching is one Aho–Corasick automaton over every form of every secret,
// with dense rows for the first 12 bytes of each form, so scanning costs
// about the same for one secret as for several (roughly 2 ns a byte on a
// current server core). New costs well under a millisecond and about
// 100 KiB for a few ordinary API keys, and at worst (a MaxSecretLen-byte
// binary secret) some 6 MB and 200 ms: build a Scrubber when the secrets
// are loaded and share it, rather than once per request.
//
// Replace, AppendReplace and Contains, which see their whole input at
// once, first look for the first form without copying it, and without
// stepping through every byte: every form is at least as long as the
// shortest, so they look at two bytes per window of that length and move
// on by most of it unless those bytes occur near the end of some form's
// start (Wu and Manber's method; see skip.go). Text that holds no form
// costs a fraction of a pass (some 0.3 ns a byte for an ordinary API key)
// and no allocation: Replace returns its argument, and AppendReplace only
// appends to dst. A Reader steps through every byte, since it must carry
// partial matches across reads.
//
// # Streaming
//
// A Reader holds back only bytes that could still be the start of a match,
// at most the longest form's length minus one, so memory is bounded and a
// streamed response (server-sent events) is not delayed when its last
// bytes cannot begin a secret. On a clean EOF every held byte is flushed.
// On any other error, a held tail that could be the start of a secret is
// dropped (a connection cut in the middle of an echoed secret must not leak
// its first half); everything before it is delivered, then the error.
package scrub
