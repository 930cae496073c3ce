package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokrun/tokrun/internal/match"
	"github.com/tokrun/tokrun/sealing"
)

// Reason is a machine-readable cause of a decision, from a small fixed set.
type Reason string

// The reasons a decision can carry.
const (
	Allowed          Reason = "allowed"
	InvalidHost      Reason = "invalid_host"
	InvalidPath      Reason = "invalid_path"
	HostNotAllowed   Reason = "host_not_allowed"
	SchemeNotAllowed Reason = "scheme_not_allowed"
	PortNotAllowed   Reason = "port_not_allowed"
	MethodNotAllowed Reason = "method_not_allowed"
	PathNotAllowed   Reason = "path_not_allowed"
	DeniedByRule     Reason = "denied_by_rule"
	SecretNotBound   Reason = "secret_not_bound"
	SecretExpired    Reason = "secret_expired"
)

// Reasons returns every reason, for example to initialise metrics.
func Reasons() []Reason {
	return []Reason{Allowed, InvalidHost, InvalidPath, HostNotAllowed, SchemeNotAllowed, PortNotAllowed,
		MethodNotAllowed, PathNotAllowed, DeniedByRule, SecretNotBound, SecretExpired}
}

// Request holds the facts a decision is made on. Host and Path may be in
// any form a client sent; Decide normalises them.
type Request struct {
	Scheme string // "https" or "http"
	Host   string // without port; IPv6 with or without brackets
	Port   int    // 0 means the scheme's default port
	Method string
	Path   string // escaped path, without the query string
}

// Injection is a secret to inject into an allowed request.
type Injection struct {
	Name        string          `json:"secret"`
	Header      string          `json:"header"`
	Fingerprint string          `json:"fingerprint"`
	Secret      *sealing.Secret `json:"-"`
}

// Decision is the outcome of Decide.
type Decision struct {
	Allow  bool   `json:"allow"`
	Reason Reason `json:"reason"`
	// Rule is the allow rule that matched, or the deny rule that refused.
	Rule string `json:"rule,omitempty"`
	// Canonical request facts: what was decided on, and what must be
	// dialled and injected.
	Scheme string `json:"scheme"`
	Host   string `json:"host"`
	Port   int    `json:"port"`
	Method string `json:"method"`
	Path   string `json:"path"`
	// Inject lists the secrets to inject, in rule order.
	Inject []Injection `json:"inject,omitempty"`
	// AllowPrivate is set when the matched rule permits private
	// destinations.
	AllowPrivate bool `json:"unsafe_allow_private_network,omitempty"`
	// Explanation says in a sentence why, and for a denial what rule would
	// be needed. It holds public facts only.
	Explanation string `json:"explanation"`

	// hostOnly marks a decision of DecideHost, which a Learner ignores.
	hostOnly bool
	// The time counts only through the expiry of the secrets a decision
	// checked: lasts is until when the same request gets the same decision
	// (zero: for ever), once says it may not be reused (a secret refused).
	once  bool
	lasts time.Time
}

// Holds reports whether Decide would return d, a decision of p, again now
// for the same request. A decision depends on the time only through the
// expiry of the secrets it checked: one that allowed them holds until the
// first of them expires; one that refused a secret is not reused.
func (p *Policy) Holds(d *Decision) bool {
	return !d.once && (d.lasts.IsZero() || !p.clock().After(d.lasts))
}

// Policy is a validated, immutable policy. It is safe for concurrent use.
type Policy struct {
	file        string
	secrets     map[string]*Secret
	secretOrder []string
	rules       []*Rule
	deny        []*Rule
	allowIdx    hostIndex
	denyIdx     hostIndex
	warnings    []Problem
	now         func() time.Time
	hash        string
	learn       bool
}

// LearnRule is the rule name of decisions that learn mode allows because
// no allow rule matched (see Options.Learn). In learn mode no file rule
// may have this name.
const LearnRule = "learn"

// Learning reports whether the policy was loaded in learn mode.
func (p *Policy) Learning() bool { return p.learn }

// Hash returns the SHA-256 of the policy file's content, in hex. Secrets
// in the file are sealed, so the hash reveals nothing about them. When
// Options.Allow or Options.Learn change how the policy decides, the hash
// covers them too, so two policies that decide differently never share a
// hash.
func (p *Policy) Hash() string { return p.hash }

// File returns the file the policy was loaded from.
func (p *Policy) File() string { return p.file }

