package examples

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokrun/tokrun/policy"
	"github.com/tokrun/tokrun/sealing"
)

func loadTestKey(t *testing.T) *sealing.KeyRing {
	t.Helper()
	ring, err := sealing.LoadKeyFile(testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func examplePolicies(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("policies/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example policies: %v", err)
	}
	return files
}

// TestPoliciesCheck runs `tokproxy policy check` on every example policy,
// as a user would, with the test key.
func TestPoliciesCheck(t *testing.T) {
	for _, f := range examplePolicies(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			stdout, stderr, err := tokproxy(t, "policy", "check", f, "--key", testKey)
			if err != nil {
				t.Fatalf("tokproxy policy check %s: %v\n%s", f, err, stderr)
			}
			if !strings.Contains(stdout, ": ok: ") {
				t.Errorf("stdout = %q, want an ok summary", stdout)
			}
			if stderr != "" {
				t.Errorf("warnings on stderr: %s", stderr)
			}
		})
	}
}

// TestPoliciesSealedPlaceholders checks that every checked-in sealed file
// is used by a policy, opens with the test key, carries the name of its
// file and an obviously fake value: a real secret sealed to the public
// test key would be readable by anyone.
func TestPoliciesSealedPlaceholders(t *testing.T) {
	ring := loadTestKey(t)
	used := map[string]bool{}
	for _, f := range examplePolicies(t) {
		p, err := policy.Load(f, policy.Options{Keys: ring})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, s := range p.Secrets() {
			used[s.Name+".sealed"] = true
		}
	}
	sealed, err := filepath.Glob("policies/*.sealed")
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 {
		t.Fatal("no sealed files")
	}
	for _, f := range sealed {
		name := strings.TrimSuffix(filepath.Base(f), ".sealed")
		if !used[name+".sealed"] {
			t.Errorf("%s: no example policy has a secret named %q", f, name)
		}
		token, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ring.Open(strings.TrimSpace(string(token)), name)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if s.Name() != name {
			t.Errorf("%s: sealed name %q, want %q", f, s.Name(), name)
		}
		v := s.Reveal()
		if dec, err := base64.StdEncoding.DecodeString(v); err == nil {
			v = string(dec) // the github-git value is base64 for Basic auth
		}
		if !strings.Contains(v, "not-a-real") && !strings.Contains(v, "not_a_real") {
			t.Errorf("%s: the value sealed to the public test key does not look fake (fingerprint %s)", f, s.Fingerprint())
		}
	}
	for f := range used {
		if _, err := os.Stat(filepath.Join("policies", f)); err != nil {
			t.Errorf("policy secret without a checked-in %s", f)
		}
	}
}

type decideCase struct {
	method, host, path string
	allow              bool
	reason             policy.Reason // checked when not empty
	rule               string        // checked when not empty
	inject             []string      // secrets injected, when allowed
	header             string        // the first injection's header, when not empty
}

