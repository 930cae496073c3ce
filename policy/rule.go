package policy

import (
	"slices"
	"strings"

	"github.com/tokrun/tokrun/internal/match"
)

// Rule is one allow or deny rule, in canonical form.
type Rule struct {
	// Name is unique across allow and deny rules.
	Name string
	// Line is where the rule starts in the policy file.
	Line int
	// Host is an exact canonical host or a "*.suffix" wildcard.
	Host string
	// Scheme is "https" or "http". For deny rules, "" means any scheme.
	Scheme string
	// Port is the destination port. For allow rules it defaults to the
	// scheme's port (443, 80); for deny rules 0 means any port.
	Port int
	// Methods, if not empty, limits the methods; otherwise any method in
	// GET HEAD POST PUT PATCH DELETE OPTIONS.
	Methods []string
	// Paths, if not empty, limits the normalised path to these globs.
	Paths []string
	// Inject names the secrets injected into requests this rule allows.
	Inject []string
	// AllowPrivate permits destinations that resolve to private, loopback,
	// link-local or metadata addresses. Off by default; it weakens the
	// proxy's SSRF guard for this rule only.
	AllowPrivate bool

	host  match.HostPattern
	paths []match.PathGlob
	// loosePaths, for deny rules, are the paths in loose form (see
	// loosePath), matched against the request's loose path as well.
	loosePaths []match.PathGlob
}

// loosePath folds the spellings that some servers treat as the same path:
// case (Express, ASP.NET; with the three non-ASCII letters that Java's and
// .NET's case-insensitive comparisons take for ASCII ones: dotless i, long
// s and the Kelvin sign), ";" parameters (Tomcat, Jetty) and trailing dots
// and spaces (IIS) in each segment, the empty segments these leave (Tomcat
// and Spring collapse "//"), and a trailing slash (Express, Spring, Rails,
// ASP.NET route "/x/" to "/x"). Deny rules match it too, so "/v1/ADMIN",
// "/v1/admin;x=y", "/v1/;x/admin", "/v1/admin." and "/v1/admin/" cannot
// slip past a deny of "/v1/admin".
func loosePath(p string) string {
	if isLoose(p) {
		return p
	}
	segs := strings.Split(p, "/")
	out := segs[:1] // "" before the leading "/"
	for _, seg := range segs[1:] {
		if j := strings.IndexByte(seg, ';'); j >= 0 {
			seg = seg[:j]
		}
		if seg != "." && seg != ".." {
			seg = trimDotsAndSpaces(seg)
		}
		if seg != "" {
			out = append(out, lowerKeepEscapes(foldLookalikes.Replace(seg)))
		}
	}
	if len(out) == 1 {
		return "/"
	}
	return strings.Join(out, "/")
}

// foldLookalikes maps the non-ASCII letters that case-insensitive
// comparisons in Java and .NET equate with ASCII letters ("ı" and "I",
// "ſ" and "S", the Kelvin sign and "K"), as normalised paths escape them.
var foldLookalikes = strings.NewReplacer("%C4%B1", "i", "%C5%BF", "s", "%E2%84%AA", "k")

// trimDotsAndSpaces removes the dots and spaces (%20) that end a
// segment: IIS ignores both.
func trimDotsAndSpaces(seg string) string {
	for seg != "." && seg != ".." {
		t := strings.TrimSuffix(strings.TrimRight(seg, "."), "%20")
		if t == seg {
			break
		}
		seg = t
	}
	return seg
}

// isLoose reports whether loosePath would return p unchanged because it
// has nothing to fold: no upper-case letter (escapes included), no ";", no
// segment ending in "." or "%20" and no trailing slash.
// TestLoosePathMatchesReference checks it.
func isLoose(p string) bool {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		end := i+1 == len(p) || p[i+1] == '/'
		switch c := p[i]; {
		case c >= 'A' && c <= 'Z', c == ';':
			return false
		case c == '.' && end:
			return false
		case c == '0' && end && i >= 2 && p[i-2:i] == "%2":
			return false
		}
	}
	return true
}

// lowerKeepEscapes lowercases s except the hex digits of %XX escapes,
// which normalised paths keep in upper case.
func lowerKeepEscapes(s string) string {
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

// denies reports whether deny rule r matches the request, in its exact
// or loose form.
func (r *Rule) denies(c *canonical, loose string) bool {
	s := r.check(c)
	if s == stageMatched {
		return true
	}
	// Only the path can match loosely where it did not exactly.
	return s == stagePath && len(r.loosePaths) > 0 && matchAny(r.loosePaths, loose)
}

// stage is how far a request got through a rule's conditions; it picks
// the most useful reason when no rule matches.
type stage int

const (
	stageHost stage = iota
	stageScheme
	stagePort
	stageMethod
	stagePath
	stageMatched
)

// check reports how far req gets through r. The host has already been
// matched through the index.
func (r *Rule) check(req *canonical) stage {
	if r.Scheme != "" && r.Scheme != req.scheme {
		return stageScheme
	}
	if r.Port != 0 && r.Port != req.port {
		return stagePort
	}
	if len(r.Methods) > 0 && !slices.Contains(r.Methods, req.method) {
		return stageMethod
	}
	if len(r.paths) > 0 && !matchAny(r.paths, req.path) {
		return stagePath
	}
	return stageMatched
}

// matchAny reports whether any of globs matches the normalised path p.
func matchAny(globs []match.PathGlob, p string) bool {
	return slices.ContainsFunc(globs, func(g match.PathGlob) bool { return g.Match(p) })
}
