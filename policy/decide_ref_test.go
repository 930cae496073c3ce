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

// This file keeps Decide and DecideHost as they were written before they
// were made fast: plain, allocating, and easy to check by eye. Rules are
// found by scanning every rule instead of the host index. The
// differential tests in decide_equiv_test.go require the real functions
// to return exactly what these return, explanations included. Hosts and
// paths are normalised by package match, whose own tests hold its
// shortcuts to its general paths.

func refStart(req Request) (Decision, bool) {
	d := Decision{Scheme: req.Scheme, Host: req.Host, Port: req.Port, Method: req.Method, Path: req.Path}
	if req.Scheme != "https" && req.Scheme != "http" {
		return d.refDeny(SchemeNotAllowed, "scheme %q is never allowed; only https and http", req.Scheme), false
	}
	if d.Port == 0 {
		d.Port = defaultPort(req.Scheme)
	}
	host, err := match.NormalizeHost(req.Host)
	if err != nil {
		return d.refDeny(InvalidHost, "host %q is not a valid host name or IP address", req.Host), false
	}
	d.Host = host
	return d, true
}

func (d Decision) refDeny(r Reason, format string, args ...any) Decision {
	d.Allow, d.Reason, d.Explanation = false, r, fmt.Sprintf(format, args...)
	return d
}

func (p *Policy) refDecide(req Request) Decision {
	d, ok := refStart(req)
	if !ok {
		return d
	}
	path, err := match.NormalizePath(req.Path)
	if err != nil {
		return d.refDeny(InvalidPath, "path refused: %s; send it without encoded slashes, backslashes or control characters", strings.TrimPrefix(err.Error(), match.ErrPath.Error()+": "))
	}
	d.Path = path
	method, err := match.ParseMethod(req.Method)
	if err != nil {
		return d.refDeny(MethodNotAllowed, "method %q is never allowed; allowed methods are %s", req.Method, strings.Join(match.Methods(), ", "))
	}
	d.Method = method
	host := d.Host
	c := canonical{scheme: req.Scheme, host: host, method: method, path: path, port: d.Port}

	loose := refLoosePath(path)
	for _, r := range p.deny {
		if refDenyHost(r, host) && r.refDenies(&c, loose) {
			d.Rule = r.Name
			return d.refDeny(DeniedByRule, "%s %s is refused by deny rule %s", method, refTarget(&c), r.Name)
		}
	}
	best, bestStage := (*Rule)(nil), stageHost
	for _, r := range p.rules {
		if !r.host.Match(host) {
			continue
		}
		s := r.refCheck(&c)
		if s == stageMatched {
			return p.refAllow(d, r, &c)
		}
		if best == nil || s > bestStage {
			best, bestStage = r, s
		}
	}
	denied := refMissed(d, best, bestStage, &c)
	if p.learn {
		return refLearnAllow(denied, method+" "+refTarget(&c))
	}
	return denied
}

func refMissed(d Decision, best *Rule, stage stage, c *canonical) Decision {
	switch {
	case best == nil:
		return d.refDeny(HostNotAllowed, "no rule allows host %s; add a rule with host: %s", c.host, c.host)
	case stage == stageScheme:
		return d.refDeny(SchemeNotAllowed, "rule %s allows %s, not %s, for host %s", best.Name, best.Scheme, c.scheme, c.host)
	case stage == stagePort:
		return d.refDeny(PortNotAllowed, "rule %s allows port %d, not %d, for host %s", best.Name, best.Port, c.port, c.host)
	case stage == stageMethod:
		return d.refDeny(MethodNotAllowed, "rule %s allows methods %s, not %s, for host %s", best.Name, strings.Join(best.Methods, ", "), c.method, c.host)
	default:
		return d.refDeny(PathNotAllowed, "rule %s allows paths %s, not %s, for host %s", best.Name, strings.Join(best.Paths, ", "), c.path, c.host)
	}
}

func refLearnAllow(denied Decision, what string) Decision {
	d := denied
	d.Allow, d.Reason, d.Rule, d.Inject, d.AllowPrivate = true, Allowed, LearnRule, nil, false
	d.Explanation = fmt.Sprintf("%s is allowed by learn mode; without it: %s", what, denied.Explanation)
	return d
}

