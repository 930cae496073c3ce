package policy

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokrun/tokrun/sealing"
)

func TestDecide(t *testing.T) {
	p := mustLoad(t, filepath.Join(policyDir, "good", "full.yaml"))
	type want struct {
		allow  bool
		reason Reason
		rule   string
		inject string // comma-separated secret names
	}
	tests := []struct {
		method, scheme, host string
		port                 int
		path                 string
		want                 want
	}{
		// Allowed, with normalisation of host and path.
		{"POST", "https", "api.openai.com", 0, "/v1/chat/completions", want{true, Allowed, "openai-chat", "openai"}},
		{"POST", "https", "API.OpenAI.com.", 443, "/v1/chat", want{true, Allowed, "openai-chat", "openai"}},
		{"GET", "https", "api.openai.com", 0, "/v1", want{true, Allowed, "openai-chat", "openai"}},
		{"GET", "https", "api.openai.com", 0, "/v1/a/./b/../c", want{true, Allowed, "openai-chat", "openai"}},
		{"GET", "https", "api.openai.com", 0, "/v1/%7Euser", want{true, Allowed, "openai-chat", "openai"}},
		{"GET", "https", "files.pythonhosted.org", 0, "/packages/x.whl", want{true, Allowed, "pypi-read", ""}},
		{"GET", "https", "a.b.c.pythonhosted.org", 0, "/", want{true, Allowed, "pypi-read", ""}},
		{"PUT", "https", "api.example.com", 8443, "/anything", want{true, Allowed, "example-api", "api"}},
		{"GET", "http", "127.0.0.1", 8080, "/", want{true, Allowed, "local-dev", ""}},
		{"GET", "http", "[::1]", 9000, "/", want{true, Allowed, "ipv6-dev", ""}},
		{"GET", "http", "0:0:0:0:0:0:0:1", 9000, "/", want{true, Allowed, "ipv6-dev", ""}},

		// Hosts that only look allowed.
		{"GET", "https", "api.openai.com.evil.net", 0, "/v1/x", want{false, HostNotAllowed, "", ""}},
		{"GET", "https", "evilapi.openai.com", 0, "/v1/x", want{false, HostNotAllowed, "", ""}},
		{"GET", "https", "pythonhosted.org", 0, "/", want{false, HostNotAllowed, "", ""}},
		{"GET", "https", "evilpythonhosted.org", 0, "/", want{false, HostNotAllowed, "", ""}},
		{"GET", "https", "files.pythonhosted.org.evil.net", 0, "/", want{false, HostNotAllowed, "", ""}},
		{"GET", "https", "127.1", 0, "/", want{false, InvalidHost, "", ""}},
		{"GET", "https", "api.openai.com%00", 0, "/", want{false, InvalidHost, "", ""}},
		{"GET", "https", "", 0, "/", want{false, InvalidHost, "", ""}},

		// Paths that try to slip past /v1/**.
		{"GET", "https", "api.openai.com", 0, "/v1/../admin", want{false, PathNotAllowed, "", ""}},
		{"GET", "https", "api.openai.com", 0, "/v1/%2e%2e/admin", want{false, PathNotAllowed, "", ""}},
		{"GET", "https", "api.openai.com", 0, "/v1/%2E%2E/%2E%2E/admin", want{false, PathNotAllowed, "", ""}},
		{"GET", "https", "api.openai.com", 0, "//admin", want{false, PathNotAllowed, "", ""}},
		{"GET", "https", "api.openai.com", 0, "/v10", want{false, PathNotAllowed, "", ""}},
		{"GET", "https", "api.openai.com", 0, "/V1/x", want{false, PathNotAllowed, "", ""}},
		{"GET", "https", "api.openai.com", 0, "/v1%2Fadmin", want{false, InvalidPath, "", ""}},
		{"GET", "https", "api.openai.com", 0, "/v1/..%2Fadmin", want{false, InvalidPath, "", ""}},
		{"GET", "https", "api.openai.com", 0, "/v1/..\\admin", want{false, InvalidPath, "", ""}},
		{"GET", "https", "api.openai.com", 0, "/v1/..;/admin", want{false, InvalidPath, "", ""}},
		{"GET", "https", "api.openai.com", 0, "/v1/%00", want{false, InvalidPath, "", ""}},
		{"GET", "https", "api.openai.com", 0, "/v1/x%0A", want{false, InvalidPath, "", ""}},
		{"GET", "https", "api.openai.com", 0, "/v1/x%09", want{false, InvalidPath, "", ""}},
		{"GET", "https", "api.openai.com", 0, "/v1/x%7F", want{false, InvalidPath, "", ""}},

		// Methods, ports, schemes.
		{"DELETE", "https", "api.openai.com", 0, "/v1/x", want{false, MethodNotAllowed, "", ""}},
		{"TRACE", "https", "api.openai.com", 0, "/v1/x", want{false, MethodNotAllowed, "", ""}},
		{"get", "https", "api.openai.com", 0, "/v1/x", want{false, MethodNotAllowed, "", ""}},
		{"GET", "https", "api.openai.com", 8443, "/v1/x", want{false, PortNotAllowed, "", ""}},
		{"GET", "http", "api.openai.com", 0, "/v1/x", want{false, SchemeNotAllowed, "", ""}},
		{"GET", "ftp", "api.openai.com", 0, "/v1/x", want{false, SchemeNotAllowed, "", ""}},
		{"GET", "https", "api.example.com", 443, "/", want{false, PortNotAllowed, "", ""}},
		{"GET", "https", "127.0.0.1", 8080, "/", want{false, SchemeNotAllowed, "", ""}},

		// Deny rules win over allows.
		{"GET", "https", "api.openai.com", 0, "/v1/files/abc", want{false, DeniedByRule, "no-files", ""}},
		{"GET", "https", "api.openai.com", 0, "/v1/files/../files/abc", want{false, DeniedByRule, "no-files", ""}},
		{"GET", "http", "api.openai.com", 80, "/v1/files", want{false, DeniedByRule, "no-files", ""}},
		{"DELETE", "https", "x.openai.azure.com", 0, "/openai/deployments/gpt/chat/completions", want{false, DeniedByRule, "no-delete", ""}},

		// The rule allows the request but the secret's sealed binding does
		// not: the openai secret is sealed for paths /v1/** and /models/*
		// only, so editing the policy cannot send it elsewhere.
		{"POST", "https", "my.openai.azure.com", 0, "/openai/deployments/gpt/chat/completions", want{false, SecretNotBound, "azure-openai", ""}},
	}
	for _, tt := range tests {
		d := p.Decide(Request{Scheme: tt.scheme, Host: tt.host, Port: tt.port, Method: tt.method, Path: tt.path})
		var inj []string
		for _, i := range d.Inject {
			inj = append(inj, i.Name)
		}
		got := want{d.Allow, d.Reason, d.Rule, strings.Join(inj, ",")}
		if got != tt.want {
			t.Errorf("%s %s://%s:%d%s\n got %+v\nwant %+v\n(%s)", tt.method, tt.scheme, tt.host, tt.port, tt.path, got, tt.want, d.Explanation)
		}
		if d.Explanation == "" {
			t.Errorf("%s %s: no explanation", tt.method, tt.path)
		}
	}
}

