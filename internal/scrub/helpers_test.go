package scrub

import (
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// chunkReader returns its data in chunks whose sizes next chooses.
type chunkReader struct {
	b    []byte
	next func() int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(max(c.next(), 1), len(p), len(c.b))
	n = copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

func randomChunks(data []byte, rng *rand.Rand, maxChunk int) io.Reader {
	return &chunkReader{b: data, next: func() int { return 1 + rng.IntN(maxChunk) }}
}

// splitReader returns data in pieces cut at the given offsets.
func splitReader(data []byte, cuts ...int) io.Reader {
	var sizes []int
	prev := 0
	for _, c := range cuts {
		sizes = append(sizes, c-prev)
		prev = c
	}
	sizes = append(sizes, len(data)-prev)
	sizes = slices.DeleteFunc(sizes, func(n int) bool { return n == 0 })
	return &chunkReader{b: data, next: func() int {
		n := sizes[0]
		if len(sizes) > 1 {
			sizes = sizes[1:]
		}
		return n
	}}
}

func mustNew(t testing.TB, pairs ...Pair) *Scrubber {
	t.Helper()
	s, err := New(pairs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// scrubAll reads src through s and fails the test on a read error.
func scrubAll(t testing.TB, s *Scrubber, src io.Reader) (string, int64) {
	t.Helper()
	r := s.Reader(src)
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(out), r.Count()
}

// reference is the obviously correct leftmost-longest replacement the
// automaton must agree with. It also returns the output ranges that are
// placeholders.
func reference(m *matcher, in string) (string, [][2]int, int) {
	ns := slices.Clone(m.needles)
	slices.SortStableFunc(ns, func(a, b needle) int { return len(b.text) - len(a.text) })
	var out strings.Builder
	var pls [][2]int
	count := 0
outer:
	for i := 0; i < len(in); {
		for _, n := range ns {
			if strings.HasPrefix(in[i:], n.text) {
				p := m.pl[n.pair]
				pls = append(pls, [2]int{out.Len(), out.Len() + len(p)})
				out.WriteString(p)
				i += len(n.text)
				count++
				continue outer
			}
		}
		out.WriteByte(in[i])
		i++
	}
	return out.String(), pls, count
}

// leftmostStart returns the offset of the first form in in, or -1.
func leftmostStart(m *matcher, in string) int {
	for i := range len(in) {
		for _, n := range m.needles {
			if strings.HasPrefix(in[i:], n.text) {
				return i
			}
		}
	}
	return -1
}

// needleAt reports the first form of any secret in out that does not
// overlap one of the placeholder ranges pls, or "" if there is none.
func needleAt(m *matcher, out string, pls [][2]int) string {
	for _, n := range m.needles {
		for off := 0; ; {
			i := strings.Index(out[off:], n.text)
			if i < 0 {
				break
			}
			start, end := off+i, off+i+len(n.text)
			if !slices.ContainsFunc(pls, func(r [2]int) bool { return r[0] < end && start < r[1] }) {
				return n.text
			}
			off = start + 1
		}
	}
	return ""
}

func containsAny(out string, needles []needle) bool {
	return slices.ContainsFunc(needles, func(n needle) bool { return strings.Contains(out, n.text) })
}
