package policy_test

import (
	"fmt"

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