func TestDecideExpiredSecret(t *testing.T) {
	p := mustLoad(t, filepath.Join(policyDir, "good", "expired.yaml"))
	d := p.Decide(Request{Scheme: "https", Host: "api.example.com", Method: "GET", Path: "/"})
	if d.Allow || d.Reason != SecretExpired || d.Rule != "old-api" || len(d.Inject) != 0 {
		t.Fatalf("decision %+v", d)
	}
}

func TestDecisionFacts(t *testing.T) {
	p := mustLoad(t, filepath.Join(policyDir, "good", "full.yaml"))
	d := p.Decide(Request{Scheme: "https", Host: "API.OPENAI.COM.", Method: "POST", Path: "/v1/./chat//completions"})
	if d.Host != "api.openai.com" || d.Port != 443 || d.Path != "/v1/chat/completions" || d.Method != "POST" {
		t.Fatalf("canonical facts %+v", d)
	}
	if len(d.Inject) != 1 || d.Inject[0].Header != "Authorization" || d.Inject[0].Fingerprint != "fp:ea5d238a18ff8871" ||
		d.Inject[0].Secret.HeaderValue() != "Bearer sk-proj-vector-0002" {
		t.Fatalf("injection %+v", d.Inject)
	}
	d = p.Decide(Request{Scheme: "https", Host: "api.github.com", Method: "GET", Path: "/"})
	if d.Explanation != "no rule allows host api.github.com; add a rule with host: api.github.com" {
		t.Fatalf("explanation %q", d.Explanation)
	}
	d = p.Decide(Request{Scheme: "https", Host: "api.openai.com", Method: "DELETE", Path: "/v1/x"})
	if d.Explanation != "rule openai-chat allows methods GET, POST, not DELETE, for host api.openai.com" {
		t.Fatalf("explanation %q", d.Explanation)
	}
}

