package policy

import (
	"slices"

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
	if len(r.paths) > 0 && !slices.ContainsFunc(r.paths, func(g match.PathGlob) bool { return g.Match(req.path) }) {
		return stagePath
	}
	return stageMatched
}
