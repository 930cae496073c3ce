package match

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// ErrHost reports a host name or host pattern that is not acceptable.
var ErrHost = errors.New("invalid host")

// maxHostLen bounds a canonical host name (RFC 1035 limits names to 253
// characters; punycode never needs more).
const maxHostLen = 253

var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.VerifyDNSLength(true),
	idna.StrictDomainName(false), // underscores occur in real names; checked below
)

// NormalizeHost returns the canonical form of host, which must not carry a
// port. Brackets around an IPv6 literal are accepted and removed.
func NormalizeHost(host string) (string, error) {
	// fastName accepts only plain ASCII names without a trailing dot, the
	// common case: never an address, and nothing that the checks of
	// normalizeHost refuse before they too end in fastName. A fuzz test
	// checks that both agree.
	if h, ok := fastName(host); ok {
		return h, nil
	}
	return normalizeHost(host)
}

// normalizeHost is NormalizeHost for any host.
func normalizeHost(host string) (string, error) {
	if host == "" {
		return "", fmt.Errorf("%w: empty host", ErrHost)
	}
	if len(host) > 4*maxHostLen {
		return "", fmt.Errorf("%w: host name too long", ErrHost)
	}
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", fmt.Errorf("%w: unbalanced brackets in %q", ErrHost, host)
		}
		inner := host[1 : len(host)-1]
		addr, err := netip.ParseAddr(inner)
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "", fmt.Errorf("%w: %q is not an IPv6 address", ErrHost, host)
		}
		return canonicalAddr(addr), nil
	}
	if mayBeAddr(host) {
		if addr, err := netip.ParseAddr(host); err == nil {
			if addr.Zone() != "" {
				return "", fmt.Errorf("%w: IPv6 zone in %q", ErrHost, host)
			}
			return canonicalAddr(addr), nil
		}
	}
	if strings.ContainsAny(host, ":[]") {
		if strings.Contains(host, "://") {
			return "", fmt.Errorf("%w: %q is a URL; give the host name alone, such as api.example.com", ErrHost, host)
		}
		return "", fmt.Errorf("%w: %q contains a port or stray brackets", ErrHost, host)
	}
	if !utf8.ValidString(host) {
		return "", fmt.Errorf("%w: host name is not valid UTF-8", ErrHost)
	}
	name := strings.TrimSuffix(host, ".")
	if h, ok := fastName(name); ok {
		return h, nil
	}
	return slowName(host, name)
}

// fastName handles the common case without IDNA processing: plain ASCII
// letters, digits, '-' and '_', no label with "--" in positions 3-4 (which
// covers punycode "xn--"), valid lengths, a non-numeric last label. For
// such names IDNA lookup mapping is only lowercasing; a fuzz test checks
// that fastName agrees with slowName.
func fastName(name string) (string, bool) {
	if len(name) == 0 || len(name) > maxHostLen {
		return "", false
	}
	start, last, upper := 0, "", false
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			c := name[i]
			upper = upper || c >= 'A' && c <= 'Z'
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
			continue
		}
		l := name[start:i]
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' || (len(l) >= 4 && l[2] == '-' && l[3] == '-') {
			return "", false
		}
		start, last = i+1, l
	}
	if allDigits(last) {
		return "", false
	}
	if upper {
		return strings.ToLower(name), true
	}
	return name, true
}