// With many rules, the decision is the first matching rule in file order,
// whether it matched by exact host or by wildcard.
func TestFirstMatchWins(t *testing.T) {
	src := "version: 1\nrules:\n" +
		"  - {name: wild, host: \"*.example.com\", methods: [GET]}\n" +
		"  - {name: exact, host: a.example.com}\n" +
		"  - {name: deeper, host: \"*.a.example.com\"}\n"
	p, err := Parse("first.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ host, method, rule string }{
		{"a.example.com", "GET", "wild"},
		{"a.example.com", "POST", "exact"},
		{"b.a.example.com", "GET", "wild"},
		{"b.a.example.com", "POST", "deeper"},
	} {
		d := p.Decide(Request{Scheme: "https", Host: tt.host, Method: tt.method, Path: "/"})
		if !d.Allow || d.Rule != tt.rule {
			t.Errorf("%s %s: %+v", tt.method, tt.host, d)
		}
	}
}

func TestDecideUnicodeAndIPv6Hosts(t *testing.T) {
	src := "version: 1\nrules:\n" +
		"  - {name: intl, host: bücher.example}\n" +
		"  - {name: wild-intl, host: \"*.müller.example\"}\n" +
		"  - {name: v6, host: \"2001:db8::1\", port: 8443}\n"
	p, err := Parse("intl.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		host string
		port int
		rule string
	}{
		{"bücher.example", 0, "intl"},
		{"BÜCHER.example.", 0, "intl"},
		{"xn--bcher-kva.example", 0, "intl"},
		{"XN--BCHER-KVA.EXAMPLE", 0, "intl"},
		{"a.b.xn--mller-kva.example", 0, "wild-intl"},
		{"shop.müller.example", 0, "wild-intl"},
		{"[2001:db8::1]", 8443, "v6"},
		{"2001:DB8:0:0:0:0:0:1", 8443, "v6"},
		{"bucher.example", 0, ""},
		{"müller.example", 0, ""},
		{"[2001:db8::1]", 443, ""},
	} {
		d := p.Decide(Request{Scheme: "https", Host: tt.host, Port: tt.port, Method: "GET", Path: "/"})
		if d.Allow != (tt.rule != "") || (tt.rule != "" && d.Rule != tt.rule) {
			t.Errorf("%s:%d: %+v", tt.host, tt.port, d)
		}
	}
}

