package policy

import (
	"fmt"
	"path/filepath"
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

// BenchmarkDecideRequest reports the time and allocations of the
// decisions a proxy makes most: an allowed request with a secret to
// inject, one without, and the common denials.
func BenchmarkDecideRequest(b *testing.B) {
	p := mustLoad(b, filepath.Join(policyDir, "good", "full.yaml"))
	for _, bc := range []struct {
		name   string
		req    Request
		reason Reason
	}{
		{"allow-inject", Request{Scheme: "https", Host: "api.openai.com", Port: 443, Method: "POST", Path: "/v1/chat/completions"}, Allowed},
		{"allow", Request{Scheme: "https", Host: "files.pythonhosted.org", Port: 443, Method: "GET", Path: "/packages/ab/cd/x-1.0.whl"}, Allowed},
		{"allow-unnormalised", Request{Scheme: "https", Host: "API.OpenAI.com.", Port: 443, Method: "POST", Path: "/v1/./chat//%63ompletions"}, Allowed},
		{"deny-host", Request{Scheme: "https", Host: "api.github.com", Port: 443, Method: "GET", Path: "/"}, HostNotAllowed},
		{"deny-path", Request{Scheme: "https", Host: "api.openai.com", Port: 443, Method: "GET", Path: "/admin/users"}, PathNotAllowed},
		{"deny-rule", Request{Scheme: "https", Host: "api.openai.com", Port: 443, Method: "GET", Path: "/v1/files/abc"}, DeniedByRule},
	} {
		if d := p.Decide(bc.req); d.Reason != bc.reason {
			b.Fatalf("%s: decided %+v", bc.name, d)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Decide(bc.req)
			}
		})
	}
}
