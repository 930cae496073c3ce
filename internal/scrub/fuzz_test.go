package scrub

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// FuzzScrub checks, for arbitrary input and a fuzzed second secret, that
// the streamed output, Replace and AppendReplace match the leftmost-longest
// reference, that no form of any secret survives outside a placeholder,
// and that input holding no form passes byte for byte.
func FuzzScrub(f *testing.F) {
	f.Add([]byte("zzzzzzzz99"), []byte("plain text"), uint64(1))
	f.Add([]byte("abcdefgh"), []byte("abcdefghabcdefg"), uint64(2))
	f.Add([]byte(specialSecret), []byte("Bearer "+plainSecret+" and "+specialSecret), uint64(3))
	for _, form := range encodedForms(specialSecret) {
		f.Add([]byte("12345678"), []byte("{\""+form+"\"}"), uint64(len(form)))
	}
	f.Add([]byte("cdefghijkl"), []byte("abcdefghijklmnop"), uint64(4))
	f.Fuzz(func(t *testing.T, secret, input []byte, seed uint64) {
		s, err := New([]Pair{{plainSecret, ph}, {string(secret), "PH_2"}})
		if err != nil {
			if len(secret) >= MinSecretLen && strings.Contains(err.Error(), string(secret)) {
				t.Fatalf("error quotes the secret: %v", err)
			}
			return
		}
		want, pls, wantN := reference(s.m, string(input))
		rng := rand.New(rand.NewPCG(seed, seed>>32))
		r := s.Reader(randomChunks(input, rng, 1+int(seed%300)))
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want || r.Count() != int64(wantN) {
			t.Fatalf("Reader = %q (%d), reference %q (%d)", got, r.Count(), want, wantN)
		}
		if rep, n := s.Replace(string(input)); rep != want || n != wantN {
			t.Fatalf("Replace = %q (%d), reference %q (%d)", rep, n, want, wantN)
		}
		// AppendReplace appends to what dst holds, however much room it has.
		prefix := []byte("prefix:")[:seed%8]
		dst := append(make([]byte, 0, int(seed>>8)%(2*len(input)+1)), prefix...)
		if out, n := s.AppendReplace(dst, input); string(out) != string(prefix)+want || n != wantN {
			t.Fatalf("AppendReplace = %q (%d), reference %q (%d)", out, n, want, wantN)
		}
		if s.Contains(input) != (wantN > 0) {
			t.Fatalf("Contains = %v with %d replacements", s.Contains(input), wantN)
		}
		if p, first := firstStart(s.m.a, input), leftmostStart(s.m, string(input)); (p < 0) != (first < 0) || p > first {
			t.Fatalf("firstStart = %d, first form starts at %d", p, first)
		}
		// A Watcher fed the input in pieces first says so in the piece
		// where the earliest-ending form ends.
		end := -1
		for _, nd := range s.m.needles {
			if i := strings.Index(string(input), nd.text); i >= 0 && (end < 0 || i+len(nd.text) < end) {
				end = i + len(nd.text)
			}
		}
		w, seenAt := s.Watcher(), -1
		for from := 0; from < len(input) && seenAt < 0; {
			to := min(len(input), from+1+rng.IntN(1+int(seed%40)))
			if w.Seen(input[from:to]) {
				seenAt = to
				if end <= from || end > to {
					t.Fatalf("Watcher saw a form in [%d,%d); the first ends at %d", from, to, end)
				}
			}
			from = to
		}
		if (seenAt < 0) != (end < 0) {
			t.Fatalf("Watcher saw a form: %v; the first ends at %d", seenAt >= 0, end)
		}
		if nd := needleAt(s.m, want, pls); nd != "" {
			t.Fatalf("output %q holds form %q outside a placeholder", want, nd)
		}
		if !containsAny(string(input), s.m.needles) && !bytes.Equal(got, input) {
			t.Fatalf("clean input changed: %q -> %q", input, got)
		}
	})
}
