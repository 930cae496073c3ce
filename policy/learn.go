package policy

import (
	"strings"
	"sync"

	"github.com/tokrun/tokrun/internal/match"
)

// A Learner records the requests a policy allowed and writes a policy
// that allows them and nothing more than it needs to, for a person to
// review. It is the second half of learn mode (see Options.Learn): run a
// command under a learn-mode policy, pass every decision to Observe, then
// call WritePolicy.
//
// A Learner keeps only public facts of allowed requests: scheme,
// canonical host, port, method, the normalised path with identifiers
// already generalised (see WritePolicy), whether private addresses were
// allowed, and the rule that allowed them. It never keeps a query string,
// a header or a secret. Its memory is bounded: past 4096 destinations
// further ones are counted but not recorded, and past 1024 paths for one
// destination further paths are recorded only by their first segment.
//
// A Learner is safe for concurrent use.
type Learner struct {
	mu      sync.Mutex
	groups  map[learnKey]*learnGroup
	dropped int      // requests to destinations past maxLearnGroups
	redact  []string // more placeholders never to write (see Redact)
}

// Redact adds strings that WritePolicy never writes into a rule, as it
// never writes the policy's own secrets and placeholders: the per-run
// placeholders tokrun hands the command, say.
func (l *Learner) Redact(s ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range s {
		if x != "" {
			l.redact = append(l.redact, x)
		}
	}
}

// Bounds on what a Learner keeps, so that a command that sends requests
// to endless hosts or paths cannot exhaust memory.
const (
	maxLearnGroups = 4096
	maxLearnPaths  = 1024
)

// learnKey is one destination and the rule that allowed requests to it.
type learnKey struct {
	scheme, host string
	port         int
	rule         string
}

type learnGroup struct {
	methods  map[string]bool
	paths    map[string]bool // generalised paths
	requests int
	private  bool
}

// NewLearner returns a Learner that has observed nothing.
func NewLearner() *Learner {
	return &Learner{groups: map[learnKey]*learnGroup{}}
}

// Observe records d if it allowed a request. Denials are ignored, and so
// are decisions of DecideHost, which have no method and path: every
// request in a tunnel is decided, and observed, on its own. Facts that do
// not parse as a canonical request are ignored too, so Observe cannot be
// made to write something Parse would refuse.
func (l *Learner) Observe(d Decision) {
	if !d.Allow || d.hostOnly || (d.Scheme != "https" && d.Scheme != "http") || d.Port < 1 || d.Port > 65535 {
		return
	}
	host, err := match.NormalizeHost(d.Host)
	if err != nil {
		return
	}
	method, err := match.ParseMethod(d.Method)
	if err != nil {
		return
	}
	path, err := match.NormalizePath(d.Path)
	if err != nil {
		return
	}
	path = generalisePath(path)

	l.mu.Lock()
	defer l.mu.Unlock()
	k := learnKey{scheme: d.Scheme, host: host, port: d.Port, rule: d.Rule}
	g := l.groups[k]
	if g == nil {
		if len(l.groups) >= maxLearnGroups {
			l.dropped++
			return
		}
		g = &learnGroup{methods: map[string]bool{}, paths: map[string]bool{}}
		l.groups[k] = g
	}
	g.requests++
	g.methods[method] = true
	g.private = g.private || d.AllowPrivate
	if !g.paths[path] && len(g.paths) >= maxLearnPaths {
		path = prefixGlob(strings.Split(path[1:], "/"), 1)
	}
	g.paths[path] = true
}
