package match

import (
	"net/netip"
	"slices"
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

// A path the fast check finds normal is one the general path returns
// unchanged, so skipping it changes nothing; and a path the general path
// returns unchanged that the check turns away costs time, not safety.
func FuzzNormalPath(f *testing.F) {
	for _, s := range []string{"/", "/v1/chat/completions", "/a/", "//a", "/a/./b", "/a/../b", "/a/.", "/a/..", "/..;x", "/.;x", "/a..;/b",
		"/%20", "/%2e", "/%2E", "/%2f", "/%5C", "/%00", "/%01", "/%7e", "/%7E", "/%3B", "/%3b", "/a%zz", "/a%2", "/a b", "/a\\b", "/caf\xc3\xa9", "/x;y=z/", "/...", "/.a/a./"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !isNormal(p) {
			return
		}
		n, err := normalizePath(p)
		if err != nil || n != p {
			t.Fatalf("isNormal(%q), but normalizePath returns %q, %v", p, n, err)
		}
	})
}

// A host that fastName accepts as it is gets the same answer from the
// general path.
func FuzzNormalizeFastHost(f *testing.F) {
	for _, s := range []string{"api.openai.com", "API.Example.COM", "a.b.", "1.2.3.4", "1.2.3a", "::1", "a_b.example", "xn--bcher-kva.example", "x.123"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		fast, ok := fastName(host)
		if !ok {
			return
		}
		h, err := normalizeHost(host)
		if err != nil || h != fast {
			t.Fatalf("fastName(%q) = %q, normalizeHost = %q, %v", host, fast, h, err)
		}
	})
}

// A glob matched as a string matches what it matches segment by segment.
func FuzzPathGlobShape(f *testing.F) {
	for _, s := range [][2]string{{"/v1/**", "/v1"}, {"/v1/**", "/v1/"}, {"/v1/**", "/v1x"}, {"/**", "/"}, {"/a/b", "/a/b/"}, {"/", "/"}, {"/a/", "/a"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, p string) {
		g, err := ParsePathGlob(pattern)
		if err != nil || p == "" || p[0] != '/' {
			return
		}
		if got, want := g.Match(p), matchSegs(g.segs, strings.Split(p[1:], "/"), matchSegment); got != want {
			t.Fatalf("%q.Match(%q) = %v, segment by segment %v", pattern, p, got, want)
		}
	})
}

// mayBeAddr never rules out an address netip.ParseAddr accepts.
func FuzzMayBeAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::1", "::ffff:1.2.3.4", "fe80::1%eth0", "1.2.3", "api.example.com", "%x", "a:b", "1.2.3.4.", "", "1..2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := netip.ParseAddr(s); err == nil && !mayBeAddr(s) {
			t.Fatalf("mayBeAddr(%q) is false, but ParseAddr accepts it", s)
		}
	})
}

// Glob matching splits a path as strings.Split does.
func FuzzAppendSegments(f *testing.F) {
	for _, s := range []string{"", "/", "a", "a/b", "a//b/", "//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := appendSegments(nil, s), strings.Split(s, "/"); !slices.Equal(got, want) {
			t.Fatalf("appendSegments(%q) = %q, want %q", s, got, want)
		}
	})
}
