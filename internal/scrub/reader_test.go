package scrub

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// TestSplitAnywhere feeds every form with the stream cut at every pair of
// positions, one byte at a time, and in random chunks.
func TestSplitAnywhere(t *testing.T) {
	s := mustNew(t, Pair{specialSecret, ph}, Pair{plainSecret, "PH_2"})
	rng := rand.New(rand.NewPCG(1, 2))
	for _, secret := range []string{plainSecret, specialSecret} {
		for name, form := range encodedForms(secret) {
			in := []byte("{\"echo\":\"" + form + "\"}")
			want, _, _ := reference(s.m, string(in))
			if strings.Contains(want, form) {
				t.Fatalf("%s: reference kept the form", name)
			}
			for i := 0; i <= len(in); i++ {
				for j := i; j <= len(in); j++ {
					if got, n := scrubAll(t, s, splitReader(in, i, j)); got != want || n != 1 {
						t.Fatalf("%s cut at %d,%d: %q (%d), want %q", name, i, j, got, n, want)
					}
				}
			}
			if got, _ := scrubAll(t, s, iotest.OneByteReader(bytes.NewReader(in))); got != want {
				t.Fatalf("%s one byte at a time: %q, want %q", name, got, want)
			}
			if got, _ := scrubAll(t, s, iotest.HalfReader(bytes.NewReader(in))); got != want {
				t.Fatalf("%s half reader: %q, want %q", name, got, want)
			}
			for range 20 {
				if got, _ := scrubAll(t, s, randomChunks(in, rng, 7)); got != want {
					t.Fatalf("%s random chunks: %q, want %q", name, got, want)
				}
			}
		}
	}
}

// TestRandomBodies scrubs random text with forms of several secrets
// inserted at random places, streamed and whole, and checks that none
// survives.
func TestRandomBodies(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_%\\\"{}:, \n"
	var pairs []Pair
	var all [][]string
	for i := range 4 {
		secret := make([]byte, 8+rng.IntN(60))
		for j := range secret {
			secret[j] = alphabet[rng.IntN(len(alphabet))]
		}
		pairs = append(pairs, Pair{string(secret), "PH_" + string(rune('a'+i))})
		var fs []string
		for _, f := range encodedForms(string(secret)) {
			fs = append(fs, f)
		}
		// Embedded base64 too.
		for _, f := range forms(string(secret)) {
			fs = append(fs, "Basic "+f)
		}
		all = append(all, fs)
	}
	s := mustNew(t, pairs...)
	for round := range 200 {
		var b strings.Builder
		inserted := 0
		for b.Len() < 20000 {
			if rng.IntN(10) == 0 {
				fs := all[rng.IntN(len(all))]
				b.WriteString(fs[rng.IntN(len(fs))])
				inserted++
			} else {
				b.WriteByte(alphabet[rng.IntN(len(alphabet))])
			}
		}
		in := b.String()
		want, _, wantN := reference(s.m, in)
		got, n := scrubAll(t, s, randomChunks([]byte(in), rng, 1+rng.IntN(4096)))
		if got != want || int(n) != wantN {
			t.Fatalf("round %d: output differs from reference (%d vs %d replacements)", round, n, wantN)
		}
		if out, n := s.AppendReplace(nil, []byte(in)); string(out) != want || n != wantN {
			t.Fatalf("round %d: AppendReplace differs from reference (%d vs %d replacements)", round, n, wantN)
		}
		if out, n := s.Replace(in); out != want || n != wantN {
			t.Fatalf("round %d: Replace differs from reference (%d vs %d replacements)", round, n, wantN)
		}
		if wantN < inserted {
			t.Fatalf("round %d: %d replacements for %d inserted forms", round, wantN, inserted)
		}
		for _, nd := range s.m.needles {
			if strings.Contains(got, nd.text) {
				t.Fatalf("round %d: output still holds a form", round)
			}
		}
		for _, p := range pairs {
			if decodesTo(got, p.Secret[:8]) && !decodesTo(in, p.Secret[:8]) {
				t.Fatalf("round %d: scrubbing created a decodable secret", round)
			}
		}
	}
}

