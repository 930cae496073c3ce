package policy

import (
	"path/filepath"
	"strings"
	"testing"
)

func learnOptions(t testing.TB) Options {
	opts := testOptions(t)
	opts.Learn = true
	return opts
}

// In learn mode deny rules and allow rules decide first; what no rule
// allows is allowed under LearnRule; nothing is ever injected; the
// private-network guard is lifted only by a file rule that lifts it; and
// malformed requests are still denied.
func TestLearnModeDecide(t *testing.T) {
	p, err := Load(filepath.Join(policyDir, "good", "full.yaml"), learnOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Learning() || mustLoad(t, filepath.Join(policyDir, "good", "full.yaml")).Learning() {
		t.Fatal("Learning() does not follow Options.Learn")
	}
	tests := []struct {
		method, scheme, host string
		port                 int
		path                 string
		allow                bool
		reason               Reason
		rule                 string
		private              bool
	}{
		// File rules match first, but inject nothing.
		{"POST", "https", "api.openai.com", 0, "/v1/chat", true, Allowed, "openai-chat", false},
		{"PUT", "https", "api.example.com", 8443, "/x", true, Allowed, "example-api", false},
		{"GET", "https", "files.pythonhosted.org", 0, "/p", true, Allowed, "pypi-read", false},
		{"GET", "http", "127.0.0.1", 8080, "/", true, Allowed, "local-dev", true},
		{"GET", "http", "[::1]", 9000, "/", true, Allowed, "ipv6-dev", true},
		// What no rule allows is allowed under "learn", never private.
		{"GET", "https", "api.github.com", 0, "/repos", true, Allowed, LearnRule, false},
		{"DELETE", "https", "api.openai.com", 0, "/v1/x", true, Allowed, LearnRule, false},
		{"GET", "https", "api.openai.com", 0, "/admin", true, Allowed, LearnRule, false},
		{"GET", "https", "api.openai.com", 8443, "/v1/x", true, Allowed, LearnRule, false},
		{"GET", "http", "api.openai.com", 0, "/v1/x", true, Allowed, LearnRule, false},
		{"GET", "https", "127.0.0.1", 8080, "/", true, Allowed, LearnRule, false},
		{"GET", "http", "127.0.0.1", 8081, "/", true, Allowed, LearnRule, false},
		{"GET", "http", "10.0.0.1", 80, "/", true, Allowed, LearnRule, false},
		// A rule matches but its secret's binding refuses the request: in
		// learn mode it is allowed under "learn", not the rule.
		{"POST", "https", "my.openai.azure.com", 0, "/openai/deployments/gpt/chat/completions", true, Allowed, LearnRule, false},
		// Deny rules and malformed requests are still denied.
		{"GET", "https", "api.openai.com", 0, "/v1/files/x", false, DeniedByRule, "no-files", false},
		{"DELETE", "https", "x.openai.azure.com", 0, "/", false, DeniedByRule, "no-delete", false},
		{"GET", "ftp", "api.github.com", 0, "/", false, SchemeNotAllowed, "", false},
		{"GET", "https", "127.1", 0, "/", false, InvalidHost, "", false},
		{"GET", "https", "api.github.com", 0, "/a%2fb", false, InvalidPath, "", false},
		{"GET", "https", "api.github.com", 0, "relative", false, InvalidPath, "", false},
		{"TRACE", "https", "api.github.com", 0, "/", false, MethodNotAllowed, "", false},
		{"CONNECT", "https", "api.github.com", 0, "/", false, MethodNotAllowed, "", false},
	}
	for _, tt := range tests {
		d := p.Decide(Request{Scheme: tt.scheme, Host: tt.host, Port: tt.port, Method: tt.method, Path: tt.path})
		if d.Allow != tt.allow || d.Reason != tt.reason || d.Rule != tt.rule || d.AllowPrivate != tt.private || len(d.Inject) != 0 || d.Explanation == "" {
			t.Errorf("%s %s://%s:%d%s: %+v", tt.method, tt.scheme, tt.host, tt.port, tt.path, d)
		}
	}
	d := p.Decide(Request{Scheme: "https", Host: "api.openai.com", Method: "POST", Path: "/v1/chat"})
	if !strings.Contains(d.Explanation, "learn mode injects nothing (the rule injects openai)") {
		t.Errorf("explanation %q", d.Explanation)
	}
	d = p.Decide(Request{Scheme: "https", Host: "api.github.com", Method: "GET", Path: "/"})
	if d.Explanation != "GET https://api.github.com:443/ is allowed by learn mode; without it: no rule allows host api.github.com; add a rule with host: api.github.com" {
		t.Errorf("explanation %q", d.Explanation)
	}
}

// DecideHost agrees with Decide in learn mode: any host is reachable
// unless a host-wide deny rule refuses it.
func TestLearnModeDecideHost(t *testing.T) {
	src := "version: 1\nrules:\n  - {name: a, host: a.example.com, unsafe_allow_private_network: true}\n" +
		"deny:\n  - {name: blocked, host: bad.example.com}\n  - {name: partial, host: part.example.com, paths: [\"/x/**\"]}\n"
	p, err := Parse("host.yaml", []byte(src), learnOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		scheme, host string
		port         int
		reason       Reason
		rule         string
	}{
		{"https", "a.example.com", 443, Allowed, "a"},
		{"https", "a.example.com", 8443, Allowed, LearnRule},
		{"http", "a.example.com", 80, Allowed, LearnRule},
		{"https", "other.example", 443, Allowed, LearnRule},
		{"https", "part.example.com", 443, Allowed, LearnRule},
		{"https", "bad.example.com", 443, DeniedByRule, "blocked"},
		{"http", "bad.example.com", 8080, DeniedByRule, "blocked"},
		{"https", "127.1", 443, InvalidHost, ""},
		{"gopher", "a.example.com", 443, SchemeNotAllowed, ""},
	} {
		d := p.DecideHost(Request{Scheme: tt.scheme, Host: tt.host, Port: tt.port, Method: "CONNECT"})
		if d.Reason != tt.reason || d.Allow != (tt.reason == Allowed) || d.Rule != tt.rule || d.AllowPrivate || d.Explanation == "" {
			t.Errorf("%s://%s:%d: %+v", tt.scheme, tt.host, tt.port, d)
		}
	}
}

// Learn mode works without a policy file, reserves the rule name
// "learn", and changes the policy's hash.
func TestLearnModeLoading(t *testing.T) {
	p, err := Parse("(no policy)", []byte("version: 1\n"), Options{Learn: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(Request{Scheme: "https", Host: "example.com", Method: "GET", Path: "/"}); !d.Allow || d.Rule != LearnRule {
		t.Errorf("%+v", d)
	}
	q, err := Parse("(no policy)", []byte("version: 1\n"), Options{Allow: []string{"example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Hash() == q.Hash() {
		t.Error("learn mode does not change the hash")
	}
	src := "version: 1\nrules:\n  - {name: learn, host: a.example.com}\n"
	if _, err := Parse("r.yaml", []byte(src), Options{}); err != nil {
		t.Errorf("outside learn mode: %v", err)
	}
	_, err = Parse("r.yaml", []byte(src), Options{Learn: true})
	if err == nil || err.Error() != `r.yaml:3: rules[0].name: the rule name "learn" is reserved in learn mode for requests no rule allows` {
		t.Errorf("in learn mode: %v", err)
	}
}