func TestDecideHost(t *testing.T) {
	p := mustLoad(t, filepath.Join(policyDir, "good", "full.yaml"))
	src := "version: 1\nrules:\n  - {name: a, host: \"*.example.com\"}\ndeny:\n  - {name: blocked, host: bad.example.com}\n  - {name: partial, host: part.example.com, paths: [\"/x/**\"]}\n"
	q, err := Parse("host.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		p      *Policy
		scheme string
		host   string
		port   int
		reason Reason
	}{
		{p, "https", "api.openai.com", 443, Allowed},
		{p, "https", "API.OPENAI.COM.", 0, Allowed},
		{p, "https", "api.openai.com", 8443, PortNotAllowed},
		{p, "https", "api.github.com", 443, HostNotAllowed},
		{p, "https", "127.0.0.1", 8080, SchemeNotAllowed},
		{p, "https", "127.1", 443, InvalidHost},
		{q, "https", "x.example.com", 443, Allowed},
		{q, "https", "bad.example.com", 443, DeniedByRule},
		{q, "https", "part.example.com", 443, Allowed},
	} {
		d := tt.p.DecideHost(Request{Scheme: tt.scheme, Host: tt.host, Port: tt.port, Method: "CONNECT"})
		if d.Reason != tt.reason || d.Allow != (tt.reason == Allowed) || d.Explanation == "" {
			t.Errorf("%s:%d: %+v", tt.host, tt.port, d)
		}
	}
}

// Deny rules also match the spellings some servers fold together: case,
// ";" parameters and trailing dots in a segment.
func TestDenyMatchesLooseSpellings(t *testing.T) {
	p := mustLoad(t, filepath.Join(policyDir, "good", "full.yaml"))
	for _, path := range []string{"/v1/files/x", "/v1/FILES/x", "/V1/Files/x", "/v1/files;jsessionid=1/x", "/v1/files./x", "/v1/files.;a/x", "/v1/Files"} {
		d := p.Decide(Request{Scheme: "https", Host: "api.openai.com", Method: "GET", Path: path})
		if d.Allow || d.Rule != "no-files" {
			t.Errorf("%s: %+v", path, d)
		}
	}
	d := p.Decide(Request{Scheme: "https", Host: "api.openai.com", Method: "GET", Path: "/v1/filesystem"})
	if !d.Allow {
		t.Errorf("/v1/filesystem denied: %+v", d)
	}
}

// A deny path with an escape keeps matching loosely: the escape's hex
// digits stay upper case in the loose form.
func TestDenyLooseFormKeepsEscapes(t *testing.T) {
	src := "version: 1\nrules:\n  - {name: a, host: a.example.com}\ndeny:\n  - {name: d, host: a.example.com, paths: [\"/Files%20Dir/**\"]}\n"
	p, err := Parse("esc.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/Files%20Dir/x", "/files%20dir/x", "/FILES%20DIR;x=1/x"} {
		if d := p.Decide(Request{Scheme: "https", Host: "a.example.com", Method: "GET", Path: path}); d.Allow || d.Rule != "d" {
			t.Errorf("%s: %+v", path, d)
		}
	}
}

// A rule whose secret is not in the policy (Parse refuses that; this is
// the guard behind it) is denied, never answered with fewer injections.
func TestDecideMissingSecretDenies(t *testing.T) {
	p := mustLoad(t, filepath.Join(policyDir, "good", "full.yaml"))
	delete(p.secrets, "openai")
	d := p.Decide(Request{Scheme: "https", Host: "api.openai.com", Method: "POST", Path: "/v1/chat/completions"})
	if d.Allow || d.Reason != SecretNotBound || len(d.Inject) != 0 {
		t.Fatalf("decision %+v", d)
	}
}

