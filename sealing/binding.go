package sealing

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"

	"github.com/tokrun/tokrun/internal/match"
)

// Limits on a binding and value, so that a payload stays small.
const (
	MaxValueSize = 4096
	// MinValueSize is the shortest value Seal accepts: the proxy cannot
	// scrub shorter values from responses without corrupting them.
	MinValueSize = 8
	maxNameLen   = 64
	maxListLen   = 64
	maxFormatLen = 256
)

// Binding says where a sealed secret may ever be used. It is sealed inside
// the ciphertext with the value, so nobody without the private key can
// change it, and a policy can only narrow it.
type Binding struct {
	// Name identifies the secret in policies, logs and metrics.
	Name string
	// Hosts lists the hosts the secret may be sent to: exact names or
	// "*.suffix" wildcards (subdomains at any depth, never the suffix
	// itself). Required. Stored in canonical form.
	Hosts []string
	// Header is the request header the secret is injected into. Required;
	// never a hop-by-hop, Proxy-*, Host or framing header. Stored in
	// canonical form ("Authorization").
	Header string
	// Format is the header value with exactly one "{}" standing for the
	// secret, for example "Bearer {}". Required.
	Format string
	// Methods, if not empty, limits the HTTP methods.
	Methods []string
	// Paths, if not empty, limits request paths to these globs on the
	// normalised path ("*" within a segment, "**" across segments).
	Paths []string
	// NotAfter, if not zero, is when the secret stops being usable.
	NotAfter time.Time
	// SealedAt is when the secret was sealed; set by Seal.
	SealedAt time.Time
}

// Validate reports whether b is a binding Seal accepts, so that a tool
// can check it before asking for the secret. Errors wrap ErrBinding; a
// binding that leaves no room in a payload for the shortest value also
// wraps ErrTooLarge.
func (b Binding) Validate() error {
	_, err := b.Canonical()
	return err
}

// Canonical returns b as Seal would seal it: hosts, header and methods in
// their canonical forms (a host typed in upper case or in Unicode is bound
// in lower case or punycode). Errors are Validate's.
func (b Binding) Canonical() (Binding, error) {
	c, err := compile(b)
	if err != nil {
		return Binding{}, err
	}
	// The shortest value; a sealing time is always whole seconds in UTC.
	probe := c.b
	probe.SealedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := encodePayload(probe, strings.Repeat("x", MinValueSize)); err != nil {
		return Binding{}, fmt.Errorf("%w: %w: the hosts, methods and paths leave no room for the secret in a payload of at most %d bytes", ErrBinding, ErrTooLarge, maxPayload)
	}
	return c.b, nil
}

// forbiddenHeaders may never carry a secret: they are hop-by-hop (a client
// could name them in Connection and have them dropped), framing, routing,
// rewritten or removed by the proxy (Accept-Encoding, Range, If-Range), or
// decided by it (the method and path overrides): a secret there would
// never arrive, or would be read as something the policy never decided.
var forbiddenHeaders = []string{
	"Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Http2-Settings",
	"Host", "Content-Length", "Content-Type", "Content-Encoding", "Set-Cookie", "Expect", "Max-Forwards",
	"Accept-Encoding", "Range", "If-Range", "Forwarded",
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override", "X-Original-Url", "X-Rewrite-Url",
}

// forbiddenPrefixes are the families of headers that may never carry a
// secret: the proxy's own and the client's connection to it, what
// proxies add about the original request, and the WebSocket handshake.
var forbiddenPrefixes = []string{"Proxy-", "X-Tokrun-", "X-Forwarded-", "Sec-Websocket-"}

// forbiddenHeader reports whether canon, a canonical header name, may
// never carry a secret, also when spelled with '_' or '.' for '-', as
// CGI-style servers (PHP) read them.
func forbiddenHeader(canon string) bool {
	spelled := http.CanonicalHeaderKey(strings.Map(func(r rune) rune {
		if r == '_' || r == '.' {
			return '-'
		}
		return r
	}, canon))
	return slices.Contains(forbiddenHeaders, spelled) ||
		slices.ContainsFunc(forbiddenPrefixes, func(p string) bool { return strings.HasPrefix(spelled, p) })
}

// compiled is a validated binding with its matchers.
type compiled struct {
	b     Binding
	hosts []match.HostPattern
	paths []match.PathGlob
}

