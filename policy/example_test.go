package policy_test

import (
	"fmt"
	"os"

	"github.com/tokrun/tokrun/policy"
)

// Decide requests against a policy: the first matching rule wins, deny
// rules win over it, and paths are normalised before matching.
func ExamplePolicy_Decide() {
	p, err := policy.Parse("example.yaml", []byte(`
version: 1
rules:
  - name: pypi-read
    host: "*.pythonhosted.org"
    methods: [GET, HEAD]
  - name: api
    host: api.example.com
    paths: ["/v1/**"]
`), policy.Options{})
	if err != nil {
		panic(err)
	}
	for _, r := range []policy.Request{
		{Scheme: "https", Host: "files.pythonhosted.org", Method: "GET", Path: "/packages/x.whl"},
		{Scheme: "https", Host: "files.pythonhosted.org", Method: "POST", Path: "/packages/x.whl"},
		{Scheme: "https", Host: "api.example.com", Method: "GET", Path: "/v1/../admin"},
		{Scheme: "https", Host: "evil.example", Method: "GET", Path: "/"},
	} {
		d := p.Decide(r)
		fmt.Printf("%-5v %-18s %s\n", d.Allow, d.Reason, d.Explanation)
	}
	// Output:
	// true  allowed            GET https://files.pythonhosted.org:443/packages/x.whl is allowed by rule pypi-read
	// false method_not_allowed rule pypi-read allows methods GET, HEAD, not POST, for host files.pythonhosted.org
	// false path_not_allowed   rule api allows paths /v1/**, not /admin, for host api.example.com
	// false host_not_allowed   no rule allows host evil.example; add a rule with host: evil.example
}

// Learn what a command needs: decide its requests in learn mode, observe
// the decisions, and write a policy that allows what was observed.
func ExampleLearner() {
	p, err := policy.Parse("(no policy)", []byte("version: 1\n"), policy.Options{Learn: true})
	if err != nil {
		panic(err)
	}
	l := policy.NewLearner()
	for _, r := range []policy.Request{
		{Scheme: "https", Host: "api.github.com", Method: "GET", Path: "/repos/tokrun/tokrun/issues/42"},
		{Scheme: "https", Host: "api.github.com", Method: "GET", Path: "/repos/tokrun/tokrun/issues/7?state=open"},
	} {
		l.Observe(p.Decide(r))
	}
	if err := l.WritePolicy(os.Stdout, nil); err != nil {
		panic(err)
	}
	// Output:
	// # Written by `tokrun --learn` from the requests one run made.
	// # Review it before use: it allows what was observed, with identifiers in
	// # paths generalised to "*", and any method listed on any path listed.
	// # Observed: 2 requests to 1 destination:
	// #   https://api.github.com:443 GET (2 requests)
	// version: 1
	// rules:
	//   # 2 requests, allowed by learn
	//   - name: api.github.com
	//     host: api.github.com
	//     methods: [GET]
	//     paths:
	//       - "/repos/tokrun/tokrun/issues/*"
}