// A trailing slash is one more spelling many servers route to the same
// handler (Express, Spring MVC 5, Rails, ASP.NET Core): a deny rule for
// an exact path refuses it too, with the other loose spellings.
func TestDenyMatchesTrailingSlash(t *testing.T) {
	src := `version: 1
rules:
  - {name: all, host: api.example.com}
deny:
  - {name: no-admin, host: api.example.com, paths: ["/v1/admin"]}
  - {name: no-delete, host: api.example.com, paths: ["/v1/users/*/delete"]}
  - {name: no-keys, host: api.example.com, paths: ["/v1/keys"]}
`
	p, err := Parse("p.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, rule string }{
		{"/v1/admin", "no-admin"},
		{"/v1/admin/", "no-admin"},
		{"/v1/admin/.", "no-admin"},
		{"/v1/admin//", "no-admin"},
		{"/v1/ADMIN/", "no-admin"},
		{"/v1/admin;x=1/", "no-admin"},
		{"/v1/;x/admin", "no-admin"}, // Tomcat, Spring: "/v1//admin", then "/v1/admin"
		{"/v1/;/admin;y/", "no-admin"},
		{"/v1/adm%C4%B1n", "no-admin"},            // dotless i: "I" to Java's equalsIgnoreCase
		{"/v1/u%C5%BFers/42/delete", "no-delete"}, // long s
		{"/v1/%E2%84%AAeys", "no-keys"},           // Kelvin sign
		{"/v1/users/42/delete/", "no-delete"},
	} {
		d := p.Decide(Request{Scheme: "https", Host: "api.example.com", Method: "POST", Path: tc.path})
		if d.Allow || d.Rule != tc.rule {
			t.Errorf("%s: allow=%v reason=%s rule=%q; want denied by %s", tc.path, d.Allow, d.Reason, d.Rule, tc.rule)
		}
	}
	for _, path := range []string{"/", "/v1/administrator/", "/v1/users/42/"} {
		if d := p.Decide(Request{Scheme: "https", Host: "api.example.com", Method: "POST", Path: path}); !d.Allow {
			t.Errorf("%s: denied by %s", path, d.Rule)
		}
	}
}

// The same in a policy, where wildcard rules are found through an index.
func TestWildcardRuleStopsAtNestedPublicSuffix(t *testing.T) {
	p, err := Parse("p.yaml", []byte("version: 1\nrules:\n  - {name: cloud, host: \"*.amazonaws.com\"}\n  - {name: blob, host: \"*.core.windows.net\"}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for host, allow := range map[string]bool{
		"attacker.execute-api.us-east-1.amazonaws.com": false,
		"attacker-bucket.s3.amazonaws.com":             false,
		"attacker.blob.core.windows.net":               false,
		"sts.amazonaws.com":                            true,
	} {
		if d := p.Decide(Request{Scheme: "https", Host: host, Method: "GET", Path: "/"}); d.Allow != allow {
			t.Errorf("%s: allow=%v (%s), want %v", host, d.Allow, d.Explanation, allow)
		}
	}
}

// A deny rule's wildcard is not narrowed: it refuses at least what it
// says, hosts under nested public suffixes included, in learn mode too.
func TestDenyWildcardCoversNestedPublicSuffix(t *testing.T) {
	const doc = `version: 1
rules:
  - name: api
    host: abc.execute-api.us-east-1.amazonaws.com
deny:
  - name: no-aws
    host: "*.amazonaws.com"
`
	for _, learn := range []bool{false, true} {
		p, err := Parse("p.yaml", []byte(doc), Options{Learn: learn})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"abc.execute-api.us-east-1.amazonaws.com", "attacker.execute-api.us-east-1.amazonaws.com", "x.s3.amazonaws.com"} {
			if d := p.Decide(Request{Scheme: "https", Host: h, Port: 443, Method: "GET", Path: "/"}); d.Allow || d.Rule != "no-aws" {
				t.Errorf("learn=%v: %s: allow=%v rule %s (%s); want denied by no-aws", learn, h, d.Allow, d.Rule, d.Reason)
			}
		}
		if d := p.DecideHost(Request{Scheme: "https", Host: "x.s3.amazonaws.com", Port: 443}); d.Allow {
			t.Errorf("learn=%v: DecideHost allowed x.s3.amazonaws.com", learn)
		}
	}
}

