package scrub

import (
	"io"
	"sync/atomic"
)

// chunkSize is the most a Reader asks of its source at a time. A Reader
// starts with firstChunk and doubles up to chunkSize while the source keeps
// filling it, so short bodies (most API responses) cost little.
const (
	chunkSize  = 32 << 10
	firstChunk = 2 << 10
)

// Reader streams a source with every form of every secret replaced.
type Reader struct {
	src  io.Reader
	m    *matcher
	b    *buffers // where the buffers came from, if pooled
	s    stream
	win  []byte // held-back bytes, then the latest chunk; capacity chunkSize+maxLen
	out  []byte // decided output not yet returned
	off  int    // read offset in out
	err  error  // the source's error, returned once out is drained
	seen atomic.Int64
}

var _ io.ReadCloser = (*Reader)(nil)

// Reader returns a Reader that scrubs src. Its Close closes src if src is
// an io.Closer.
func (s *Scrubber) Reader(src io.Reader) *Reader {
	r := &Reader{src: src, m: s.m, s: s.stream()}
	if b, ok := s.m.bufs.Get().(*buffers); ok {
		r.win, r.out, r.b = b.win, b.out, b
	} else {
		r.win = make([]byte, 0, firstChunk+s.m.a.maxLen)
	}
	return r
}

// buffers are a Reader's window and output, kept for the next Reader of
// the same Scrubber once one has read its source to the end (most
// responses are small: this saves their allocation).
type buffers struct{ win, out []byte }

// release zeroes the buffers, which held unscrubbed input, and pools them
// unless they grew past the first chunk.
func (r *Reader) release() {
	win, out := r.win[:cap(r.win)], r.out[:cap(r.out)]
	r.win, r.out, r.off = nil, nil, 0
	if cap(win) != firstChunk+r.m.a.maxLen || cap(out) > 2*cap(win) {
		return
	}
	clear(win)
	clear(out)
	b := r.b
	if b == nil {
		b = new(buffers)
	}
	b.win, b.out, r.b = win[:0], out[:0], nil
	r.m.bufs.Put(b)
}

// Read implements io.Reader. It returns the source's error, io.EOF
// included, once everything decided before it has been read.
func (r *Reader) Read(p []byte) (int, error) {
	for r.off == len(r.out) {
		if r.err != nil {
			if r.win != nil {
				r.release()
			}
			return 0, r.err
		}
		if !r.fill() {
			return 0, nil // the source made no progress; neither do we
		}
	}
	n := copy(p, r.out[r.off:])
	r.off += n
	return n, nil
}

// fill reads one chunk from the source and scans it. It reports whether
// the source returned data or an error.
func (r *Reader) fill() bool {
	r.out, r.off = r.out[:0], 0
	room := cap(r.win) - len(r.win)
	n, err := r.src.Read(r.win[len(r.win):cap(r.win)])
	r.win = r.win[:len(r.win)+n]
	if n == room && cap(r.win) < chunkSize+r.s.a.maxLen {
		// The source filled the window: give it more room next time.
		r.win = append(make([]byte, 0, min(2*cap(r.win), chunkSize+r.s.a.maxLen)), r.win...)
	}
	e := more
	switch {
	case err == io.EOF:
		e = flush
	case err != nil:
		e = drop
	}
	r.out = r.s.run(r.out, r.win, e)
	r.seen.Store(r.s.n)
	// Keep only the undecided tail, at the front of the window.
	d := r.s.done
	r.win = r.win[:copy(r.win, r.win[d:])]
	r.s.shift(d)
	r.err = err
	return n > 0 || err != nil
}

// Count returns the number of replacements made so far. It is safe to
// call concurrently with Read.
func (r *Reader) Count() int64 { return r.seen.Load() }

// Close closes the source if it is an io.Closer.
func (r *Reader) Close() error {
	if c, ok := r.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
