package policy

import (
	"fmt"
	"strings"
	"testing"
)

// genPolicy builds a policy of n rules: exact hosts, wildcards, methods
// and path globs, plus a few deny rules.
func genPolicy(tb testing.TB, n int) *Policy {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	for i := 0; i < n; i++ {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, "  - {name: r%d, host: svc-%d.example.com, methods: [GET, POST], paths: [\"/v1/**\", \"/v2/items/*\"]}\n", i, i)
		case 1:
			fmt.Fprintf(&b, "  - {name: r%d, host: \"*.tenant-%d.example.org\", paths: [\"/api/*/data/**\"]}\n", i, i)
		default:
			fmt.Fprintf(&b, "  - {name: r%d, host: h%d.example.net, port: 8443, methods: [GET]}\n", i, i)
		}
	}
	b.WriteString("deny:\n  - {name: d1, host: \"*.example.com\", paths: [\"/admin/**\"]}\n")
	p, err := Parse("bench.yaml", []byte(b.String()), Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkDecide reports the time per decision for policies of 1 and
// 1,000 rules; the ratio shows that lookup does not scan every rule.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{1, 1000} {
		p := genPolicy(b, n)
		last := (n - 1) / 3 * 3 // the last exact-host rule
		reqs := []Request{
			{Scheme: "https", Host: fmt.Sprintf("svc-%d.example.com", last), Method: "POST", Path: "/v1/chat/completions"},
			{Scheme: "https", Host: fmt.Sprintf("a.b.tenant-%d.example.org", n-1-(n-1)%3+1), Method: "GET", Path: "/api/x/data/y/z"},
			{Scheme: "https", Host: "unknown.example.io", Method: "GET", Path: "/"},
		}
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p.Decide(reqs[i%len(reqs)])
			}
		})
	}
}

func TestBenchPolicyDecides(t *testing.T) {
	p := genPolicy(t, 1000)
	d := p.Decide(Request{Scheme: "https", Host: "svc-999.example.com", Method: "POST", Path: "/v1/x"})
	if !d.Allow || d.Rule != "r999" {
		t.Fatalf("%+v", d)
	}
	d = p.Decide(Request{Scheme: "https", Host: "svc-999.example.com", Method: "POST", Path: "/admin/x"})
	if d.Allow || d.Rule != "d1" {
		t.Fatalf("%+v", d)
	}
}
