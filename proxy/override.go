package proxy

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tokrun/tokrun/internal/match"
	"github.com/tokrun/tokrun/policy"
)

// methodOverrideHeaders are headers with which many APIs (Google's among
// them) let a POST act as another method.
var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// pathOverrideHeaders are headers from which some servers take the path
// instead of the request line: IIS's URL Rewrite, and frameworks that
// trust it (Symfony before 5, Zend).
var pathOverrideHeaders = []string{"X-Original-Url", "X-Rewrite-Url"}

// methodOverrideParam is the query parameter with which many frameworks
// (Laravel and Symfony, Spring, Express's method-override) let a POST act
// as another method.
const methodOverrideParam = "_method"

// maxOverrides bounds the distinct methods and paths a request's
// overrides may name: every pair of them is decided.
const maxOverrides = 4

// override is a method or path that a header or parameter asks the
// upstream to act on instead of the request's own.
type override struct {
	via    string // the header, or "the query parameter _method"
	method string // upper case; or
	path   string // as sent, query cut off
}

// checkOverrides refuses an allowed request whose method-override headers
// or parameter, or path-override headers, name a method or path (or a
// pair of them) that the same rule would not allow: the upstream would
// act on those, not on what was decided. An empty value is no override
// (no server overrides with one).
func checkOverrides(pol *policy.Policy, r *http.Request, t target, rawPath string, d policy.Decision) policy.Decision {
	var buf [maxOverrides + 1]override
	ovs := buf[:0]
	add := func(o override) bool {
		if o.method == d.Method && o.path == "" || o.path == rawPath && o.method == "" ||
			slices.ContainsFunc(ovs, func(x override) bool { return x.method == o.method && x.path == o.path }) {
			return true
		}
		ovs = append(ovs, o)
		return len(ovs) <= maxOverrides
	}
	addHeader := func(name string, vs []string, path bool) bool {
		for _, v := range vs {
			v = strings.TrimSpace(v)
			switch {
			case v == "":
			case path && !add(override{via: name, path: overridePath(v)}):
				return false
			case !path && !add(override{via: name, method: strings.ToUpper(v)}):
				return false
			}
		}
		return true
	}
	ok := true
	for _, h := range methodOverrideHeaders {
		ok = ok && addHeader(h, r.Header[h], false)
	}
	for _, h := range pathOverrideHeaders {
		ok = ok && addHeader(h, r.Header[h], true)
	}
	// Spelled with "_" or "." (X_HTTP_METHOD_OVERRIDE, X.HTTP.Method.Override),
	// which CGI-style servers (PHP, Rack) read as the same header; Go keeps
	// such a name as sent.
	for name, vs := range r.Header {
		canon, cgi := cgiSpelling(name)
		if !ok || !cgi {
			continue
		}
		switch {
		case slices.Contains(methodOverrideHeaders, canon):
			ok = addHeader(name, vs, false)
		case slices.Contains(pathOverrideHeaders, canon):
			ok = addHeader(name, vs, true)
		}
	}
	for _, v := range queryOverrides(r.URL.RawQuery) {
		if m := strings.ToUpper(strings.TrimSpace(v)); ok && m != "" {
			ok = add(override{via: "the query parameter " + methodOverrideParam, method: m})
		}
	}
	if !ok {
		return refuseOverride(d, ReasonBadRequest, "the request names more than "+strconv.Itoa(maxOverrides)+" methods and paths to override its own with; send the request it means instead")
	}
	if len(ovs) == 0 {
		return d
	}
	// Every method it may be read as, with every path.
	methods := []override{{method: d.Method}}
	paths := []override{{path: rawPath}}
	for _, o := range ovs {
		if o.path != "" {
			paths = append(paths, o)
		} else {
			methods = append(methods, o)
		}
	}
	for _, m := range methods {
		for _, p := range paths {
			if m.via == "" && p.via == "" {
				continue // the request itself, decided
			}
			od := pol.Decide(policy.Request{Scheme: t.scheme, Host: t.host, Port: t.port, Method: m.method, Path: p.path})
			if od.Allow && od.Rule == d.Rule {
				continue
			}
			reason := od.Reason
			if od.Allow {
				reason = policy.PathNotAllowed
				if p.via == "" {
					reason = policy.MethodNotAllowed
				}
			}
			var asks string
			switch {
			case p.via == "":
				asks = m.via + " asks the upstream for " + quoteShort(m.method)
			case m.via == "":
				asks = p.via + " asks the upstream for the path " + quoteShort(p.path)
			default:
				asks = m.via + " and " + p.via + " ask the upstream for " + quoteShort(m.method) + " on " + quoteShort(p.path)
			}
			return refuseOverride(d, reason, asks+", which rule "+d.Rule+" does not allow; send that request itself if a rule allows it")
		}
	}
	return d
}

// refuseOverride turns the allowing decision d into a refusal.
func refuseOverride(d policy.Decision, reason policy.Reason, why string) policy.Decision {
	d.Allow, d.Inject, d.AllowPrivate = false, nil, false
	d.Reason, d.Explanation = reason, why
	return d
}

// quoteShort quotes at most 24 bytes of a value a client sent.
func quoteShort(v string) string {
	if len(v) > 24 {
		v = v[:24] + "..."
	}
	return strconv.Quote(v)
}

// overridePath is the path a path-override header names: the value up
// to its query, or the path of an absolute URL with a host. Anything else
// (an opaque URL such as "http:admin", a fragment) is returned as it is,
// for the policy to refuse as an invalid path.
func overridePath(v string) string {
	if !strings.HasPrefix(v, "/") {
		u, err := url.Parse(v)
		if err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "" {
			return v
		}
		if v = u.EscapedPath(); v == "" {
			return "/"
		}
		if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			// The path alone, as the request line's would be.
			return v
		}
	}
	if i := strings.IndexByte(v, '?'); i >= 0 {
		v = v[:i]
	}
	return v
}

// queryOverrides returns the values of the method-override parameter in
// a raw query, with "&" and ";" both taken as separators (as older
// frameworks do). Names and values are decoded leniently, as PHP and
// Express do (an invalid escape stays as it is), and names then as PHP
// registers them (see phpName).
func queryOverrides(raw string) []string {
	if !strings.Contains(raw, "method") && !strings.Contains(raw, "%") {
		return nil // the name cannot be there, not even encoded
	}
	var out []string
	for rest := raw; rest != ""; {
		pair := rest
		if i := strings.IndexAny(rest, "&;"); i >= 0 {
			pair, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		k, v, _ := strings.Cut(pair, "=")
		if phpName(match.LenientUnescape(k)) == methodOverrideParam {
			out = append(out, match.LenientUnescape(v))
		}
	}
	return out
}

// phpName is a parameter name as PHP registers it (Laravel and Symfony
// read PHP's): cut at a NUL byte, leading spaces dropped, and spaces and
// dots made underscores. Other frameworks use names as they are decoded,
// and no name is _method to them that is not _method here too.
func phpName(name string) string {
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return strings.Map(func(c rune) rune {
		if c == ' ' || c == '.' {
			return '_'
		}
		return c
	}, strings.TrimLeft(name, " "))
}