// compile validates b and returns it in canonical form with matchers.
// Errors wrap ErrBinding and name the field.
func compile(b Binding) (*compiled, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBinding}, args...)...)
	}
	c := &compiled{b: b}
	if err := checkName(b.Name); err != nil {
		return nil, bad("name: %v", err)
	}
	if len(b.Hosts) == 0 {
		return nil, bad("hosts: at least one host is required")
	}
	if len(b.Hosts) > maxListLen || len(b.Methods) > maxListLen || len(b.Paths) > maxListLen {
		return nil, bad("at most %d hosts, methods and paths each", maxListLen)
	}
	c.b.Hosts = make([]string, len(b.Hosts))
	for i, h := range b.Hosts {
		p, err := match.ParseHostPattern(h)
		if err != nil {
			return nil, bad("hosts[%d]: %v", i, err)
		}
		c.hosts = append(c.hosts, p)
		c.b.Hosts[i] = p.String()
	}
	if !httpguts.ValidHeaderFieldName(b.Header) {
		// Never quoted: a whole header line ("Authorization: Bearer
		// sk-...", curl's -H habit), or the value alone, holds the secret.
		return nil, bad("header: not a valid header name; give the name alone (such as Authorization) and the rest in the format")
	}
	canon := http.CanonicalHeaderKey(b.Header)
	if forbiddenHeader(canon) {
		return nil, bad("header: %s cannot carry a secret (a hop-by-hop, framing, routing or reserved header, or one the proxy rewrites or decides)", canon)
	}
	c.b.Header = canon
	if strings.Count(b.Format, "{}") != 1 {
		return nil, bad("format: must contain exactly one {} placeholder for the value")
	}
	if len(b.Format) > maxFormatLen || !utf8.ValidString(b.Format) || !httpguts.ValidHeaderFieldValue(b.Format) || hasControl(b.Format) {
		return nil, bad("format: must be at most %d printable characters without CR, LF or other control characters", maxFormatLen)
	}
	c.b.Methods = nil
	for i, m := range b.Methods {
		m, err := match.ParseMethod(m)
		if err != nil {
			return nil, bad("methods[%d]: %v", i, err)
		}
		if slices.Contains(c.b.Methods, m) {
			return nil, bad("methods[%d]: %s listed twice", i, m)
		}
		c.b.Methods = append(c.b.Methods, m)
	}
	c.b.Paths = nil
	for i, p := range b.Paths {
		g, err := match.ParsePathGlob(p)
		if err != nil {
			return nil, bad("paths[%d]: %v", i, err)
		}
		c.paths = append(c.paths, g)
		c.b.Paths = append(c.b.Paths, p)
	}
	for _, t := range []struct {
		field string
		in    time.Time
		out   *time.Time
	}{{"not_after", b.NotAfter, &c.b.NotAfter}, {"sealed_at", b.SealedAt, &c.b.SealedAt}} {
		if t.in.IsZero() {
			continue
		}
		u := t.in.UTC().Truncate(time.Second)
		if u.Year() < 2000 || u.Year() > 9999 {
			return nil, bad("%s: year %d is out of range", t.field, u.Year())
		}
		*t.out = u
	}
	return c, nil
}

func checkName(n string) error {
	if n == "" || len(n) > maxNameLen {
		return fmt.Errorf("must be 1 to %d characters", maxNameLen)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("%q may contain only letters, digits, '-', '_' and '.'", n)
		}
	}
	return nil
}

// checkValue validates a secret value without ever quoting it.
func checkValue(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: the secret value is empty", ErrBinding)
	case len(v) > MaxValueSize:
		return fmt.Errorf("%w: the secret value is %d bytes, limit %d", ErrTooLarge, len(v), MaxValueSize)
	case !utf8.ValidString(v) || hasControl(v):
		return fmt.Errorf("%w: the secret value contains control characters (CR, LF, NUL, ...) or invalid UTF-8", ErrBinding)
	case strings.TrimSpace(v) != v:
		return fmt.Errorf("%w: the secret value has leading or trailing whitespace", ErrBinding)
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

// permits checks one use against the binding.
func (c *compiled) permits(host, method, path string, now time.Time) error {
	if !c.b.NotAfter.IsZero() && now.After(c.b.NotAfter) {
		return fmt.Errorf("%w: secret %s expired at %s", ErrExpired, c.b.Name, c.b.NotAfter.Format(time.RFC3339))
	}
	if !slices.ContainsFunc(c.hosts, func(p match.HostPattern) bool { return p.Match(host) }) {
		return fmt.Errorf("%w: secret %s is sealed for %s, not %s", ErrHostNotBound, c.b.Name, strings.Join(c.b.Hosts, ", "), host)
	}
	if len(c.b.Methods) > 0 && !slices.Contains(c.b.Methods, method) {
		return fmt.Errorf("%w: secret %s is sealed for methods %s, not %s", ErrMethodNotBound, c.b.Name, strings.Join(c.b.Methods, ", "), method)
	}
	if len(c.paths) > 0 && !slices.ContainsFunc(c.paths, func(g match.PathGlob) bool { return g.Match(path) }) {
		return fmt.Errorf("%w: secret %s is sealed for paths %s, not %s", ErrPathNotBound, c.b.Name, strings.Join(c.b.Paths, ", "), path)
	}
	return nil
}
