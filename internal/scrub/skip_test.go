package scrub

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// The skip scan agrees with the reference on text made of near-misses of
// a repetitive secret, where its walks would cost more than the text's
// length; it hands over to the automaton there, which must still find
// the first form.
func TestSkipScanHandsOver(t *testing.T) {
	secret := strings.Repeat("abc", 14)
	s := mustNew(t, Pair{secret, ph})
	// The hex form is "616263" 14 times. Each near-miss holds 13 of them:
	// a walk from every one fails at the X.
	clean := strings.Repeat(strings.Repeat("616263", 13)+"6162X", 50)
	in := clean + "<" + secret + ">" + clean
	if _, sure := skipFirstStart(s.m.a, clean); sure {
		t.Fatal("the skip scan did not give up on near-misses: the test no longer covers the hand-over")
	}
	if s.Contains([]byte(clean)) {
		t.Fatal("near-misses taken for the secret")
	}
	if p, first := firstStart(s.m.a, in), leftmostStart(s.m, in); p < 0 || p > first {
		t.Fatalf("firstStart = %d, first form at %d", p, first)
	}
	want, _, wantN := reference(s.m, in)
	if got, n := s.Replace(in); got != want || n != wantN || n != 1 {
		t.Fatalf("Replace: %d replacements, output differs from the reference: %v", n, got != want)
	}
}

// Text made of forms, their prefixes and suffixes, and runs of the
// secret's own alphabet is scrubbed as the reference does, and firstStart
// never passes the first form: for short and long secrets, random and
// repetitive ones (whose forms share many pairs of bytes, so the skip scan
// walks often). Forms longer than 256 bytes use windows of 256, so that
// shifts fit a byte.
func TestSkipScanNearMisses(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		alphabet string
		length   int
	}{
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 8},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 40},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 300},
		{"ab", 12},
		{"ab", 64},
		{"a/+=", 30},
		{"0123456789abcdef", 33},
	} {
		secret := make([]byte, tc.length)
		for i := range secret {
			secret[i] = tc.alphabet[rng.IntN(len(tc.alphabet))]
		}
		s := mustNew(t, Pair{string(secret), ph})
		if tc.length == 300 && s.m.a.gramLen != 256 {
			t.Fatalf("gramLen %d, want 256", s.m.a.gramLen)
		}
		fs := forms(string(secret))
		for round := range 100 {
			var b strings.Builder
			for b.Len() < 3000 {
				f := fs[rng.IntN(len(fs))]
				switch rng.IntN(5) {
				case 0:
					b.WriteString(f)
				case 1, 2:
					b.WriteString(f[:rng.IntN(len(f))])
				case 3:
					b.WriteString(f[rng.IntN(len(f)):])
				default:
					for range rng.IntN(20) {
						b.WriteByte(tc.alphabet[rng.IntN(len(tc.alphabet))])
					}
				}
			}
			in := b.String()
			want, _, wantN := reference(s.m, in)
			if got, n := s.AppendReplace(nil, []byte(in)); string(got) != want || n != wantN {
				t.Fatalf("%d-byte secret of %q, round %d: %d replacements, reference %d", tc.length, tc.alphabet, round, n, wantN)
			}
			if p, first := firstStart(s.m.a, in), leftmostStart(s.m, in); (p < 0) != (first < 0) || p > first {
				t.Fatalf("%d-byte secret of %q, round %d: firstStart = %d, first form at %d", tc.length, tc.alphabet, round, p, first)
			}
		}
	}
}

// After a walk that fails, the window moves by one byte only: a form may
// start just after the walk's start, where the same pair of bytes ends the
// window again.
func TestSkipScanStepsOne(t *testing.T) {
	s := mustNew(t, Pair{"abcdefghzzz", ph}) // the pair "zz" ends the shortest form's window twice
	for _, in := range []string{"Qabcdefghzzz", "Qabcdefghzzz.", "zzabcdefghzzz"} {
		if got, n := s.Replace(in); n != 1 || !strings.HasSuffix(strings.TrimSuffix(got, "."), ph) {
			t.Errorf("Replace(%q) = %q, %d", in, got, n)
		}
	}
}
