package match

import (
	"fmt"
	"strings"
)

// PathGlob is a compiled path pattern. The zero value matches nothing.
type PathGlob struct {
	src  string
	segs []string // "**" is the any-depth wildcard; others may hold "*"
	// shape lets Match compare the most common patterns as strings,
	// without splitting the path: "/v1/models" and "/v1/**".
	shape globShape
	// dir, for a globUnder pattern, is the pattern without its "**".
	dir string
}

type globShape int

const (
	globAny   globShape = iota // matched segment by segment
	globExact                  // no "*": the path must be the pattern
	globUnder                  // no "*" but a final "**": the path must be dir or under it
)

// ParsePathGlob compiles a path pattern such as "/v1/**" or
// "/repos/*/issues". The pattern must be in normalised form (see
// NormalizePath) so that what is written is what is matched; a segment
// may contain "*" (any run within the segment) or be exactly "**" (zero or
// more segments). "**" mixed with other characters in one segment is
// refused.
func ParsePathGlob(pattern string) (PathGlob, error) {
	if pattern == "" || pattern[0] != '/' {
		return PathGlob{}, fmt.Errorf("%w: pattern %q must start with \"/\"", ErrPath, pattern)
	}
	norm, err := NormalizePath(pattern)
	if err != nil {
		return PathGlob{}, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	if norm != pattern {
		return PathGlob{}, fmt.Errorf("%w: pattern %q is not in normalised form; write %q", ErrPath, pattern, norm)
	}
	segs := strings.Split(pattern[1:], "/")
	for _, s := range segs {
		if strings.Contains(s, "**") && s != "**" {
			return PathGlob{}, fmt.Errorf("%w: pattern %q: \"**\" must be a whole segment", ErrPath, pattern)
		}
	}
	g := PathGlob{src: pattern, segs: segs}
	dir, under := strings.CutSuffix(pattern, "**")
	switch {
	case !strings.Contains(pattern, "*"):
		g.shape = globExact
	case under && !strings.Contains(dir, "*"):
		g.shape, g.dir = globUnder, dir
	}
	return g, nil
}

// String returns the pattern as written.
func (g PathGlob) String() string { return g.src }

// Match reports whether the normalised path p matches the pattern.
func (g PathGlob) Match(p string) bool {
	if g.segs == nil || p == "" || p[0] != '/' {
		return false
	}
	switch g.shape {
	case globExact:
		return p == g.src
	case globUnder:
		// "**" matches zero or more segments: "/v1/**" matches "/v1",
		// "/v1/" and anything that starts with "/v1/".
		return p == g.dir[:len(g.dir)-1] || strings.HasPrefix(p, g.dir)
	}
	var buf [32]string // enough for most paths, so that splitting does not allocate
	return matchSegs(g.segs, appendSegments(buf[:0], p[1:]), matchSegment)
}

// appendSegments appends the "/"-separated segments of s to segs, as
// strings.Split(s, "/") returns them.
func appendSegments(segs []string, s string) []string {
	for {
		i := strings.IndexByte(s, '/')
		if i < 0 {
			return append(segs, s)
		}
		segs = append(segs, s[:i])
		s = s[i+1:]
	}
}

// matchSegs matches path segments against pattern segments, where "**"
// matches any run of segments. It is the classic wildcard algorithm (on a
// mismatch, retry from the last "**" one segment further), so its time is
// at most len(pat)*len(path) segment comparisons, whatever the number of
// "**" in the pattern.
func matchSegs(pat, path []string, matchSeg func(pat, s string) bool) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(path) {
		switch {
		case pi < len(pat) && pat[pi] == "**":
			starP, starS = pi, si
			pi++
		case pi < len(pat) && matchSeg(pat[pi], path[si]):
			pi++
			si++
		case starP >= 0:
			starS++
			pi, si = starP+1, starS
		default:
			return false
		}
	}
	for pi < len(pat) && pat[pi] == "**" {
		pi++
	}
	return pi == len(pat)
}

// matchSegment matches one segment against a pattern in which "*" stands
// for any run of characters. It is linear in practice: the classic
// greedy-with-backtrack-to-last-star algorithm.
func matchSegment(pat, s string) bool {
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pat) && pat[px] == '*':
			starP, starS = px, sx
			px++
		case px < len(pat) && pat[px] == s[sx]:
			px++
			sx++
		case starP >= 0:
			px = starP + 1
			starS++
			sx = starS
		default:
			return false
		}
	}
	for px < len(pat) && pat[px] == '*' {
		px++
	}
	return px == len(pat)
}