func TestPoliciesDecide(t *testing.T) {
	const (
		repo   = "/repos/example-org/example-repo"
		gitURL = "/example-org/example-repo.git"
	)
	tests := map[string][]decideCase{
		"openai.yaml": {
			{method: "POST", host: "api.openai.com", path: "/v1/chat/completions", allow: true, rule: "openai", inject: []string{"openai"}, header: "Authorization"},
			{method: "GET", host: "API.OpenAI.com.", path: "/v1/models", allow: true, inject: []string{"openai"}},
			{method: "DELETE", host: "api.openai.com", path: "/v1/files/file-abc", allow: true, inject: []string{"openai"}},
			{method: "PUT", host: "api.openai.com", path: "/v1/files", reason: policy.MethodNotAllowed},
			{method: "GET", host: "api.openai.com", path: "/v1/organization/admin_api_keys", reason: policy.DeniedByRule, rule: "openai-no-admin"},
			{method: "GET", host: "api.openai.com", path: "/v1/../dashboard", reason: policy.PathNotAllowed},
			{method: "GET", host: "api.openai.com", path: "/v1/%2e%2e/dashboard", reason: policy.PathNotAllowed},
			{method: "POST", host: "api.openai.com.evil.net", path: "/v1/chat/completions", reason: policy.HostNotAllowed},
			{method: "POST", host: "evil.example", path: "/v1/chat/completions", reason: policy.HostNotAllowed},
		},
		"anthropic.yaml": {
			{method: "POST", host: "api.anthropic.com", path: "/v1/messages", allow: true, rule: "anthropic-messages", inject: []string{"anthropic"}, header: "X-Api-Key"},
			{method: "POST", host: "api.anthropic.com", path: "/v1/messages/count_tokens", allow: true, inject: []string{"anthropic"}},
			{method: "GET", host: "api.anthropic.com", path: "/v1/messages/batches/msgbatch_01", allow: true, rule: "anthropic-batches", inject: []string{"anthropic"}},
			{method: "GET", host: "api.anthropic.com", path: "/v1/models", allow: true, rule: "anthropic-models", inject: []string{"anthropic"}},
			{method: "GET", host: "api.anthropic.com", path: "/v1/messages"},
			{method: "POST", host: "api.anthropic.com", path: "/v1/complete", reason: policy.PathNotAllowed},
			{method: "POST", host: "api.anthropic.com", path: "/v1/organizations/api_keys", reason: policy.PathNotAllowed},
			{method: "POST", host: "console.anthropic.com", path: "/v1/messages", reason: policy.HostNotAllowed},
		},
		"github.yaml": {
			{method: "GET", host: "api.github.com", path: repo + "/issues", allow: true, rule: "github-api-read", inject: []string{"github"}, header: "Authorization"},
			{method: "GET", host: "api.github.com", path: repo, allow: true, inject: []string{"github"}},
			{method: "HEAD", host: "api.github.com", path: repo + "/contents/README.md", allow: true, inject: []string{"github"}},
			{method: "POST", host: "api.github.com", path: repo + "/issues", reason: policy.MethodNotAllowed},
			{method: "DELETE", host: "api.github.com", path: repo, reason: policy.MethodNotAllowed},
			{method: "PATCH", host: "api.github.com", path: repo + "/pulls/1", reason: policy.MethodNotAllowed},
			{method: "GET", host: "api.github.com", path: "/repos/example-org/other-repo/issues", reason: policy.PathNotAllowed},
			{method: "GET", host: "api.github.com", path: "/repos/example-org/example-repo-fork/issues", reason: policy.PathNotAllowed},
			{method: "GET", host: "api.github.com", path: repo + "/../other-repo/issues", reason: policy.PathNotAllowed},
			{method: "GET", host: "api.github.com", path: "/user/repos", reason: policy.PathNotAllowed},
			// git clone and fetch, with and without .git.
			{method: "GET", host: "github.com", path: gitURL + "/info/refs", allow: true, rule: "github-git-refs", inject: []string{"github-git"}, header: "Authorization"},
			{method: "GET", host: "github.com", path: "/example-org/example-repo/info/refs", allow: true, inject: []string{"github-git"}},
			{method: "POST", host: "github.com", path: gitURL + "/git-upload-pack", allow: true, rule: "github-git-fetch", inject: []string{"github-git"}},
			{method: "POST", host: "github.com", path: "/example-org/example-repo/git-upload-pack", allow: true, inject: []string{"github-git"}},
			// git push is refused.
			{method: "POST", host: "github.com", path: gitURL + "/git-receive-pack", reason: policy.DeniedByRule, rule: "github-no-push"},
			{method: "POST", host: "github.com", path: "/example-org/example-repo/git-receive-pack", reason: policy.DeniedByRule, rule: "github-no-push"},
			{method: "POST", host: "github.com", path: "/example-org/other-repo.git/git-upload-pack", reason: policy.PathNotAllowed},
			{method: "GET", host: "github.com", path: "/example-org/other-repo.git/info/refs", reason: policy.PathNotAllowed},
			{method: "GET", host: "github.com", path: "/login", reason: policy.PathNotAllowed},
			{method: "GET", host: "gist.github.com", path: gitURL + "/info/refs", reason: policy.HostNotAllowed},
			{method: "GET", host: "raw.githubusercontent.com", path: "/example-org/example-repo/main/README.md", reason: policy.HostNotAllowed},
		},
		"stripe.yaml": {
			{method: "POST", host: "api.stripe.com", path: "/v1/payment_intents", allow: true, rule: "stripe", inject: []string{"stripe"}, header: "Authorization"},
			{method: "GET", host: "api.stripe.com", path: "/v1/customers/cus_123", allow: true, inject: []string{"stripe"}},
			{method: "GET", host: "api.stripe.com", path: "/v1/payouts", allow: true, inject: []string{"stripe"}},
			{method: "POST", host: "api.stripe.com", path: "/v1/payouts", reason: policy.DeniedByRule, rule: "stripe-no-money-out"},
			{method: "POST", host: "api.stripe.com", path: "/v1/transfers/tr_123/reversals", reason: policy.DeniedByRule, rule: "stripe-no-money-out"},
			{method: "PUT", host: "api.stripe.com", path: "/v1/customers", reason: policy.MethodNotAllowed},
			{method: "GET", host: "dashboard.stripe.com", path: "/v1/customers", reason: policy.HostNotAllowed},
		},
		"pypi.yaml": {
			{method: "GET", host: "pypi.org", path: "/simple/requests/", allow: true, rule: "pypi-index"},
			{method: "HEAD", host: "pypi.org", path: "/simple/", allow: true, rule: "pypi-index"},
			{method: "GET", host: "files.pythonhosted.org", path: "/packages/f9/9b/335f9764261e915ed497fcdeb11df5dfd6f7bf257d4a6a2a686d80da4d54/requests-2.32.3-py3-none-any.whl", allow: true, rule: "pypi-files"},
			{method: "POST", host: "pypi.org", path: "/simple/requests/", reason: policy.MethodNotAllowed},
			{method: "GET", host: "pypi.org", path: "/pypi/requests/json", reason: policy.PathNotAllowed},
			{method: "POST", host: "upload.pypi.org", path: "/legacy/", reason: policy.HostNotAllowed},
			{method: "GET", host: "test.pypi.org", path: "/simple/requests/", reason: policy.HostNotAllowed},
		},
	}
	ring := loadTestKey(t)
	for _, f := range examplePolicies(t) {
		name := filepath.Base(f)
		cases, ok := tests[name]
		if !ok {
			t.Errorf("%s: no decision tests for this example policy", f)
			continue
		}
		t.Run(name, func(t *testing.T) {
			p, err := policy.Load(f, policy.Options{Keys: ring})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range cases {
				d := p.Decide(policy.Request{Scheme: "https", Host: tc.host, Method: tc.method, Path: tc.path})
				where := tc.method + " https://" + tc.host + tc.path
				if d.Allow != tc.allow {
					t.Errorf("%s: allow = %v (%s: %s), want %v", where, d.Allow, d.Reason, d.Explanation, tc.allow)
					continue
				}
				if tc.reason != "" && d.Reason != tc.reason {
					t.Errorf("%s: reason = %s, want %s (%s)", where, d.Reason, tc.reason, d.Explanation)
				}
				if tc.rule != "" && d.Rule != tc.rule {
					t.Errorf("%s: rule = %q, want %q", where, d.Rule, tc.rule)
				}
				var got []string
				for _, in := range d.Inject {
					got = append(got, in.Name)
				}
				if !slices.Equal(got, tc.inject) {
					t.Errorf("%s: injects %q, want %q", where, got, tc.inject)
				}
				if tc.header != "" && (len(d.Inject) == 0 || d.Inject[0].Header != tc.header) {
					t.Errorf("%s: injections %+v, want header %s", where, d.Inject, tc.header)
				}
			}
			// Plain http is never allowed by these policies.
			for _, r := range p.Rules() {
				d := p.Decide(policy.Request{Scheme: "http", Host: strings.TrimPrefix(r.Host, "*."), Method: "GET", Path: "/"})
				if d.Allow {
					t.Errorf("http://%s/ allowed by rule %s", r.Host, d.Rule)
				}
			}
		})
	}
}