// slowName canonicalises name with full IDNA processing.
func slowName(host, name string) (string, error) {
	ascii, err := idnaProfile.ToASCII(name)
	if err == nil {
		// The punycode form must itself be canonical, or two spellings
		// of one name could compare unequal.
		var again string
		again, err = idnaProfile.ToASCII(ascii)
		if err == nil && again != ascii {
			err = ErrHost
		}
	}
	if err != nil {
		return "", fmt.Errorf("%w: %q is not a valid domain name", ErrHost, host)
	}
	ascii = strings.ToLower(ascii)
	if len(ascii) > maxHostLen {
		return "", fmt.Errorf("%w: host name too long", ErrHost)
	}
	labels := strings.Split(ascii, ".")
	for _, l := range labels {
		if !validLabel(l) {
			return "", fmt.Errorf("%w: %q is not a valid domain name", ErrHost, host)
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return "", fmt.Errorf("%w: %q looks like a numeric address but is not a dotted-quad IPv4 address", ErrHost, host)
	}
	return ascii, nil
}

func canonicalAddr(a netip.Addr) string {
	return a.Unmap().String()
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// IsIP reports whether a canonical host is an IP literal.
func IsIP(host string) bool {
	if !mayBeAddr(host) {
		return false
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}

// mayBeAddr reports whether netip.ParseAddr could accept s: only an IPv6
// form holds a ':', and an IPv4 form holds nothing but digits and dots.
// It lets host names skip ParseAddr, whose error allocates; a fuzz test
// checks that it never rules out an address ParseAddr accepts.
func mayBeAddr(s string) bool {
	if strings.IndexByte(s, ':') >= 0 {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// HostPattern is a compiled host pattern: an exact canonical host, or a
// wildcard over every subdomain of a suffix. The zero value matches
// nothing.
type HostPattern struct {
	exact  string
	suffix string // ".example.com" for "*.example.com"
}

// ParseHostPattern parses "host" or "*.suffix".
func ParseHostPattern(s string) (HostPattern, error) {
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		if strings.Contains(rest, "*") {
			return HostPattern{}, fmt.Errorf("%w: %q: only one leading \"*.\" is allowed", ErrHost, s)
		}
		suffix, err := NormalizeHost(rest)
		if err != nil {
			return HostPattern{}, fmt.Errorf("%w: %q: wildcard suffix is not a valid domain name", ErrHost, s)
		}
		if IsIP(suffix) {
			return HostPattern{}, fmt.Errorf("%w: %q: a wildcard cannot cover an IP address", ErrHost, s)
		}
		if ps, _ := publicsuffix.PublicSuffix(suffix); ps == suffix {
			return HostPattern{}, fmt.Errorf("%w: %q: a wildcard over the public suffix %q would match unrelated owners", ErrHost, s, suffix)
		}
		return HostPattern{suffix: "." + suffix}, nil
	}
	if strings.Contains(s, "*") {
		return HostPattern{}, fmt.Errorf("%w: %q: a wildcard is only allowed as a leading \"*.\"", ErrHost, s)
	}
	h, err := NormalizeHost(s)
	if err != nil {
		return HostPattern{}, err
	}
	return HostPattern{exact: h}, nil
}

// Match reports whether the canonical host h matches the pattern.
func (p HostPattern) Match(h string) bool {
	if p.exact != "" {
		return h == p.exact
	}
	return p.suffix != "" && len(h) > len(p.suffix) && strings.HasSuffix(h, p.suffix) && WildcardCovers(p.suffix[1:], h)
}

// WildcardCovers reports whether a wildcard over the domain suffix may
// cover the host h below it: h's public suffix must be shorter than
// suffix, so that whoever owns suffix owns h too. Below a public suffix
// that lies under suffix (execute-api.us-east-1.amazonaws.com under
// amazonaws.com, blob.core.windows.net under core.windows.net) anyone can
// register a name, so "*.amazonaws.com" does not cover
// "attacker.execute-api.us-east-1.amazonaws.com".
func WildcardCovers(suffix, h string) bool {
	ps, _ := publicsuffix.PublicSuffix(h)
	return len(ps) < len(suffix)
}

// Overlaps reports whether some host matched by q is also matched by p,
// that is, whether the two patterns overlap.
func (p HostPattern) Overlaps(q HostPattern) bool {
	switch {
	case p.exact != "" && q.exact != "":
		return p.exact == q.exact
	case p.exact != "":
		return q.Match(p.exact)
	case q.exact != "":
		return p.Match(q.exact)
	default:
		return strings.HasSuffix(p.suffix, q.suffix) || strings.HasSuffix(q.suffix, p.suffix)
	}
}

// Wildcard reports whether the pattern is a "*.suffix" wildcard.
func (p HostPattern) Wildcard() bool { return p.suffix != "" }

// String returns the pattern in its canonical written form.
func (p HostPattern) String() string {
	if p.suffix != "" {
		return "*" + p.suffix
	}
	return p.exact
}
