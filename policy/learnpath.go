package policy

import (
	"slices"
	"strings"

	"github.com/tokrun/tokrun/internal/match"
)

// maxLearnedPaths is how many paths a learned rule lists before they are
// collapsed into common prefixes.
const maxLearnedPaths = 20

// generalisePath turns a normalised request path into the glob a learned
// rule lists. Segments that look like identifiers (see looksLikeID) become
// "*". What follows an encoded "?" or "#" (a query string or fragment a
// client sent as part of the path) is never kept: the segment is cut there
// and ends in "*", and any segments after it become "**". A segment that
// holds "**" becomes "*", so that a literal "**" cannot widen the glob to
// any depth. The result matches the path it came from.
func generalisePath(p string) string {
	if p == "/" {
		return p
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		if j := queryStart(s); j >= 0 {
			segs[i] = s[:j] + "*"
			if looksLikeID(s[:j]) || strings.Contains(segs[i], "**") {
				segs[i] = "*"
			}
			if i < len(segs)-1 {
				segs = append(segs[:i+1], "**")
			}
			break
		}
		if looksLikeID(s) || strings.Contains(s, "**") {
			segs[i] = "*"
		}
	}
	return "/" + strings.Join(segs, "/")
}

// queryStart returns the index of an encoded "?" or "#" in a segment, or -1.
func queryStart(seg string) int {
	q, f := strings.Index(seg, "%3F"), strings.Index(seg, "%23")
	switch {
	case q < 0:
		return f
	case f < 0:
		return q
	}
	return min(q, f)
}

// looksLikeID reports whether a path segment looks like an identifier
// rather than a fixed part of an API: all digits, a UUID, 16 or more hex
// digits, or a token of 20 or more letters, digits, '-' and '_' with at
// least one letter and one digit.
func looksLikeID(s string) bool {
	if s == "" {
		return false
	}
	var digits, letters, hex, other int
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
			hex++
		case c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			letters++
			hex++
		case c >= 'g' && c <= 'z' || c >= 'G' && c <= 'Z':
			letters++
		case c == '-' || c == '_':
		default:
			other++
		}
	}
	switch {
	case other > 0:
		return false
	case digits == len(s):
		return true
	case isUUID(s):
		return true
	case hex == len(s) && len(s) >= 16:
		return true
	}
	return len(s) >= 20 && digits > 0 && letters > 0
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// prefixGlob returns the first k segments followed by "/**", or the whole
// path when it has no more than k segments.
func prefixGlob(segs []string, k int) string {
	if len(segs) <= k {
		return "/" + strings.Join(segs, "/")
	}
	if k == 0 {
		return "/**"
	}
	return "/" + strings.Join(segs[:k], "/") + "/**"
}

// learnedPaths returns the sorted globs a learned rule lists: each path
// once, with paths covered by a "/**" glob in the set dropped; past
// maxLearnedPaths, the paths are collapsed into the longest common
// prefixes that leave at most maxLearnedPaths globs.
func learnedPaths(paths []string) []string {
	set := map[string]bool{}
	for _, p := range paths {
		set[p] = true
	}
	if len(set) > maxLearnedPaths {
		split := make([][]string, 0, len(set))
		depth := 0
		for p := range set {
			segs := strings.Split(p[1:], "/")
			split = append(split, segs)
			depth = max(depth, len(segs))
		}
		for k := depth - 1; k >= 0; k-- {
			next := map[string]bool{}
			for _, segs := range split {
				next[prefixGlob(segs, k)] = true
			}
			if len(next) <= maxLearnedPaths {
				set = next
				break
			}
		}
	}
	var globs []match.PathGlob
	for p := range set {
		if strings.HasSuffix(p, "/**") {
			if g, err := match.ParsePathGlob(p); err == nil {
				globs = append(globs, g)
			}
		}
	}
	var out []string
	for p := range set {
		if !strings.Contains(p, "*") && slices.ContainsFunc(globs, func(g match.PathGlob) bool { return g.Match(p) }) {
			continue
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// scrubPath replaces with "*" every segment of p that overlaps an
// occurrence of one of needles (secret values and placeholders), raw or
// as NormalizePath would escape it.
func scrubPath(p string, needles []string) string {
	if p == "/" || len(needles) == 0 {
		return p
	}
	segs := strings.Split(p[1:], "/")
	starts, ends := make([]int, len(segs)), make([]int, len(segs))
	off := 1
	for i, s := range segs {
		starts[i], ends[i] = off, off+len(s)
		off += len(s) + 1
	}
	changed := false
	for _, n := range needles {
		for _, form := range []string{n, escapePath(n)} {
			for from := 0; form != ""; {
				i := strings.Index(p[from:], form)
				if i < 0 {
					break
				}
				lo, hi := from+i, from+i+len(form)
				for j := range segs {
					if starts[j] < hi && ends[j] > lo {
						segs[j], changed = "*", true
					}
				}
				from = lo + 1
			}
		}
	}
	if !changed {
		return p
	}
	return "/" + strings.Join(segs, "/")
}

// escapePath writes s as it appears in a normalised path: unreserved and
// sub-delimiter characters raw, everything else percent-encoded.
func escapePath(s string) string {
	const hexUpper = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexUpper[c>>4])
		b.WriteByte(hexUpper[c&15])
	}
	return b.String()
}
