package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokrun/tokrun/internal/match"
)

// The loader never panics, and any policy it accepts decides requests for
// its own rules' hosts without panicking.
func FuzzLoad(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(policyDir, "*", "*.yaml"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	opts := testOptions(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(filepath.Join(policyDir, "good", "fuzz.yaml"), data, opts)
		if err != nil {
			if len(err.(Errors)) == 0 {
				t.Fatal("error without problems")
			}
			return
		}
		for _, r := range p.Rules() {
			d := p.Decide(Request{Scheme: r.Scheme, Host: r.Host, Port: r.Port, Method: "GET", Path: "/"})
			if d.Reason == "" || d.Explanation == "" {
				t.Fatalf("decision without reason: %+v", d)
			}
		}
	})
}

// A request a rule allows stays allowed, by the same rule, when its
// already-normalised path is decided again; and a denial never carries
// injections.
func FuzzDecidePath(f *testing.F) {
	for _, s := range []string{"/v1/chat", "/v1/../admin", "/v1/%2e%2e/admin", "//v1/x", "/v1/files/%2e%2e/x", "/v1/a%2fb", "/models/x", "/v1/%7e"} {
		f.Add("api.openai.com", s)
	}
	f.Add("my.openai.azure.com", "/openai/deployments/x/chat/completions")
	p := mustLoad(f, filepath.Join(policyDir, "good", "full.yaml"))
	f.Fuzz(func(t *testing.T, host, path string) {
		d := p.Decide(Request{Scheme: "https", Host: host, Method: "POST", Path: path})
		if !d.Allow {
			if len(d.Inject) != 0 {
				t.Fatalf("denied decision carries injections: %+v", d)
			}
			return
		}
		// What was decided is the normalised path: no dot segments, in
		// any spelling, and no empty ones but a trailing slash.
		segs := strings.Split(d.Path, "/")
		for i, seg := range segs {
			switch strings.ToLower(seg) {
			case ".", "..", "%2e", "%2e%2e", ".%2e", "%2e.":
				t.Fatalf("allowed %q by %s as %q, which has a dot segment", path, d.Rule, d.Path)
			case "":
				if i != 0 && i != len(segs)-1 {
					t.Fatalf("allowed %q by %s as %q, which has an empty segment", path, d.Rule, d.Path)
				}
			}
		}
		if n, err := match.NormalizePath(d.Path); err != nil || n != d.Path {
			t.Fatalf("allowed %q by %s as %q, which normalises to %q (%v)", path, d.Rule, d.Path, n, err)
		}
		again := p.Decide(Request{Scheme: "https", Host: d.Host, Method: "POST", Path: d.Path})
		if !again.Allow || again.Rule != d.Rule || again.Path != d.Path || again.Host != d.Host {
			t.Fatalf("allowed %q %q by %s, but its canonical form %q %q is not: %+v", host, path, d.Rule, d.Host, d.Path, again)
		}
	})
}

// A learned path is a valid glob that matches the path it came from, and
// keeps nothing after an encoded "?" or "#".
func FuzzGeneralisePath(f *testing.F) {
	for _, s := range []string{"/", "/v1/users/123", "/a?b=c", "/a%3Fb/c", "/x/**/y", "/a*b/", "/t/aB3dE5gH7jK9mN1pQ3sT", "/%23/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := match.NormalizePath(raw)
		if err != nil {
			return
		}
		gp := generalisePath(p)
		g, err := match.ParsePathGlob(gp)
		if err != nil {
			t.Fatalf("%q generalised to %q, not a glob: %v", p, gp, err)
		}
		if !g.Match(p) {
			t.Fatalf("%q generalised to %q, which does not match it", p, gp)
		}
		if strings.Contains(gp, "%3F") || strings.Contains(gp, "%23") {
			t.Fatalf("%q generalised to %q, keeping a query or fragment", p, gp)
		}
		for _, lp := range learnedPaths([]string{gp, "/other"}) {
			if g, err := match.ParsePathGlob(lp); err == nil && g.Match(p) {
				return
			}
		}
		t.Fatalf("learned paths for %q do not match it", p)
	})
}
