package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/tokrun/tokrun/internal/scrub"
)

// Responses to requests that carried a secret are scrubbed of it. A body
// with a known length of at most maxWholeBody is read whole first, then
// scrubbed in one pass and sent with its new Content-Length; any other
// body (longer, of unknown length, an event stream) streams through a
// scrub.Reader per secret and goes to the client chunked.
//
// Reading whole costs memory: maxWholeBody per response in flight, and
// when a secret is replaced, a scrubbed copy (as long as the body, unless
// a placeholder is longer than the form it replaces). It saves the
// streaming readers and the chunked framing, most of what scrubbing cost
// a small response, and it lets an upstream that cuts a body short be
// answered with an error rather than a truncated response.

// maxWholeBody is the longest body, by its Content-Length, that is read
// whole before it is scrubbed. It is the size of the buffer a streamed
// body is copied with, so a response read whole never holds more than
// one streamed does; and most API responses (JSON objects, completions
// that do not stream) are shorter.
const maxWholeBody = 32 << 10

// bodyBufs pool the buffers of bodies read whole, by capacity: 4, 8, 16
// and 32 KiB. A pooled buffer is always zeroed.
var bodyBufs [4]sync.Pool

const minBodyBuf = 4 << 10

// bodyBuf is a buffer of a body held whole. It travels through its pool
// by pointer, so that putting it back allocates nothing.
type bodyBuf struct{ b []byte }

// getBodyBuf returns an empty buffer that holds at least n bytes, pooled
// unless n is beyond the largest pooled size.
func getBodyBuf(n int) *bodyBuf {
	c, size := 0, minBodyBuf
	for size < n {
		c, size = c+1, size*2
	}
	if c >= len(bodyBufs) {
		return &bodyBuf{b: make([]byte, 0, n)}
	}
	if bb, ok := bodyBufs[c].Get().(*bodyBuf); ok {
		return bb
	}
	return &bodyBuf{b: make([]byte, 0, size)}
}

// putBodyBuf zeroes what the buffer holds (an unscrubbed body, perhaps)
// and pools it again, unless appending has replaced its array with one
// of another size.
func putBodyBuf(bb *bodyBuf) {
	clear(bb.b)
	bb.b = bb.b[:0]
	for c, size := 0, minBodyBuf; c < len(bodyBufs); c, size = c+1, size*2 {
		if cap(bb.b) == size {
			bodyBufs[c].Put(bb)
			return
		}
	}
}

// readsWhole reports whether a response body is read whole before it is
// scrubbed: it has a known length of at most maxWholeBody, the response
// has a body at all (not one to HEAD, a 1xx, 204 or 304), and it is not
// an event stream, whose events must reach the client as they come.
func readsWhole(method string, resp *http.Response, eventStream bool) bool {
	code := resp.StatusCode
	return resp.ContentLength >= 0 && resp.ContentLength <= maxWholeBody && !eventStream && hasBody(method, code)
}

// errLongerBody reports an upstream body longer than its Content-Length
// (net/http's reader never returns one; another source might).
var errLongerBody = errors.New("the body is longer than its Content-Length")

// readWhole reads a body of exactly resp.ContentLength bytes, to its end,
// and closes it. A body that ends early or fails returns an error
// (io.ErrUnexpectedEOF for one cut short): it must not be forwarded as if
// it were whole.
func readWhole(resp *http.Response) (*wholeBody, error) {
	defer resp.Body.Close()
	n := int(resp.ContentLength)
	w := &wholeBody{}
	if n > 0 {
		w.bufs[0] = getBodyBuf(n)
		w.bufs[0].b = w.bufs[0].b[:n]
	}
	if err := w.fill(resp.Body); err != nil {
		w.release()
		return nil, err
	}
	w.rest = w.body()
	return w, nil
}

// fill reads the body from src, which must end just after it.
func (w *wholeBody) fill(src io.Reader) error {
	if _, err := io.ReadFull(src, w.body()); err == io.EOF {
		return io.ErrUnexpectedEOF
	} else if err != nil {
		return err
	}
	// Everything announced has come. Reading on to the source's end also
	// lets the upstream connection be pooled again.
	var k int
	var err error
	for k == 0 && err == nil {
		k, err = src.Read(w.probe[:])
	}
	switch {
	case k > 0:
		return errLongerBody
	case err != io.EOF:
		return err
	}
	return nil
}

// wholeBody is a response body held whole in pooled buffers, which go back
// to their pool once it has been read to the end or closed. Like any
// response body, it is read and closed by one goroutine.
type wholeBody struct {
	rest []byte // what is left to read
	// bufs are the body, then a spare for scrubbing into; nil when not
	// taken, or released.
	bufs  [2]*bodyBuf
	probe [1]byte // for the read that checks the source's end
}

