package match

import (
	"strings"
	"testing"
)

// The shortcuts that skip work for the common inputs agree with the
// general code on every short combination of the pieces that it treats
// specially. The fuzz tests FuzzNormalPath, FuzzNormalizeFastHost and
// FuzzPathGlobShape search beyond these.

// A path that isNormal accepts is one normalizePath returns unchanged.
func TestNormalPathShortcut(t *testing.T) {
	pathParts := []string{"", "a", "A", "v1", ".", "..", "...", "a.", ".a", "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "\\",
		"%00", "%01", "%1f", "%20", "%41", "%61", "%7e", "%7E", "%7f", "%80", "%ff", "%FF", "%3b", "%3B", ";", "..;", ".;",
		"..;x", ".;x", "x;y", "%", "%4", "%g0", "~", "*", "@", ":", "é", "\xff", " ", "\x01", "\x7f", "?", "#", "[", "]"}
	shortcuts := 0
	var walk func(p string, depth int)
	walk = func(p string, depth int) {
		for _, q := range []string{p, strings.TrimPrefix(p, "/")} {
			if isNormal(q) {
				shortcuts++
				if n, err := normalizePath(q); err != nil || n != q {
					t.Fatalf("isNormal(%q), but normalizePath returns %q, %v", q, n, err)
				}
			}
		}
		if depth == 0 {
			return
		}
		for _, part := range pathParts {
			walk(p+"/"+part, depth-1)
		}
	}
	walk("", 3)
	if shortcuts == 0 {
		t.Fatal("no path took the shortcut")
	}
}

// A host that fastName accepts gets the same answer from normalizeHost.
func TestFastHostShortcut(t *testing.T) {
	labels := []string{"", "a", "A", "z9", "0", "00", "255", "1", "x_y", "-a", "a-", "ab--c", "xn--bcher-kva", "é", "a:b", "[", "]", "%", " ", strings.Repeat("a", 63), strings.Repeat("a", 64)}
	shortcuts := 0
	for _, a := range labels {
		for _, b := range labels {
			for _, c := range labels {
				for _, host := range []string{a, a + "." + b, a + "." + b + "." + c, a + "." + b + "." + c + "."} {
					if fast, ok := fastName(host); ok {
						shortcuts++
						if h, err := normalizeHost(host); err != nil || h != fast {
							t.Fatalf("fastName(%q) = %q, normalizeHost = %q, %v", host, fast, h, err)
						}
					}
				}
			}
		}
	}
	if shortcuts == 0 {
		t.Fatal("no host took the shortcut")
	}
}

// A glob matched as a string matches what it matches segment by segment.
func TestPathGlobShapes(t *testing.T) {
	segs := []string{"", "a", "b", "ab", "*", "a*", "**"}
	var globs, paths []string
	var build func(prefix string, depth int)
	build = func(prefix string, depth int) {
		globs = append(globs, prefix)
		if !strings.Contains(prefix, "*") {
			paths = append(paths, prefix)
		}
		if depth > 0 {
			for _, s := range segs {
				build(prefix+"/"+s, depth-1)
			}
		}
	}
	for _, s := range segs {
		build("/"+s, 2)
	}
	shapes := map[globShape]int{}
	for _, pattern := range globs {
		g, err := ParsePathGlob(pattern)
		if err != nil {
			continue
		}
		shapes[g.shape]++
		for _, p := range paths {
			if got, want := g.Match(p), matchSegs(g.segs, strings.Split(p[1:], "/"), matchSegment); got != want {
				t.Fatalf("%q.Match(%q) = %v, segment by segment %v", pattern, p, got, want)
			}
		}
	}
	if len(shapes) != 3 {
		t.Fatalf("globs of shapes %v only", shapes)
	}
}
