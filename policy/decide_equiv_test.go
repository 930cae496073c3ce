package policy

import (
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokrun/tokrun/internal/match"
)

// equivPolicy has rules of every shape that Decide treats differently:
// exact, wildcard and IP hosts, rules that share a host and differ in
// scheme, port or method, path globs with escapes and parameters, and
// deny rules matched loosely, by method only, or by host alone.
const equivPolicy = `version: 1
rules:
  - {name: chat, host: api.example.com, methods: [GET, POST], paths: ["/v1/**", "/models/*"]}
  - {name: chat-put, host: api.example.com, port: 8443, methods: [PUT], paths: ["/v1/*/items"]}
  - {name: chat-http, host: api.example.com, scheme: http, paths: ["/health"]}
  - {name: tenants, host: "*.tenant.example.org", paths: ["/api/*/data/**", "/a%20b/*", "/x;y/*", "/files./*"]}
  - {name: any, host: any.example.net}
  - {name: v4, host: 127.0.0.1, scheme: http, port: 8080, unsafe_allow_private_network: true}
  - {name: v6, host: "[::1]", scheme: http, port: 9000, methods: [GET]}
  - {name: cloud, host: "*.amazonaws.com"}
  - {name: gateway, host: abc.execute-api.us-east-1.amazonaws.com}
  - {name: lambda, host: abc.lambda-url.us-east-1.on.aws}
deny:
  - {name: no-admin, host: api.example.com, paths: ["/v1/Admin/**", "/v1/files./*", "/v1/x;y/**"]}
  - {name: no-delete, host: "*.tenant.example.org", methods: [DELETE]}
  - {name: no-host, host: blocked.tenant.example.org}
  - {name: no-plain, host: "*.example.net", scheme: http, port: 80}
  - {name: no-lambda, host: "*.on.aws"}
`

// equivPolicies returns policies to compare Decide and DecideHost on, by
// name, in normal and learn mode.
func equivPolicies(t testing.TB) map[string]*Policy {
	ps := map[string]*Policy{}
	for _, learn := range []bool{false, true} {
		opts := testOptions(t)
		opts.Learn = learn
		opts.Allow = []string{"plain.example.io", "*.wild.example.io:8443"}
		suffix := ""
		if learn {
			suffix = "-learn"
		}
		for _, f := range []string{"full.yaml", "expired.yaml", "minimal.yaml"} {
			p, err := Load(filepath.Join(policyDir, "good", f), opts)
			if err != nil {
				t.Fatal(err)
			}
			ps[f+suffix] = p
		}
		p, err := Parse("equiv.yaml", []byte(equivPolicy), opts)
		if err != nil {
			t.Fatal(err)
		}
		ps["equiv"+suffix] = p
	}
	ps["bench"] = genPolicy(t, 30)
	return ps
}

var (
	equivSchemes = []string{"https", "http", "ftp", "", "HTTPS"}
	equivPorts   = []int{0, 443, 80, 8080, 8443, 9000, 1}
	equivMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "get", ""}
	equivHosts   = []string{
		"api.openai.com", "API.OpenAI.com.", "my.openai.azure.com", "api.example.com", "API.EXAMPLE.COM",
		"api.example.com.", "files.pythonhosted.org", "pythonhosted.org", "pypi.org", "x.tenant.example.org",
		"a.b.tenant.example.org", "blocked.tenant.example.org", "tenant.example.org", "any.example.net",
		"other.example.net", "plain.example.io", "a.wild.example.io", "wild.example.io", "svc-0.example.com",
		"svc-27.example.com", "a.tenant-1.example.org", "h2.example.net", "api.example.com.evil.net",
		"evilapi.example.com", "127.0.0.1", "[::1]", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "127.1",
		"2130706433", "", ".", "bücher.example", "xn--bcher-kva.example", "a..b", "host:443", "[::1",
		"fe80::1%eth0", "1.2.3.4", "_acme.example.com", "-bad.example", "sp ace.example", "ab--cd.example",
		"sts.amazonaws.com", "abc.execute-api.us-east-1.amazonaws.com", "x.execute-api.us-east-1.amazonaws.com",
		"bucket.s3.amazonaws.com", "a.bucket.s3.amazonaws.com", "abc.lambda-url.us-east-1.on.aws", "x.lambda-url.us-east-1.on.aws",
	}
	// equivPathParts are joined by "/" into paths that probe every case of
	// normalisation: dot-segments spelled raw and encoded, encoded and
	// raw separators, escapes of unreserved and reserved bytes in both
	// cases, ";" parameters, trailing dots and case.
	equivPathParts = []string{
		"", "v1", "V1", "models", "x", "Admin", "admin", "ADMIN", "files", "files.", "files..", "api", "data",
		"items", "health", "a%20b", "x;y", "x;y=z", ".", "..", "...", "%2e", "%2E", "%2e%2e", ".%2e", "%2E.",
		"..;", ".;", "..;x", "%2f", "%2F", "%5c", "%5C", "\\", "%00", "%01", "%20", "%7e", "%7E", "~", "%41",
		"%61", "%3b", "%3B", ";", "*", "**", "%", "%g1", "%4", "é", "\xff", " ", "\x01", "\x7f", "?", "#",
		"a.", "a..", "@", ":", "+", "chat", "completions", "deployments", "admin%20", "admin.%20", "admin%20.", "..%20", ".%20", "%20%20",
		";x", "adm%C4%B1n", "adm%c4%b1n", "%C5%BFecret", "\u212a", "ı",
	}
)