// TestNoMatchIsIdentity checks that text holding no form passes unchanged,
// including prefixes of forms held back at a chunk's end.
func TestNoMatchIsIdentity(t *testing.T) {
	s := mustNew(t, Pair{plainSecret, ph})
	rng := rand.New(rand.NewPCG(3, 4))
	var b strings.Builder
	for b.Len() < 1<<16 {
		f := forms(plainSecret)[rng.IntN(len(forms(plainSecret)))]
		k := rng.IntN(len(f))
		for containsAny(f[:k], s.m.needles) { // the unpadded base64 is a prefix of the padded one
			k--
		}
		b.WriteString(f[:k])
		b.WriteString("\n")
	}
	in := b.String()
	if got, n := scrubAll(t, s, randomChunks([]byte(in), rng, 100)); got != in || n != 0 {
		t.Fatalf("clean text changed (%d replacements)", n)
	}
	if got, n := s.AppendReplace(nil, []byte(in)); string(got) != in || n != 0 || s.Contains([]byte(in)) {
		t.Fatalf("AppendReplace changed clean text (%d replacements)", n)
	}
}

// sourceError is what the failing source returns.
var errSource = errors.New("connection reset")

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestErrors(t *testing.T) {
	s := mustNew(t, Pair{plainSecret, ph})
	prefix := plainSecret[:len(plainSecret)-1]
	for _, tc := range []struct {
		name string
		src  io.Reader
		want string
		err  error
	}{
		{"error after clean text", &failingReader{[]byte("hello world"), errSource}, "hello world", errSource},
		{"error after a match", &failingReader{[]byte("a " + plainSecret), errSource}, "a " + ph, errSource},
		{"error drops a partial secret", &failingReader{[]byte("a " + prefix), errSource}, "a ", errSource},
		{"error after match and partial", &failingReader{[]byte(plainSecret + " " + prefix), errSource}, ph + " ", errSource},
		{"EOF flushes a partial secret", &failingReader{[]byte("a " + prefix), io.EOF}, "a " + prefix, nil},
		{"data with EOF", iotest.DataErrReader(strings.NewReader("x" + plainSecret)), "x" + ph, nil},
		{"data with error", &dataErrReader{[]byte("x" + plainSecret + "y"), errSource}, "x" + ph + "y", errSource},
		{"timeout", iotest.TimeoutReader(strings.NewReader("abc")), "a", iotest.ErrTimeout}, // one byte, then the error
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Reader(iotest.OneByteReader(tc.src))
			if _, ok := tc.src.(*dataErrReader); ok {
				r = s.Reader(tc.src)
			}
			got, err := io.ReadAll(r)
			if string(got) != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
			if _, err2 := r.Read(make([]byte, 10)); tc.err != nil && err2 != tc.err {
				t.Fatalf("error not sticky: %v", err2)
			}
		})
	}
}

// dataErrReader returns all its data together with its error.
type dataErrReader struct {
	data []byte
	err  error
}

func (d *dataErrReader) Read(p []byte) (int, error) {
	n := copy(p, d.data)
	d.data = d.data[n:]
	if len(d.data) == 0 {
		return n, d.err
	}
	return n, nil
}

// stallReader returns (0, nil) forever after its data.
type stallReader struct{ data []byte }