var _ io.ReadCloser = (*wholeBody)(nil)

// body returns the body in full.
func (w *wholeBody) body() []byte {
	if w.bufs[0] == nil {
		return nil
	}
	return w.bufs[0].b
}

// scrub replaces sc's secret in the body and returns the number of
// replacements.
func (w *wholeBody) scrub(sc *scrub.Scrubber) int {
	body := w.body()
	if !sc.Contains(body) {
		return 0
	}
	if w.bufs[1] == nil {
		w.bufs[1] = getBodyBuf(len(body))
	}
	// The spare may hold the body as an earlier secret's scrubber found
	// it: leave none of it past the output.
	clear(w.bufs[1].b)
	out, n := sc.AppendReplace(w.bufs[1].b[:0], body)
	w.bufs[1].b = out
	w.bufs[0], w.bufs[1] = w.bufs[1], w.bufs[0]
	w.rest = out
	return n
}

func (w *wholeBody) Read(p []byte) (int, error) {
	n := copy(p, w.rest)
	w.rest = w.rest[n:]
	if len(w.rest) == 0 {
		w.release() // what was left has been copied out
		return n, io.EOF
	}
	return n, nil
}

// Close releases the buffers; the body reads as ended after it.
func (w *wholeBody) Close() error {
	w.rest = nil
	w.release()
	return nil
}

func (w *wholeBody) release() {
	for i, bb := range w.bufs {
		if bb != nil {
			putBodyBuf(bb)
			w.bufs[i] = nil
		}
	}
}

// scrubCounts are the replacements made in one response, by injected
// secret: those made at once (in headers, in a body read whole), and those
// a streamed body's readers make as it is read.
type scrubCounts struct {
	names   []string        // the injected secrets
	made    []int64         // by names' index; nil until a replacement
	readers []*scrub.Reader // by names' index; nil unless the body streams
}

func (c *scrubCounts) add(i, n int) {
	if n == 0 {
		return
	}
	if c.made == nil {
		c.made = make([]int64, len(c.names))
	}
	c.made[i] += int64(n)
}

// of returns the replacements of the i-th secret so far. It may be called
// while the body is being read.
func (c *scrubCounts) of(i int) int64 {
	var n int64
	if c.made != nil {
		n = c.made[i]
	}
	if c.readers != nil {
		n += c.readers[i].Count()
	}
	return n
}

// scrubResponse replaces the injected secrets in the response headers and
// body: at once in a body read whole (a *wholeBody), which then has a new
// Content-Length; otherwise as the body streams, without one.
func (ix *secretIndex) scrubResponse(method string, resp *http.Response, injected []string) (scrubCounts, error) {
	if len(injected) > 1 {
		// Longest first: a secret that holds another (and so do its
		// forms) must be replaced before the one inside it breaks it up.
		injected = slices.Clone(injected)
		slices.SortStableFunc(injected, func(a, b string) int { return ix.lengths[b] - ix.lengths[a] })
	}
	counts := scrubCounts{names: injected}
	whole, isWhole := resp.Body.(*wholeBody)
	// A response without a body (to HEAD, a 304) keeps its length.
	streams := !isWhole && resp.StatusCode != http.StatusSwitchingProtocols && hasBody(method, resp.StatusCode)
	var r io.Reader = resp.Body
	for i, name := range injected {
		sc := ix.scrubbers[name]
		if sc == nil {
			return scrubCounts{}, fmt.Errorf("no scrubber for secret %s", name)
		}
		for k, vs := range resp.Header {
			if sc.ContainsFold(k) {
				// A name cannot be scrubbed (it is case-folded): drop it.
				delete(resp.Header, k)
				counts.add(i, 1)
				continue
			}
			for j, v := range vs {
				if nv, n := sc.Replace(v); n > 0 {
					vs[j] = nv
					counts.add(i, n)
				}
			}
		}
		switch {
		case isWhole:
			counts.add(i, whole.scrub(sc))
		case streams:
			if counts.readers == nil {
				counts.readers = make([]*scrub.Reader, len(injected))
			}
			sr := sc.Reader(r)
			counts.readers[i], r = sr, sr
		}
	}
	switch {
	case isWhole && int64(len(whole.rest)) != resp.ContentLength:
		resp.ContentLength = int64(len(whole.rest))
		resp.Header["Content-Length"] = []string{strconv.Itoa(len(whole.rest))}
	case streams:
		resp.Body = &readCloser{Reader: r, c: resp.Body}
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	}
	return counts, nil
}