// equivPath returns a random path built from equivPathParts.
func equivPath(rng *rand.Rand) string {
	n := rng.IntN(6)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = equivPathParts[rng.IntN(len(equivPathParts))]
	}
	p := strings.Join(parts, "/")
	switch rng.IntN(10) {
	case 0: // not starting with "/"
	case 1:
		p = "//" + p
	case 2, 3, 4, 5:
		p = equivPathPrefixes[rng.IntN(len(equivPathPrefixes))] + p
	default:
		p = "/" + p
	}
	return p
}

// equivPathPrefixes start paths that rules and sealed bindings allow.
var equivPathPrefixes = []string{"/v1/", "/models/", "/api/x/data/", "/openai/deployments/x/chat/completions/", "/v1/Admin/"}

// checkEquiv fails t unless Decide and DecideHost decide req exactly as
// the reference implementations do. It returns Decide's decision.
func checkEquiv(t *testing.T, name string, p *Policy, req Request) Decision {
	t.Helper()
	got, want := p.Decide(req), p.refDecide(req)
	// When a decision holds is TestDecisionHolds's; the reference does
	// not track it.
	got.once, got.lasts = false, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: Decide(%+v)\n got %+v\nwant %+v", name, req, got, want)
	}
	if got, want := p.DecideHost(req), p.refDecideHost(req); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: DecideHost(%+v)\n got %+v\nwant %+v", name, req, got, want)
	}
	return got
}

// Decide and DecideHost return exactly what the plain reference
// implementations return, over every host crossed with many paths, and
// over random requests.
func TestDecideMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/", "", "/v1/chat/completions", "/v1/Admin/x", "/v1/admin./x", "/v1/ADMIN;x=y/y", "/v1/files./a",
		"/v1/files/a", "/v1/x;y/z", "/v1/X;Y/z", "/v1/%2e%2e/admin", "/v1/../models/a", "/api/x/data/y/z", "/a%20b/c",
		"/a%20B/c", "/x;y/z", "/files./a", "/files/a", "/health", "/openai/deployments/x/chat/completions", "/models/x"}
	for i := 0; i < 40; i++ {
		paths = append(paths, equivPath(rng))
	}
	// seen counts the reasons met, so that the test fails if the inputs
	// stop reaching every kind of decision.
	seen := map[string]int{}
	note := func(d Decision) {
		seen[string(d.Reason)]++
		if d.Allow && len(d.Inject) > 0 {
			seen["allowed with injection"]++
		}
		if d.Rule == LearnRule {
			seen["learned"]++
		}
	}
	for name, p := range equivPolicies(t) {
		for _, host := range equivHosts {
			for i, path := range paths {
				method := equivMethods[i%len(equivMethods)]
				note(checkEquiv(t, name, p, Request{Scheme: "https", Host: host, Method: method, Path: path}))
				note(checkEquiv(t, name, p, Request{Scheme: "https", Host: host, Method: "POST", Path: path}))
			}
		}
		for i := 0; i < 3000; i++ {
			req := Request{
				Scheme: equivSchemes[rng.IntN(len(equivSchemes))],
				Host:   equivHosts[rng.IntN(len(equivHosts))],
				Port:   equivPorts[rng.IntN(len(equivPorts))],
				Method: equivMethods[rng.IntN(len(equivMethods))],
				Path:   equivPath(rng),
			}
			note(checkEquiv(t, name, p, req))
		}
	}
	for _, want := range append(Reasons(), "allowed with injection", "learned") {
		if seen[string(want)] == 0 {
			t.Errorf("no request was decided %s", want)
		}
	}
	t.Logf("decisions: %v", seen)
}

// loosePath, which returns most paths as they are, folds every path as
// the reference does.
func TestLoosePathMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		p, err := match.NormalizePath(equivPath(rng))
		if err != nil {
			continue
		}
		if got, want := loosePath(p), refLoosePath(p); got != want {
			t.Fatalf("loosePath(%q) = %q, want %q", p, got, want)
		}
	}
}

// Decide and DecideHost return exactly what the reference
// implementations return, for any request.
func FuzzDecideMatchesReference(f *testing.F) {
	f.Add("https", "api.example.com", 0, "POST", "/v1/chat/completions")
	f.Add("https", "api.openai.com", 443, "GET", "/v1/%2e%2e/files/x")
	f.Add("http", "blocked.tenant.example.org", 80, "DELETE", "/V1/Admin;x/")
	f.Add("https", "x.tenant.example.org", 0, "GET", "/files./a")
	f.Add("https", "[::1]", 9000, "GET", "//a/./b/../%41")
	ps := equivPolicies(f)
	f.Fuzz(func(t *testing.T, scheme, host string, port int, method, path string) {
		req := Request{Scheme: scheme, Host: host, Port: port, Method: method, Path: path}
		for name, p := range ps {
			checkEquiv(t, name, p, req)
		}
	})
}