// Rules returns the allow rules in file order, followed by the rules
// from Options.Allow.
func (p *Policy) Rules() []*Rule { return slices.Clone(p.rules) }

// DenyRules returns the deny rules in file order.
func (p *Policy) DenyRules() []*Rule { return slices.Clone(p.deny) }

// Secrets returns the declared secrets in file order.
func (p *Policy) Secrets() []*Secret {
	out := make([]*Secret, 0, len(p.secretOrder))
	for _, n := range p.secretOrder {
		out = append(out, p.secrets[n])
	}
	return out
}

// Warnings returns problems that do not stop the policy from loading,
// such as expired secrets.
func (p *Policy) Warnings() []Problem { return slices.Clone(p.warnings) }

// hostIndex finds the rules whose host pattern can match a host without
// scanning every rule: exact hosts by map, wildcards by each suffix of
// the host.
type hostIndex struct {
	exact    map[string][]int
	wildcard map[string][]int // key ".example.com"
	// wildcardLen[n] is set when a wildcard key is n bytes long, so that
	// candidates looks up only the suffixes that can be keys.
	wildcardLen [maxWildcardKey + 1]bool
	// narrow keeps a wildcard from covering hosts under a public suffix
	// nested below it (match.WildcardCovers): for allow rules, not deny
	// rules, which must refuse at least what they say.
	narrow bool
}

// maxWildcardKey bounds the length of a wildcard key: "." and a
// canonical host name.
const maxWildcardKey = 1 + 253

func newHostIndex(rules []*Rule, narrow bool) hostIndex {
	ix := hostIndex{exact: map[string][]int{}, wildcard: map[string][]int{}, narrow: narrow}
	for i, r := range rules {
		if r.host.Wildcard() {
			k := strings.TrimPrefix(r.Host, "*")
			ix.wildcard[k] = append(ix.wildcard[k], i)
			ix.wildcardLen[len(k)] = true
		} else {
			ix.exact[r.Host] = append(ix.exact[r.Host], i)
		}
	}
	return ix
}

