// Package match holds the host, method and path rules shared by sealed
// secret bindings and policies: how a host name or path is put into its
// one canonical form, and how patterns over those forms are written and
// matched.
//
// Hosts are compared in canonical form: lower case, one trailing dot
// removed, internationalised names in punycode (IDNA 2008, lookup
// profile), IPv6 literals without brackets in RFC 5952 form. A host whose
// last label is all digits but which is not a dotted-quad IPv4 address
// (such as "2130706433" or "127.1") is refused: some resolvers read those
// as IP addresses.
//
// A host pattern is an exact canonical host or "*.suffix", which matches
// every subdomain of suffix at any depth and never suffix itself. A
// wildcard over a public suffix ("*.com", "*.co.uk") is refused.
//
// Paths are matched after Path normalisation (see NormalizePath): unreserved
// characters are percent-decoded, dot-segments removed, repeated slashes
// collapsed. Ambiguous paths (an encoded slash or backslash, a literal
// backslash, a NUL, or a "..;" segment that some servers treat as "..")
// are refused rather than guessed at. A path glob is a normalised path in
// which a "*" matches any run of characters within one segment and a
// segment of exactly "**" matches zero or more whole segments.
package match
