package match

import (
	"strings"
	"testing"
)

// FuzzNormalizePath checks that normalisation is idempotent and that a
// path a glob allows stays allowed after normalising it again.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/v1/../admin", "/v1/%2e%2e/admin", "//admin", "/a%20b", "/caf\xc3\xa9", "/v1/..;/x", "/a/./b/../c/"} {
		f.Add(s)
	}
	globs := []PathGlob{}
	for _, p := range []string{"/v1/**", "/v1/*", "/repos/*/issues", "/**", "/a/**/c"} {
		g, err := ParsePathGlob(p)
		if err != nil {
			f.Fatal(err)
		}
		globs = append(globs, g)
	}
	f.Fuzz(func(t *testing.T, p string) {
		n, err := NormalizePath(p)
		if err != nil {
			return
		}
		n2, err := NormalizePath(n)
		if err != nil {
			t.Fatalf("NormalizePath(%q) = %q, which then fails: %v", p, n, err)
		}
		if n2 != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", p, n, n2)
		}
		for _, g := range globs {
			if g.Match(n) != g.Match(n2) {
				t.Fatalf("%v matches %q but not its renormalised form %q", g, n, n2)
			}
		}
	})
}

// FuzzHost checks that host normalisation is idempotent and that an exact
// pattern built from a canonical host matches it and nothing else that
// differs.
func FuzzHost(f *testing.F) {
	for _, s := range []string{"api.openai.com", "API.Example.COM.", "bücher.example", "::1", "[::1]", "127.0.0.1", "*.example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		n, err := NormalizeHost(h)
		if err != nil {
			return
		}
		n2, err := NormalizeHost(n)
		if err != nil || n2 != n {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", h, n, n2, err)
		}
		p, err := ParseHostPattern(n)
		if err != nil {
			t.Fatalf("canonical host %q is not a valid pattern: %v", n, err)
		}
		if !p.Match(n) || p.Match(n+".evil.net") || p.Match("x"+n) {
			t.Fatalf("pattern %q matches wrongly", n)
		}
	})
}

// The ASCII fast path must agree with full IDNA processing.
func FuzzFastHost(f *testing.F) {
	for _, s := range []string{"api.openai.com", "API.Example.COM", "a_b.example", "xn--bcher-kva.example", "ab--cd.example", "a-.b", "1.2.3", "x.123", strings.Repeat("a", 64) + ".com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		fast, ok := fastName(name)
		if !ok {
			return
		}
		slow, err := slowName(name, name)
		if err != nil || slow != fast {
			t.Fatalf("fastName(%q) = %q, slowName = %q, %v", name, fast, slow, err)
		}
	})
}