// candidates returns, in file order, the indexes of rules whose host
// pattern matches the canonical host h.
func (ix *hostIndex) candidates(h string, buf []int) []int {
	out := append(buf[:0], ix.exact[h]...)
	if len(ix.wildcard) == 0 || match.IsIP(h) {
		return out // in file order already
	}
	for i := 1; i < len(h); i++ {
		if h[i] == '.' && len(h)-i <= maxWildcardKey && ix.wildcardLen[len(h)-i] {
			if rs := ix.wildcard[h[i:]]; len(rs) > 0 && (!ix.narrow || match.WildcardCovers(h[i+1:], h)) {
				out = append(out, rs...)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (p *Policy) buildIndex() {
	p.allowIdx = newHostIndex(p.rules, true)
	p.denyIdx = newHostIndex(p.deny, false)
}

// start checks and canonicalises the scheme, port and host of req, the
// part every decision shares. It returns the decision so far, and false
// with a denial when the request can go no further.
func start(req Request) (Decision, bool) {
	d := Decision{Scheme: req.Scheme, Host: req.Host, Port: req.Port, Method: req.Method, Path: req.Path}
	if req.Scheme != "https" && req.Scheme != "http" {
		return d.deny(SchemeNotAllowed, "scheme %q is never allowed; only https and http", req.Scheme), false
	}
	if d.Port == 0 {
		d.Port = defaultPort(req.Scheme)
	}
	host, err := match.NormalizeHost(req.Host)
	if err != nil {
		return d.deny(InvalidHost, "host %q is not a valid host name or IP address", req.Host), false
	}
	d.Host = host
	return d, true
}

// deny returns d as a denial for reason r, explained by a formatted
// message.
func (d Decision) deny(r Reason, format string, args ...any) Decision {
	return d.denied(r, fmt.Sprintf(format, args...))
}

// denied returns d as a denial for reason r, explained by why.
func (d Decision) denied(r Reason, why string) Decision {
	d.Allow, d.Reason, d.Explanation = false, r, why
	return d
}

// canonical is a request in normalised form.
type canonical struct {
	scheme, host, method, path string
	port                       int
}

// Decide decides one request. It never fails: malformed requests are
// denied with a reason.
func (p *Policy) Decide(req Request) Decision {
	d, ok := start(req)
	if !ok {
		return d
	}
	path, err := match.NormalizePath(req.Path)
	if err != nil {
		return d.deny(InvalidPath, "path refused: %s; send it without encoded slashes, backslashes or control characters", strings.TrimPrefix(err.Error(), match.ErrPath.Error()+": "))
	}
	d.Path = path
	method, err := match.ParseMethod(req.Method)
	if err != nil {
		return d.deny(MethodNotAllowed, "method %q is never allowed; allowed methods are %s", req.Method, strings.Join(match.Methods(), ", "))
	}
	d.Method = method
	host := d.Host
	c := canonical{scheme: req.Scheme, host: host, method: method, path: path, port: d.Port}

	var buf [16]int
	denyCands := p.denyIdx.candidates(host, buf[:])
	var loose string
	if len(denyCands) > 0 {
		loose = loosePath(path)
	}
	for _, i := range denyCands {
		if r := p.deny[i]; r.denies(&c, loose) {
			d.Rule = r.Name
			return d.denied(DeniedByRule, c.explain(" is refused by deny rule ", r.Name))
		}
	}
	best, bestStage := (*Rule)(nil), stageHost
	for _, i := range p.allowIdx.candidates(host, buf[:]) {
		r := p.rules[i]
		s := r.check(&c)
		if s == stageMatched {
			return p.allow(d, r, &c)
		}
		if best == nil || s > bestStage {
			best, bestStage = r, s
		}
	}
	denied := missed(d, best, bestStage, &c)
	if p.learn {
		return learnAllow(denied, c.explain())
	}
	return denied
}

// missed denies a request for which no allow rule matched: best is the
// rule that came nearest (nil when no rule has the host) and stage how far
// it got, so that the reason names what a rule would need.
func missed(d Decision, best *Rule, stage stage, c *canonical) Decision {
	switch {
	case best == nil:
		return d.denied(HostNotAllowed, "no rule allows host "+c.host+"; add a rule with host: "+c.host)
	case stage == stageScheme:
		return d.denied(SchemeNotAllowed, "rule "+best.Name+" allows "+best.Scheme+", not "+c.scheme+", for host "+c.host)
	case stage == stagePort:
		return d.denied(PortNotAllowed, "rule "+best.Name+" allows port "+strconv.Itoa(best.Port)+", not "+strconv.Itoa(c.port)+", for host "+c.host)
	case stage == stageMethod:
		return d.denied(MethodNotAllowed, "rule "+best.Name+" allows methods "+strings.Join(best.Methods, ", ")+", not "+c.method+", for host "+c.host)
	default:
		return d.denied(PathNotAllowed, "rule "+best.Name+" allows paths "+strings.Join(best.Paths, ", ")+", not "+c.path+", for host "+c.host)
	}
}

// learnAllow turns a denial for want of a matching rule into an
// allowance under LearnRule: nothing injected, no private network.
func learnAllow(denied Decision, what string) Decision {
	d := denied
	d.Allow, d.Reason, d.Rule, d.Inject, d.AllowPrivate = true, Allowed, LearnRule, nil, false
	d.Explanation = fmt.Sprintf("%s is allowed by learn mode; without it: %s", what, denied.Explanation)
	return d
}

// DecideHost decides whether any request to scheme://host:port could be
// allowed, before method and path are known: the check a proxy makes on
// CONNECT, before it opens a tunnel. Every request inside the tunnel is
// still decided with Decide. A host is refused when no rule matches its
// scheme, host and port, or when a deny rule without methods or paths
// covers it. In learn mode, a host no rule matches is allowed under
// LearnRule; deny rules still refuse.
func (p *Policy) DecideHost(req Request) Decision {
	d, ok := start(req)
	d.hostOnly = true
	if !ok {
		return d
	}
	host := d.Host
	c := canonical{scheme: req.Scheme, host: host, port: d.Port}
	var buf [16]int
	for _, i := range p.denyIdx.candidates(host, buf[:]) {
		if r := p.deny[i]; len(r.Methods) == 0 && len(r.paths) == 0 && r.check(&c) == stageMatched {
			d.Rule = r.Name
			return d.denied(DeniedByRule, c.explain(" is refused by deny rule ", r.Name))
		}
	}
	best, bestStage := (*Rule)(nil), stageHost
	for _, i := range p.allowIdx.candidates(host, buf[:]) {
		r := p.rules[i]
		s := stageMatched
		switch {
		case r.Scheme != c.scheme:
			s = stageScheme
		case r.Port != c.port:
			s = stagePort
		}
		if s == stageMatched {
			d.Allow, d.Reason, d.Rule = true, Allowed, r.Name
			d.Explanation = c.explain(" may be reached under rule ", r.Name, "; each request is decided on its own")
			return d
		}
		if best == nil || s > bestStage {
			best, bestStage = r, s
		}
	}
	denied := missed(d, best, bestStage, &c)
	if p.learn {
		return learnAllow(denied, c.explain())
	}
	return denied
}

// allow decides a request that rule r matches: allowed with r's secrets,
// unless a secret's sealed binding refuses it. In learn mode nothing is
// injected; a request whose secret would be refused is allowed under
// LearnRule instead of r, so that a Learner never ties it to r's secrets.
func (p *Policy) allow(d Decision, r *Rule, c *canonical) Decision {
	d.Rule = r.Name
	var t time.Time
	if len(r.Inject) > 0 {
		t = p.clock()
		if !p.learn {
			d.Inject = make([]Injection, 0, len(r.Inject))
		}
	}
	for _, name := range r.Inject {
		s := p.secrets[name]
		if s == nil { // Parse refuses such a policy; never inject less than the rule says
			return d.deny(SecretNotBound, "rule %s injects secret %s, which the policy could not open", r.Name, name)
		}
		if err := s.Sealed.Permits(c.host, c.method, c.path, t); err != nil {
			d.once = true
			if p.learn {
				return learnAllow(d.deny(SecretNotBound, "rule %s matches, but %s", r.Name, bindingText(err)), c.explain())
			}
			d.Reason = SecretNotBound
			if errors.Is(err, sealing.ErrExpired) {
				d.Reason = SecretExpired
			}
			d.Inject = nil
			d.Explanation = fmt.Sprintf("rule %s matches, but %s", r.Name, bindingText(err))
			return d
		}
		if na := s.Sealed.NotAfter(); !na.IsZero() && (d.lasts.IsZero() || na.Before(d.lasts)) {
			d.lasts = na
		}
		if p.learn {
			continue
		}
		d.Inject = append(d.Inject, Injection{Name: name, Header: s.header, Fingerprint: s.fingerprint, Secret: s.Sealed})
	}
	d.Allow, d.Reason, d.AllowPrivate = true, Allowed, r.AllowPrivate
	d.Explanation = c.explain(" is allowed by rule ", r.Name)
	if p.learn && len(r.Inject) > 0 {
		d.Explanation += fmt.Sprintf("; learn mode injects nothing (the rule injects %s)", strings.Join(r.Inject, ", "))
	}
	return d
}

// bindingText returns a sealing permit error without its sentinel prefix.
func bindingText(err error) string {
	msg := err.Error()
	for _, e := range []error{sealing.ErrExpired, sealing.ErrHostNotBound, sealing.ErrMethodNotBound, sealing.ErrPathNotBound} {
		if errors.Is(err, e) {
			return strings.TrimPrefix(msg, e.Error()+": ")
		}
	}
	return msg
}

// Rule returns the allow or deny rule with the given name, or nil.
func (p *Policy) Rule(name string) *Rule {
	for _, rs := range [][]*Rule{p.rules, p.deny} {
		for _, r := range rs {
			if r.Name == name {
				return r
			}
		}
	}
	return nil
}

// clock returns the time to check secrets' expiry against.
func (p *Policy) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// appendTarget appends the request as a URL without query to b.
func (c *canonical) appendTarget(b []byte) []byte {
	b = append(b, c.scheme...)
	b = append(b, "://"...)
	if strings.Contains(c.host, ":") && !strings.HasPrefix(c.host, "[") {
		b = append(b, '[')
		b = append(b, c.host...)
		b = append(b, ']')
	} else {
		b = append(b, c.host...)
	}
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(c.port), 10)
	return append(b, c.path...)
}

// explain returns the request's method and target followed by after, the
// start of most explanations: "POST https://host:443/path" + after, or
// without the method before one is known (in DecideHost). It allocates
// only the result, since every decision has an explanation, allowed ones
// included.
func (c *canonical) explain(after ...string) string {
	var buf [256]byte
	b := buf[:0]
	if c.method != "" {
		b = append(b, c.method...)
		b = append(b, ' ')
	}
	b = c.appendTarget(b)
	for _, s := range after {
		b = append(b, s...)
	}
	return string(b)
}