func (p *Policy) refDecideHost(req Request) Decision {
	d, ok := refStart(req)
	d.hostOnly = true
	if !ok {
		return d
	}
	host := d.Host
	c := canonical{scheme: req.Scheme, host: host, port: d.Port}
	for _, r := range p.deny {
		if refDenyHost(r, host) && len(r.Methods) == 0 && len(r.paths) == 0 && r.refCheck(&c) == stageMatched {
			d.Rule = r.Name
			return d.refDeny(DeniedByRule, "%s is refused by deny rule %s", refTarget(&c), r.Name)
		}
	}
	best, bestStage := (*Rule)(nil), stageHost
	for _, r := range p.rules {
		if !r.host.Match(host) {
			continue
		}
		s := stageMatched
		switch {
		case r.Scheme != c.scheme:
			s = stageScheme
		case r.Port != c.port:
			s = stagePort
		}
		if s == stageMatched {
			d.Allow, d.Reason, d.Rule = true, Allowed, r.Name
			d.Explanation = fmt.Sprintf("%s may be reached under rule %s; each request is decided on its own", refTarget(&c), r.Name)
			return d
		}
		if best == nil || s > bestStage {
			best, bestStage = r, s
		}
	}
	denied := refMissed(d, best, bestStage, &c)
	if p.learn {
		return refLearnAllow(denied, refTarget(&c))
	}
	return denied
}

func (p *Policy) refAllow(d Decision, r *Rule, c *canonical) Decision {
	d.Rule = r.Name
	now := time.Now
	if p.now != nil {
		now = p.now
	}
	t := now()
	for _, name := range r.Inject {
		s := p.secrets[name]
		if err := s.Sealed.Permits(c.host, c.method, c.path, t); err != nil {
			if p.learn {
				return refLearnAllow(d.refDeny(SecretNotBound, "rule %s matches, but %s", r.Name, bindingText(err)), c.method+" "+refTarget(c))
			}
			d.Reason = SecretNotBound
			if errors.Is(err, sealing.ErrExpired) {
				d.Reason = SecretExpired
			}
			d.Inject = nil
			d.Explanation = fmt.Sprintf("rule %s matches, but %s", r.Name, bindingText(err))
			return d
		}
		if p.learn {
			continue
		}
		b := s.Sealed.Binding()
		d.Inject = append(d.Inject, Injection{Name: name, Header: b.Header, Fingerprint: s.Sealed.Fingerprint(), Secret: s.Sealed})
	}
	d.Allow, d.Reason, d.AllowPrivate = true, Allowed, r.AllowPrivate
	d.Explanation = fmt.Sprintf("%s %s is allowed by rule %s", c.method, refTarget(c), r.Name)
	if p.learn && len(r.Inject) > 0 {
		d.Explanation += fmt.Sprintf("; learn mode injects nothing (the rule injects %s)", strings.Join(r.Inject, ", "))
	}
	return d
}

func refTarget(c *canonical) string {
	h := c.host
	if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
		h = "[" + h + "]"
	}
	return c.scheme + "://" + h + ":" + strconv.Itoa(c.port) + c.path
}

func refLoosePath(p string) string {
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		if j := strings.IndexByte(seg, ';'); j >= 0 {
			seg = seg[:j]
		}
		for seg != "." && seg != ".." {
			t := strings.TrimSuffix(strings.TrimRight(seg, "."), "%20")
			if t == seg {
				break
			}
			seg = t
		}
		seg = strings.ReplaceAll(seg, "%C4%B1", "i")
		seg = strings.ReplaceAll(seg, "%C5%BF", "s")
		seg = strings.ReplaceAll(seg, "%E2%84%AA", "k")
		segs[i] = refLowerKeepEscapes(seg)
	}
	out := strings.Join(segs, "/")
	for strings.Contains(out, "//") {
		out = strings.ReplaceAll(out, "//", "/")
	}
	if out = strings.TrimRight(out, "/"); out != "" {
		return out
	}
	return "/"
}

func refLowerKeepEscapes(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '%':
			i += 2
		case b[i] >= 'A' && b[i] <= 'Z':
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}

func (r *Rule) refDenies(c *canonical, loose string) bool {
	if r.refCheck(c) == stageMatched {
		return true
	}
	if len(r.loosePaths) == 0 {
		return false
	}
	lc := *c
	lc.path = loose
	cp := *r
	cp.paths = r.loosePaths
	return cp.refCheck(&lc) == stageMatched
}

func (r *Rule) refCheck(req *canonical) stage {
	if r.Scheme != "" && r.Scheme != req.scheme {
		return stageScheme
	}
	if r.Port != 0 && r.Port != req.port {
		return stagePort
	}
	if len(r.Methods) > 0 && !slices.Contains(r.Methods, req.method) {
		return stageMethod
	}
	if len(r.paths) > 0 && !slices.ContainsFunc(r.paths, func(g match.PathGlob) bool { return g.Match(req.path) }) {
		return stagePath
	}
	return stageMatched
}

// refDenyHost matches a deny rule's host: its wildcard is not narrowed at
// nested public suffixes, as an allow rule's is.
func refDenyHost(r *Rule, h string) bool {
	if suf, ok := strings.CutPrefix(r.host.String(), "*"); ok {
		return len(h) > len(suf) && strings.HasSuffix(h, suf)
	}
	return r.host.Match(h)
}