func (s *stallReader) Read(p []byte) (int, error) {
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestNoProgressPassesThrough(t *testing.T) {
	s := mustNew(t, Pair{plainSecret, ph})
	r := s.Reader(&stallReader{[]byte("ok " + plainSecret[:5])})
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	if string(buf[:n]) != "ok " || err != nil {
		t.Fatalf("first read: %q, %v", buf[:n], err)
	}
	if n, err := r.Read(buf); n != 0 || err != nil {
		t.Fatalf("stalled read: %d, %v", n, err)
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestClose(t *testing.T) {
	s := mustNew(t, Pair{plainSecret, ph})
	c := &closeRecorder{Reader: strings.NewReader("x")}
	if err := s.Reader(c).Close(); err != nil || !c.closed {
		t.Fatalf("Close: %v, closed=%v", err, c.closed)
	}
	if err := s.Reader(strings.NewReader("x")).Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCountConcurrent reads Count while another goroutine reads (run with
// -race).
func TestCountConcurrent(t *testing.T) {
	s := mustNew(t, Pair{plainSecret, ph})
	body := strings.Repeat("x "+plainSecret+" ", 5000)
	r := s.Reader(iotest.HalfReader(strings.NewReader(body)))
	done := make(chan error)
	go func() {
		_, err := io.Copy(io.Discard, r)
		done <- err
	}()
	for last := int64(0); ; {
		select {
		case err := <-done:
			if err != nil || r.Count() != 5000 {
				t.Fatalf("copy: %v, count %d", err, r.Count())
			}
			return
		default:
			c := r.Count()
			if c < last {
				t.Fatalf("count went back from %d to %d", last, c)
			}
			last = c
		}
	}
}

// bodySource generates n bytes of text in which forms of secret and long
// prefixes of them (which the Reader must hold back) keep ending chunks.
type bodySource struct {
	rng    *rand.Rand
	left   int
	forms  []string
	emits  int
	chunks int
}

func (b *bodySource) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(len(p), b.left, 1+b.rng.IntN(64<<10))]
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	if f := b.forms[b.rng.IntN(len(b.forms))]; len(p) > len(f) {
		switch b.rng.IntN(4) {
		case 0: // a whole form somewhere
			at := b.rng.IntN(len(p) - len(f))
			copy(p[at:], f)
			b.emits++
		case 1: // a whole form at the end
			copy(p[len(p)-len(f):], f)
			b.emits++
		case 2: // the longest possible held-back tail
			copy(p[len(p)-len(f)+1:], f)
		}
	}
	b.left -= len(p)
	b.chunks++
	return len(p), nil
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// TestMemoryBound streams 100 MiB and checks after every Read that the
// Reader holds back at most maxHold bytes and that its buffers never grow
// past one chunk (the window starts small and doubles up to it).
func TestMemoryBound(t *testing.T) {
	size := 100 << 20
	if testing.Short() {
		size = 8 << 20
	}
	s := mustNew(t, Pair{plainSecret, ph}, Pair{specialSecret, "PH_2"})
	var fs []string
	for _, n := range s.m.needles {
		fs = append(fs, n.text)
	}
	src := &bodySource{rng: rand.New(rand.NewPCG(5, 6)), left: size, forms: fs}
	r := s.Reader(src)
	winCap := chunkSize + s.m.a.maxLen
	// Output per chunk: the chunk, at worst every 8 bytes becoming a
	// placeholder of up to 11 bytes, plus the held tail.
	outMax := (chunkSize+s.maxHold())*11/8 + 1
	var w countingWriter
	buf := make([]byte, 32<<10)
	maxHeld := 0
	for {
		n, err := r.Read(buf)
		_, _ = w.Write(buf[:n])
		maxHeld = max(maxHeld, len(r.win))
		if len(r.win) > s.maxHold() || cap(r.win) > winCap || cap(r.out) > outMax {
			t.Fatalf("held %d (max %d), window cap %d (was %d), out cap %d (max %d)",
				len(r.win), s.maxHold(), cap(r.win), winCap, cap(r.out), outMax)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if maxHeld != s.maxHold() {
		t.Errorf("never held the maximum: %d of %d bytes", maxHeld, s.maxHold())
	}
	if r.Count() < int64(src.emits) || src.emits == 0 {
		t.Errorf("%d replacements for %d forms", r.Count(), src.emits)
	}
	if w.n < int64(size)/2 {
		t.Errorf("wrote only %d bytes", w.n)
	}
}

// A Reader that read its source to the end passes its buffers, zeroed, to
// the next Reader: the pool never holds unscrubbed input.
func TestFinishedReaderBuffersAreZeroed(t *testing.T) {
	s := mustNew(t, Pair{plainSecret, ph})
	in := strings.Repeat("echo "+plainSecret+" ", 40)
	// sync.Pool may drop what is put (it does at random under -race).
	for range 50 {
		if got, _ := scrubAll(t, s, strings.NewReader(in)); strings.Contains(got, plainSecret) {
			t.Fatal("secret not scrubbed")
		}
		b, ok := s.m.bufs.Get().(*buffers)
		if !ok {
			continue
		}
		if len(b.win) != 0 || len(b.out) != 0 || cap(b.out) == 0 {
			t.Fatalf("pooled buffers: len %d and %d, cap of out %d", len(b.win), len(b.out), cap(b.out))
		}
		for _, c := range append(b.win[:cap(b.win)], b.out[:cap(b.out)]...) {
			if c != 0 {
				t.Fatal("a pooled buffer holds input")
			}
		}
		return
	}
	t.Fatal("a finished Reader never pooled its buffers")
}