// IIS ignores the spaces that end a segment as it ignores dots: deny
// rules refuse those spellings too.
func TestDenyMatchesTrailingSpaces(t *testing.T) {
	p, err := Parse("p.yaml", []byte("version: 1\nrules:\n  - {name: all, host: api.example.com}\ndeny:\n  - {name: no-admin, host: api.example.com, paths: [\"/v1/admin\"]}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/admin%20", "/v1/admin.%20", "/v1/admin%20.", "/v1/ADMIN%20%20/"} {
		if d := p.Decide(Request{Scheme: "https", Host: "api.example.com", Method: "GET", Path: path}); d.Allow || d.Rule != "no-admin" {
			t.Errorf("%s: allow=%v rule %q", path, d.Allow, d.Rule)
		}
	}
	if d := p.Decide(Request{Scheme: "https", Host: "api.example.com", Method: "GET", Path: "/v1/admin%20x"}); !d.Allow {
		t.Errorf("/v1/admin%%20x denied by %s", d.Rule)
	}
}

// A decision holds while Decide would return it again for the same
// request: for ever without secrets or with secrets that never expire,
// until the first secret checked expires, and never for a refusal of a
// secret (in learn mode too).
func TestDecisionHolds(t *testing.T) {
	expiry := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) // expired.yaml's secret
	now := expiry.Add(-time.Hour)
	opts := testOptions(t)
	opts.Now = func() time.Time { return now }
	p, err := Load(filepath.Join(policyDir, "good", "expired.yaml"), opts)
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Scheme: "https", Host: "api.example.com", Method: "GET", Path: "/"}
	d := p.Decide(req)
	if !d.Allow || len(d.Inject) != 1 {
		t.Fatalf("before the expiry: %+v", d)
	}
	for _, tt := range []struct {
		at   time.Time
		want bool
	}{{expiry.Add(-time.Minute), true}, {expiry, true}, {expiry.Add(time.Nanosecond), false}} {
		now = tt.at
		if got := p.Holds(&d); got != tt.want {
			t.Errorf("at %s: Holds %v, want %v", tt.at, got, tt.want)
		}
		if again := p.Decide(req); again.Allow != tt.want {
			t.Errorf("at %s: Decide allows: %v; Holds must agree", tt.at, again.Allow)
		}
	}
	refused := p.Decide(req)
	if refused.Reason != SecretExpired || p.Holds(&refused) {
		t.Errorf("an expired secret's refusal: %+v, holds %v", refused, p.Holds(&refused))
	}
	opts.Learn = true
	lp, err := Load(filepath.Join(policyDir, "good", "expired.yaml"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if d := lp.Decide(req); d.Rule != LearnRule || lp.Holds(&d) {
		t.Errorf("learn mode, an expired secret: %+v, holds %v", d, lp.Holds(&d))
	}

	full := mustLoad(t, filepath.Join(policyDir, "good", "full.yaml"))
	for _, r := range []Request{
		{Scheme: "https", Host: "api.openai.com", Method: "POST", Path: "/v1/chat/completions"}, // a secret without expiry
		{Scheme: "https", Host: "api.github.com", Method: "GET", Path: "/"},                     // denied, no secret checked
	} {
		if d := full.Decide(r); !full.Holds(&d) {
			t.Errorf("%+v: %+v does not hold", r, d)
		}
	}
}

// A decision holds until the earliest expiry of the secrets it checked,
// whatever their order in the rule: the later-expiring secret listed first
// must not stretch the earlier one's life.
func TestDecisionHoldsUntilTheEarliestExpiry(t *testing.T) {
	keys := testKeys(t)
	soon, later := testNow.Add(time.Hour), testNow.Add(48*time.Hour)
	seal := func(name, header string, notAfter time.Time) string {
		tok, err := sealing.Seal(rand.Reader, keys.PublicKeys()[0], sealing.Binding{
			Name: name, Hosts: []string{"api.example.com"}, Header: header, Format: "{}", NotAfter: notAfter,
		}, "value-of-"+name, testNow.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	text := fmt.Sprintf(`version: 1
secrets:
  later:
    sealed: %s
  soon:
    sealed: %s
rules:
  - name: both
    host: api.example.com
    inject: [later, soon]
`, seal("later", "X-Later", later), seal("soon", "X-Soon", soon))
	now := testNow
	p, err := Parse("p.yaml", []byte(text), Options{Keys: keys, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide(Request{Scheme: "https", Host: "api.example.com", Method: "GET", Path: "/"})
	if !d.Allow || len(d.Inject) != 2 {
		t.Fatalf("decision %+v", d)
	}
	now = soon.Add(time.Second)
	if p.Holds(&d) {
		t.Error("the decision holds after the sooner secret expired")
	}
}
