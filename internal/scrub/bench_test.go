package scrub

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// onlyReader and onlyWriter hide WriterTo and ReaderFrom so that io.Copy
// moves data through its 32 KiB buffer in the baseline too.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// benchBody is 1 MiB of JSON-like text; with matches, a form of one of the
// secrets every 16 KiB or so.
func benchBody(secrets []string, matches bool) []byte {
	rng := rand.New(rand.NewPCG(9, 9))
	const words = "the quick brown fox jumps over lazy dog id name value model token usage 0123456789 ABCDEF"
	var b bytes.Buffer
	for b.Len() < 1<<20 {
		fmt.Fprintf(&b, `{"%s":"`, words[rng.IntN(40):][:8])
		for range 30 {
			i := rng.IntN(len(words) - 6)
			b.WriteString(words[i : i+1+rng.IntN(6)])
		}
		if matches && rng.IntN(50) == 0 {
			fs := forms(secrets[rng.IntN(len(secrets))])
			b.WriteString(fs[rng.IntN(len(fs))])
		}
		b.WriteString("\"},\n")
	}
	return b.Bytes()[:1<<20]
}

func BenchmarkScrub(b *testing.B) {
	secrets := []string{plainSecret, "ghp_0123456789abcdefghijABCDEFGHIJ0123", "AKIAIOSFODNN7EXAMPLEwJalrXUtnFEMI/K7MDENG", specialSecret}
	for _, matches := range []bool{false, true} {
		body := benchBody(secrets, matches)
		name := "nomatch"
		if matches {
			name = "matches"
		}
		b.Run(name+"/io.Copy", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := io.Copy(onlyWriter{io.Discard}, onlyReader{bytes.NewReader(body)}); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, n := range []int{1, 4} {
			var pairs []Pair
			for i, s := range secrets[:n] {
				pairs = append(pairs, Pair{s, fmt.Sprintf("PH_%d", i)})
			}
			s := mustNew(b, pairs...)
			b.Run(fmt.Sprintf("%s/secrets=%d", name, n), func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				var count int64
				for b.Loop() {
					r := s.Reader(onlyReader{bytes.NewReader(body)})
					if _, err := io.Copy(onlyWriter{io.Discard}, r); err != nil {
						b.Fatal(err)
					}
					count = r.Count()
				}
				if matches != (count > 0) {
					b.Fatalf("%d replacements", count)
				}
			})
			b.Run(fmt.Sprintf("%s/secrets=%d/AppendReplace", name, n), func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				out := make([]byte, 0, 2*len(body))
				var count int
				for b.Loop() {
					out, count = s.AppendReplace(out[:0], body)
				}
				if matches != (count > 0) {
					b.Fatalf("%d replacements", count)
				}
			})
		}
	}
}

func BenchmarkNew(b *testing.B) {
	secrets := []string{plainSecret, "ghp_0123456789abcdefghijABCDEFGHIJ0123", "AKIAIOSFODNN7EXAMPLEwJalrXUtnFEMI/K7MDENG", specialSecret}
	var pairs []Pair
	for i, s := range secrets {
		pairs = append(pairs, Pair{s, fmt.Sprintf("PH_%d", i)})
	}
	for b.Loop() {
		if _, err := New(pairs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReplaceHeader(b *testing.B) {
	s := mustNew(b, Pair{plainSecret, ph})
	b.ReportAllocs()
	for b.Loop() {
		s.Replace("application/json; charset=utf-8")
	}
}

// BenchmarkSmallResponse scrubs a 1 KiB body as the proxy does for each
// response to a request that carried a secret: streamed through a new
// Reader, or whole with AppendReplace into a reused buffer.
func BenchmarkSmallResponse(b *testing.B) {
	s := mustNew(b, Pair{plainSecret, ph})
	body := bytes.Repeat([]byte("0123456789abcdef"), 64)
	b.Run("Reader", func(b *testing.B) {
		buf := make([]byte, 32<<10)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := io.CopyBuffer(onlyWriter{io.Discard}, s.Reader(bytes.NewReader(body)), buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendReplace", func(b *testing.B) {
		buf := make([]byte, 0, 2*len(body))
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = s.AppendReplace(buf[:0], body)
		}
	})
}
