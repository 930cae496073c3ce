package policy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestGeneralisePath(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/", "/"},
		{"/v1/chat/completions", "/v1/chat/completions"},
		{"/v1/", "/v1/"},
		{"/users/12345/repos", "/users/*/repos"},
		{"/items/0", "/items/*"},
		{"/o/3f2504e0-4f89-11d3-9a0c-0305e82c3301/x", "/o/*/x"},
		{"/o/3F2504E0-4F89-11D3-9A0C-0305E82C3301", "/o/*"},
		{"/o/3f2504e0-4f89-11d3-9a0c-0305e82c330", "/o/*"}, // 35 chars: not a UUID, but a token
		{"/blob/0123456789abcdef", "/blob/*"},
		{"/blob/0123456789abcde", "/blob/0123456789abcde"},
		{"/blob/deadbeefdeadbeefdead", "/blob/*"},
		{"/t/aB3dE5gH7jK9mN1pQ3sT", "/t/*"},
		{"/t/sess_aB3dE5gH7jK9mN1pQ3sT/x", "/t/*/x"},
		{"/t/aB3dE5gH7jK9mN1pQ3s", "/t/aB3dE5gH7jK9mN1pQ3s"}, // 19 chars
		{"/docs/getting-started-with-the-api", "/docs/getting-started-with-the-api"},
		{"/api/v2/chat_completions_stream", "/api/v2/chat_completions_stream"},
		{"/v1.2/x", "/v1.2/x"},
		{"/files/report-2024.pdf", "/files/report-2024.pdf"},
		{"/search%3Fq=secret&token=abc", "/search*"},
		{"/search%3Fq=a/b/c", "/search*/**"},
		{"/42%3Fq=a", "/*"},
		{"/page%23frag", "/page*"},
		{"/a/**/b", "/a/*/b"},
		{"/a/x**y", "/a/*"},
		{"/a/x*y", "/a/x*y"},
	} {
		if got := generalisePath(tt.in); got != tt.want {
			t.Errorf("generalisePath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLearnedPaths(t *testing.T) {
	many := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s/n%c%c", prefix, 'a'+i/26, 'a'+i%26))
		}
		return out
	}
	for _, tt := range []struct {
		name string
		in   []string
		want string
	}{
		{"sorted and merged", []string{"/b", "/a", "/b", "/a/*"}, "/a /a/* /b"},
		{"covered by **", []string{"/a/b", "/a/**", "/a", "/c", "/a/*/x"}, "/a/** /a/*/x /c"},
		{"twenty stay", many("/v1/things", 20), strings.Join(many("/v1/things", 20), " ")},
		{"twenty-one collapse", many("/v1/things", 21), "/v1/things/**"},
		{"two prefixes", append(many("/v1/a", 15), many("/v1/b", 15)...), "/v1/a/** /v1/b/**"},
		{"keep short exact", append(many("/v1/a", 25), "/health", "/v1"), "/health /v1 /v1/a/**"},
		{"to the root", append(many("/a", 11), many("/b", 11)...), "/a/** /b/**"},
	} {
		if got := strings.Join(learnedPaths(tt.in), " "); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	var roots []string
	for i := range 25 {
		roots = append(roots, fmt.Sprintf("/r%c", 'a'+i))
	}
	if got := learnedPaths(roots); len(got) != 1 || got[0] != "/**" {
		t.Errorf("25 top-level paths: %q", got)
	}
}

func TestScrubPath(t *testing.T) {
	needles := []string{"sk-proj-vector-0002", "k/slash", "sp ace"}
	for _, tt := range []struct{ in, want string }{
		{"/v1/x", "/v1/x"},
		{"/bot-sk-proj-vector-0002/send", "/*/send"},
		{"/sk-proj-vector-0002", "/*"},
		{"/a/k/slash/b", "/a/*/*/b"},
		{"/a/sp%20ace", "/a/*"},
	} {
		if got := scrubPath(tt.in, needles); got != tt.want {
			t.Errorf("scrubPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// learnRun is a run's worth of requests against full.yaml: some allowed by
// its rules (with and without secrets), some only by learn mode, some
// denied.
var learnRun = []Request{
	{"https", "api.openai.com", 0, "POST", "/v1/chat/completions"},
	{"https", "API.OpenAI.com.", 443, "POST", "/v1/./chat//completions"},
	{"https", "api.openai.com", 0, "GET", "/v1/models/gpt-4o"},
	{"https", "api.openai.com", 0, "GET", "/v1/threads/3f2504e0-4f89-11d3-9a0c-0305e82c3301/messages"},
	{"https", "api.openai.com", 0, "DELETE", "/v1/threads/0123456789abcdef0123"},
	{"https", "api.openai.com", 0, "GET", "/v1/files/abc"}, // denied by no-files
	{"https", "api.example.com", 8443, "PUT", "/items/17"},
	{"https", "api.example.com", 8443, "PATCH", "/items/18"},
	{"https", "files.pythonhosted.org", 0, "GET", "/packages/ab/cd/x-1.0.whl"},
	{"https", "api.github.com", 0, "GET", "/repos/tokrun/tokrun/issues/42"},
	{"https", "api.github.com", 0, "GET", "/repos/tokrun/tokrun/issues/43"},
	{"https", "api.github.com", 0, "HEAD", "/rate_limit"},
	{"https", "my.openai.azure.com", 0, "POST", "/openai/deployments/gpt/chat/completions"}, // rule matches, binding refuses
	{"http", "127.0.0.1", 8080, "GET", "/health"},
	{"http", "[::1]", 9000, "OPTIONS", "/"},
	{"http", "10.1.2.3", 8081, "GET", "/metrics"},
	{"https", "[2001:db8::5]", 8443, "GET", "/x"},
	{"https", "true", 0, "GET", "/"},
	{"https", "ftp.example.com", 0, "BREW", "/pot"}, // malformed: denied
}

// learnFull observes learnRun against full.yaml in learn mode and returns
// the base policy, the allowed requests and the written policy.
func learnFull(t *testing.T) (*Policy, []Request, []byte) {
	t.Helper()
	base, err := Load(filepath.Join(policyDir, "good", "full.yaml"), learnOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	l := NewLearner()
	var allowed []Request
	for _, r := range learnRun {
		d := base.Decide(r)
		l.Observe(d)
		l.Observe(base.DecideHost(r)) // ignored: no method and path
		if d.Allow {
			allowed = append(allowed, r)
		}
	}
	var out bytes.Buffer
	if err := l.WritePolicy(&out, base); err != nil {
		t.Fatal(err)
	}
	return base, allowed, out.Bytes()
}

// The written policy, loaded without learn mode, allows every observed
// request, with the secrets the base policy would inject, and denies
// requests that were not observed.
func TestLearnerRoundTrip(t *testing.T) {
	_, allowed, out := learnFull(t)
	if len(allowed) != len(learnRun)-2 {
		t.Fatalf("%d of %d requests allowed in learn mode", len(allowed), len(learnRun))
	}
	normal := mustLoad(t, filepath.Join(policyDir, "good", "full.yaml"))
	learned, err := Parse(filepath.Join(policyDir, "good", "learned.yaml"), out, testOptions(t))
	if err != nil {
		t.Fatalf("written policy does not load:\n%v\n%s", err, out)
	}
	if learned.Learning() {
		t.Fatal("written policy loaded in learn mode")
	}
	names := func(d Decision) string {
		var s []string
		for _, i := range d.Inject {
			s = append(s, i.Name)
		}
		return strings.Join(s, ",")
	}
	for _, r := range allowed {
		d := learned.Decide(r)
		if !d.Allow {
			t.Errorf("observed %s %s://%s%s denied: %s", r.Method, r.Scheme, r.Host, r.Path, d.Explanation)
			continue
		}
		if want := normal.Decide(r); want.Allow && names(d) != names(want) {
			t.Errorf("%s %s%s injects %q, base policy %q", r.Method, r.Host, r.Path, names(d), names(want))
		} else if !want.Allow && len(d.Inject) != 0 {
			t.Errorf("%s %s%s injects %q; base policy denies it", r.Method, r.Host, r.Path, names(d))
		}
		if h := learned.DecideHost(r); !h.Allow {
			t.Errorf("CONNECT %s: %s", r.Host, h.Explanation)
		}
	}
	for _, r := range []Request{
		{"https", "api.openai.com", 0, "PUT", "/v1/chat/completions"},                     // method not observed
		{"https", "api.openai.com", 0, "POST", "/v1/embeddings"},                          // path not observed
		{"https", "api.openai.com", 0, "GET", "/v1/files/abc"},                            // denied in the run
		{"https", "api.github.com", 0, "GET", "/repos/tokrun/tokrun/pulls/42"},            // path not observed
		{"https", "api.github.com", 0, "POST", "/repos/tokrun/tokrun/issues/42"},          // method not observed
		{"https", "uploads.github.com", 0, "GET", "/repos/tokrun/tokrun/issues/42"},       // host not observed
		{"http", "api.github.com", 0, "GET", "/rate_limit"},                               // scheme not observed
		{"https", "api.github.com", 8443, "GET", "/rate_limit"},                           // port not observed
		{"https", "my.openai.azure.com", 0, "POST", "/openai/deployments/gpt/embeddings"}, // path not observed
		{"https", "other.pythonhosted.org", 0, "GET", "/packages/ab/cd/x-1.0.whl"},        // wildcard not kept
	} {
		if d := learned.Decide(r); d.Allow {
			t.Errorf("unobserved %s %s://%s:%d%s allowed by %s", r.Method, r.Scheme, r.Host, r.Port, r.Path, d.Rule)
		}
	}
	// Private addresses stay reachable only where the base policy's rule
	// allowed them.
	for _, tt := range []struct {
		host    string
		port    int
		private bool
	}{{"127.0.0.1", 8080, true}, {"::1", 9000, true}, {"10.1.2.3", 8081, false}} {
		path := "/"
		if tt.port != 9000 {
			path = map[int]string{8080: "/health", 8081: "/metrics"}[tt.port]
		}
		method := "GET"
		if tt.port == 9000 {
			method = "OPTIONS"
		}
		d := learned.Decide(Request{Scheme: "http", Host: tt.host, Port: tt.port, Method: method, Path: path})
		if !d.Allow || d.AllowPrivate != tt.private {
			t.Errorf("%s:%d: %+v", tt.host, tt.port, d)
		}
	}
}

// Without a base policy, the written policy has no secrets and no deny
// rules, and still allows exactly what was observed.
func TestLearnerWithoutBase(t *testing.T) {
	p, err := Parse("(no policy)", []byte("version: 1\n"), Options{Learn: true})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLearner()
	reqs := []Request{
		{"https", "api.github.com", 0, "GET", "/users/1"},
		{"https", "bücher.example", 0, "GET", "/"},
		{"https", "null", 0, "GET", "/"},
		{"https", strings.Repeat("a", 60) + ".example.com", 0, "GET", "/"},
		{"https", strings.Repeat("a", 60) + ".example.net", 0, "GET", "/"},
	}
	for _, r := range reqs {
		l.Observe(p.Decide(r))
	}
	var out bytes.Buffer
	if err := l.WritePolicy(&out, nil); err != nil {
		t.Fatal(err)
	}
	learned, err := Parse("learned.yaml", out.Bytes(), Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(learned.Secrets()) != 0 || len(learned.DenyRules()) != 0 || len(learned.Rules()) != len(reqs) {
		t.Fatalf("written policy:\n%s", out.String())
	}
	for _, r := range reqs {
		if d := learned.Decide(r); !d.Allow {
			t.Errorf("%s: %s", r.Host, d.Explanation)
		}
	}
	if d := learned.Decide(Request{"https", "api.github.com", 0, "GET", "/users/1/repos"}); d.Allow {
		t.Errorf("unobserved path allowed")
	}

	// Nothing observed: a valid policy that denies everything.
	out.Reset()
	if err := NewLearner().WritePolicy(&out, nil); err != nil {
		t.Fatal(err)
	}
	empty, err := Parse("empty.yaml", out.Bytes(), Options{})
	if err != nil || len(empty.Rules()) != 0 || !strings.Contains(out.String(), "# Observed: nothing") {
		t.Fatalf("%v\n%s", err, out.String())
	}
}

// The written policy for learnRun matches testdata/policy/learn/full.golden
// byte for byte; run with -update to rewrite it.
func TestLearnerGolden(t *testing.T) {
	_, _, out := learnFull(t)
	golden := filepath.Join(policyDir, "learn", "full.golden")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("written policy differs from %s\n--- got\n%s", golden, out)
	}
	_, _, again := learnFull(t)
	if !bytes.Equal(out, again) {
		t.Error("output is not deterministic")
	}
}

// No secret value, placeholder or query string reaches a rule, wherever
// the request carried it.
func TestLearnerNeverWritesSecrets(t *testing.T) {
	base, err := Load(filepath.Join(policyDir, "good", "full.yaml"), learnOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	l := NewLearner()
	l.Redact("tokrun_placeholder_run0001") // one of tokrun's per-run placeholders
	for _, r := range []Request{
		{"https", "api.github.com", 0, "GET", "/check/key=tokrun_placeholder_run0001/x"},
		{"https", "api.github.com", 0, "GET", "/bot-sk-proj-vector-0002/send"},
		{"https", "api.github.com", 0, "GET", "/k/k-minimal-0001"},
		{"https", "api.github.com", 0, "GET", "/ph/sk-tokrun-placeholder-openai"},
		{"https", "api.github.com", 0, "GET", "/q?token=query-value-xyz"},
		{"https", "api.github.com", 0, "GET", "/q2%3Ftoken=query-value-xyz/more"},
		{"https", "api.github.com", 0, "GET", "/f#frag-value-xyz"},
	} {
		l.Observe(base.Decide(r))
	}
	// Decisions built by hand, with a query left in the path.
	l.Observe(Decision{Allow: true, Scheme: "https", Host: "api.github.com", Port: 443, Method: "GET", Path: "/raw?access_token=query-value-xyz"})
	var out bytes.Buffer
	if err := l.WritePolicy(&out, base); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, s := range base.Secrets() {
		if v := s.Sealed.Reveal(); strings.Contains(text, v) {
			t.Errorf("secret %s's value written", s.Name)
		}
	}
	if n := strings.Count(text, "sk-tokrun-placeholder-openai"); n != 1 || !strings.Contains(text, "placeholders: [sk-tokrun-placeholder-openai]") {
		t.Errorf("placeholder written %d times outside the secrets section", n-1)
	}
	for _, q := range []string{"query-value-xyz", "token=", "frag-value", "%3F", "%23", "run0001"} {
		if strings.Contains(text, q) {
			t.Errorf("output contains %q:\n%s", q, text)
		}
	}
	learned, err := Parse(filepath.Join(policyDir, "good", "learned.yaml"), out.Bytes(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := learned.Decide(Request{"https", "api.github.com", 0, "GET", "/bot-sk-proj-vector-0002/send"}); !d.Allow {
		t.Errorf("scrubbed path no longer allowed: %s", d.Explanation)
	}
}

// Observe records only allowed requests with valid facts, and is safe for
// concurrent use.
func TestLearnerObserve(t *testing.T) {
	l := NewLearner()
	ok := Decision{Allow: true, Scheme: "https", Host: "a.example.com", Port: 443, Method: "GET", Path: "/x"}
	bad := []func(*Decision){
		func(d *Decision) { d.Allow = false },
		func(d *Decision) { d.Scheme = "ftp" },
		func(d *Decision) { d.Host = "127.1" },
		func(d *Decision) { d.Port = 0 },
		func(d *Decision) { d.Port = 70000 },
		func(d *Decision) { d.Method = "CONNECT" },
		func(d *Decision) { d.hostOnly = true },
		func(d *Decision) { d.Path = "/a%2fb" },
	}
	for _, f := range bad {
		d := ok
		f(&d)
		l.Observe(d)
	}
	if len(l.groups) != 0 {
		t.Fatalf("recorded %d groups from bad decisions", len(l.groups))
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				d := ok
				d.Path = fmt.Sprintf("/x/%d", j)
				d.Host = fmt.Sprintf("h%d.example.com", i%2)
				l.Observe(d)
			}
		})
	}
	wg.Wait()
	if len(l.groups) != 2 {
		t.Fatalf("%d groups", len(l.groups))
	}
	for k, g := range l.groups {
		if g.requests != 400 || len(g.paths) != 1 || !g.paths["/x/*"] {
			t.Errorf("%v: %d requests, paths %v", k, g.requests, g.paths)
		}
	}
}

// A Learner's memory is bounded in destinations and in paths per
// destination, and the output says what was not recorded.
func TestLearnerBounds(t *testing.T) {
	l := NewLearner()
	d := Decision{Allow: true, Scheme: "https", Port: 443, Method: "GET"}
	for i := range maxLearnGroups + 3 {
		d.Host, d.Path = fmt.Sprintf("h%d.example.com", i), "/"
		l.Observe(d)
	}
	d.Host = "h0.example.com"
	for i := range maxLearnPaths + 5 {
		d.Path = fmt.Sprintf("/section%c/page-%c%c%c", 'a'+i%3, 'a'+i/676%26, 'a'+i/26%26, 'a'+i%26)
		l.Observe(d)
	}
	g := l.groups[learnKey{"https", "h0.example.com", 443, ""}]
	if len(l.groups) != maxLearnGroups || l.dropped != 3 || len(g.paths) > maxLearnPaths+3 {
		t.Fatalf("%d groups, %d dropped, %d paths", len(l.groups), l.dropped, len(g.paths))
	}
	var out bytes.Buffer
	if err := l.WritePolicy(&out, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "# Not recorded: 3 requests to further destinations") {
		t.Error("dropped requests not reported")
	}
	learned, err := Parse("bounds.yaml", out.Bytes(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.Path = "/sectionb/page-zzz"
	if r := learned.Decide(Request{"https", d.Host, 443, "GET", d.Path}); !r.Allow {
		t.Errorf("%s", r.Explanation)
	}
}
