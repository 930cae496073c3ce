package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// upstream is the proxy's HTTP/1.1 client. It writes a request and reads
// its response on the calling goroutine, over connections it pools per
// scheme, host, port, client and secrets injected (upKey). net/http's Transport reads and writes every
// connection in goroutines of their own; on small requests, waking those
// goroutines costs more than the exchange itself. A request body is
// written by a second goroutine, so that an upstream may answer before it
// has read all of it.
//
// Connections are made by dial (the guarded dialer: the address guard runs
// at connect time), TLS is verified against the configured roots, and a
// connection returns to the pool only when its response was read to the
// end, its request was written whole and had no body, and neither side
// asked to close it. The request's own headers (Connection: close
// included) never reach the pool: the caller builds the outgoing request.
//
// A request with a body is sent with "Connection: close", on a connection
// that is not used again. An upstream that does not read a body (many
// ignore one on GET) would otherwise take it for the start of the next
// request on the connection: a client could smuggle a request of its own
// there, which the next request's head, secret included, completes.
// Connections are pooled apart per client and per set of secrets injected
// (upKey), so that a response an upstream sends late or unasked can only
// reach the client that sent requests on that connection, scrubbed of the
// same secrets.
type upstream struct {
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	tls    *tls.Config // ServerName is set per connection
	limits Limits

	mu     sync.Mutex
	idle   map[upKey][]*upConn // most recently used last
	nidle  int
	closed bool
}

// upKey names the upstream a connection talks to, and whose requests it
// carries.
type upKey struct {
	scheme  string // "https" or "http"
	host    string // canonical host, IPv6 without brackets
	port    int
	client  string // the client's name (see Record.Client), its IP for an address
	secrets string // the fingerprints of the secrets injected, comma-separated
}

// maxIdleTotal bounds the idle connections of all hosts together, as
// multiples of Limits.MaxIdleConnsPerHost.
const maxIdleTotal = 16

// max1xx bounds the interim (1xx) responses skipped before the final one.
const max1xx = 5

// errNothingReceived marks a failure before any byte of a response
// arrived: a pooled connection the upstream had already closed.
var errNothingReceived = errors.New("no response")

var errHeadersTooLarge = errors.New("headers exceed the limit")

func newUpstream(dial func(context.Context, string, string) (net.Conn, error), cfg *tls.Config, limits Limits) *upstream {
	return &upstream{dial: dial, tls: cfg, limits: limits, idle: map[upKey][]*upConn{}}
}

// roundTrip sends req to k and returns the response, whose body must be
// closed; cancelling h ends the exchange. A request without a body that
// failed on a pooled connection before anything came back is sent again,
// on another connection, if it is safe to repeat (as net/http's Transport
// does).
func (u *upstream) roundTrip(h *cancelHook, req *http.Request, k upKey) (*http.Response, error) {
	again := replayable(req)
	for {
		// A cancelled exchange takes no connection: each would be closed
		// at once by the hook, and the pool emptied by the retries.
		if h.isCancelled() {
			return nil, context.Canceled
		}
		pc, err := u.get(h, k)
		if err != nil {
			return nil, err
		}
		resp, err := pc.roundTrip(h, req)
		if err == nil {
			return resp, nil
		}
		if !pc.reused || !errors.Is(err, errNothingReceived) || !again {
			return nil, err
		}
	}
}

// replayable reports whether req may be sent twice: no body, and a method
// that is idempotent or marked so (the rule of net/http's Transport).
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, a := req.Header["Idempotency-Key"]
	_, b := req.Header["X-Idempotency-Key"]
	return a || b
}

// get returns a live pooled connection to k, or dials one.
func (u *upstream) get(h *cancelHook, k upKey) (*upConn, error) {
	for {
		u.mu.Lock()
		list := u.idle[k]
		if len(list) == 0 {
			u.mu.Unlock()
			break
		}
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		u.idle[k] = list[:len(list)-1]
		u.nidle--
		u.mu.Unlock()
		if pc.alive() {
			pc.reused = true
			return pc, nil
		}
		pc.close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.set(cancel)
	pc, err := u.dialConn(ctx, k)
	if !h.clear() && err == nil {
		pc.close()
		err = context.Canceled
	}
	return pc, err
}

func (u *upstream) dialConn(ctx context.Context, k upKey) (*upConn, error) {
	raw, err := u.dial(ctx, "tcp", net.JoinHostPort(k.host, strconv.Itoa(k.port)))
	if err != nil {
		return nil, err
	}
	pc := &upConn{u: u, key: k, raw: raw, conn: raw}
	pc.closeFn = pc.close
	pc.probe.init(raw)
	if k.scheme == "https" {
		cfg := u.tls.Clone()
		cfg.ServerName = k.host
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, u.limits.TLSHandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, err
		}
		pc.conn = tc
	}
	pc.lr = limitReader{r: pc.conn}
	pc.br = bufio.NewReader(&pc.lr)
	pc.cw = connWriter{w: pc.conn}
	pc.bw = bufio.NewWriter(&pc.cw)
	return pc, nil
}

// put returns a connection to the pool, or closes it if the pool is full
// or closed.
func (u *upstream) put(pc *upConn) {
	u.mu.Lock()
	list := u.idle[pc.key]
	if u.closed || len(list) >= u.limits.MaxIdleConnsPerHost || u.nidle >= maxIdleTotal*u.limits.MaxIdleConnsPerHost {
		u.mu.Unlock()
		pc.close()
		return
	}
	pc.idleAt = time.Now()
	if pc.timer == nil {
		pc.timer = time.AfterFunc(u.limits.IdleTimeout, func() { u.expire(pc) })
	}
	u.idle[pc.key] = append(list, pc)
	u.nidle++
	u.mu.Unlock()
}

// expire runs when a connection's timer fires: it closes the connection
// if it has been in the pool for Limits.IdleTimeout, and otherwise looks
// again when it could have. The timer is set once and not moved on every
// use, which would cost each request two timer updates.
func (u *upstream) expire(pc *upConn) {
	u.mu.Lock()
	list := u.idle[pc.key]
	i := slices.Index(list, pc)
	if i < 0 { // in use, or closed
		u.mu.Unlock()
		if !pc.closed.Load() {
			pc.timer.Reset(u.limits.IdleTimeout)
		}
		return
	}
	if left := u.limits.IdleTimeout - time.Since(pc.idleAt); left > 0 {
		pc.timer.Reset(left)
		u.mu.Unlock()
		return
	}
	u.idle[pc.key] = append(list[:i], list[i+1:]...)
	list[len(list)-1] = nil
	u.nidle--
	u.mu.Unlock()
	pc.close()
}

// closeIdle closes the pooled connections; connections in use close
// instead of returning to the pool.
func (u *upstream) closeIdle() {
	u.mu.Lock()
	u.closed = true
	var all []*upConn
	for k, list := range u.idle {
		all = append(all, list...)
		delete(u.idle, k)
	}
	u.nidle = 0
	u.mu.Unlock()
	for _, pc := range all {
		pc.timer.Stop()
		pc.close()
	}
}

// upConn is one upstream connection. One exchange at a time uses it.
type upConn struct {
	u      *upstream
	key    upKey
	raw    net.Conn // the TCP connection
	conn   net.Conn // raw, or the TLS client on it
	lr     limitReader
	br     *bufio.Reader
	bw     *bufio.Writer // on cw
	cw     connWriter
	reused bool
	timer  *time.Timer // closes the connection once it has idled for IdleTimeout (expire)
	idleAt time.Time   // when it last went into the pool; guarded by u.mu
	// closeFn is close, bound once: what a cancelled exchange calls.
	closeFn func()
	probe   quietProbe // on raw, for what the upstream sent unasked

	closed atomic.Bool

	// While a request body is written, the writer starts the response
	// header timeout when it has finished, unless the headers came first.
	mu         sync.Mutex
	headerRead bool
}

func (pc *upConn) close() {
	if pc.closed.CompareAndSwap(false, true) {
		pc.raw.Close()
	}
}

// roundTrip writes req and reads the response headers. Interim (1xx)
// responses other than 101 are skipped.
func (pc *upConn) roundTrip(h *cancelHook, req *http.Request) (*http.Response, error) {
	// A client that goes away ends the exchange, as with net/http's
	// Transport: the connection is closed, which fails any read or write.
	h.set(pc.closeFn)
	pc.headerRead = false
	var wrote chan error
	if req.Body != nil && req.Body != http.NoBody {
		req.Close = true // never reused: see upstream
		wrote = make(chan error, 1)
		go pc.write(req, wrote)
	} else {
		err := writeBodiless(pc.bw, req)
		if err == nil {
			err = pc.bw.Flush()
		}
		if err != nil {
			h.clear()
			pc.close()
			return nil, fmt.Errorf("%w: %w", errNothingReceived, err)
		}
		pc.conn.SetReadDeadline(time.Now().Add(pc.u.limits.ResponseHeaderTimeout)) //nolint:errcheck // fails only when closed
	}
	pc.lr.limit(4 * int64(pc.u.limits.MaxHeaderBytes))
	resp, err := http.ReadResponse(pc.br, req)
	for n := 0; err == nil && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols; n++ {
		if n == max1xx {
			err = errors.New("too many interim responses")
			break
		}
		resp, err = http.ReadResponse(pc.br, req)
	}
	got := pc.lr.unlimit()
	pc.mu.Lock()
	pc.headerRead = true
	pc.mu.Unlock()
	pc.conn.SetReadDeadline(time.Time{}) //nolint:errcheck
	if err != nil {
		h.clear()
		pc.close()
		if wrote != nil {
			// The writer fails now that the connection is closed (or ends
			// with the client's body); wait, so that what it read is
			// settled before the caller looks.
			<-wrote
		}
		if got == 0 {
			err = fmt.Errorf("%w: %w", errNothingReceived, err)
		}
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = &upgradedBody{pc: pc, h: h}
		return resp, nil
	}
	b := &upBody{pc: pc, body: resp.Body, h: h, wrote: wrote, reuse: !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		b.finish(nil)
	} else {
		resp.Body = b
	}
	return resp, nil
}

// writeBodiless writes a request without a body as Request.Write would,
// for the requests exchange builds (HTTP/1.1, no Close, no trailers), at
// a fifth of the cost: header lines in map order rather than sorted, and
// no transfer writer. Anything else goes to Request.Write.
func writeBodiless(bw *bufio.Writer, req *http.Request) error {
	if req.Close || req.Trailer != nil || len(req.TransferEncoding) > 0 || req.ProtoMajor != 1 || req.ProtoMinor != 1 ||
		req.Method == "" || req.Host == "" || req.URL == nil || req.URL.Host != req.Host ||
		!httpguts.ValidHostHeader(req.Host) || strings.Contains(req.Host, "%") || req.Method == http.MethodConnect ||
		strings.IndexFunc(req.Method, notTokenRune) >= 0 {
		return req.Write(bw)
	}
	uri := req.URL.RequestURI()
	if strings.IndexFunc(uri, isCTL) >= 0 {
		return req.Write(bw) // which refuses it
	}
	bw.WriteString(req.Method)            //nolint:errcheck // a failed write fails the flush
	bw.WriteByte(' ')                     //nolint:errcheck
	bw.WriteString(uri)                   //nolint:errcheck
	bw.WriteString(" HTTP/1.1\r\nHost: ") //nolint:errcheck
	bw.WriteString(req.Host)              //nolint:errcheck
	bw.WriteString("\r\n")                //nolint:errcheck
	// The User-Agent net/http sends when a request has none.
	ua := "Go-http-client/1.1"
	if vs, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vs) > 0 {
			ua = vs[0]
		}
	}
	if ua != "" {
		bw.WriteString("User-Agent: ")                                   //nolint:errcheck
		bw.WriteString(textproto.TrimString(newlineToSpace.Replace(ua))) //nolint:errcheck
		bw.WriteString("\r\n")                                           //nolint:errcheck
	}
	// No body: a zero length is stated for the methods servers expect
	// one with.
	if req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		bw.WriteString("Content-Length: 0\r\n") //nolint:errcheck
	}
	writeHeader(bw, req.Header, requestHeadExcluded)
	_, err := bw.WriteString("\r\n")
	return err
}

// requestHeadExcluded are the headers a request's head states from its
// fields, not from its Header (as Request.Write does).
var requestHeadExcluded = map[string]bool{"Host": true, "User-Agent": true, "Content-Length": true, "Transfer-Encoding": true, "Trailer": true}

func isCTL(r rune) bool { return r < ' ' || r == 0x7f }

func notTokenRune(r rune) bool { return r >= 0x80 || !httpguts.IsTokenRune(r) }

// write writes a request with a body, then starts the response header
// timeout. If reading the client's body failed, the request cannot end:
// the connection is closed. If writing to the upstream failed, the
// upstream stopped reading, and may have answered first (a 413, say)
// and closed: the connection is left to the reader, which gets that
// answer or the connection's error.
func (pc *upConn) write(req *http.Request, wrote chan<- error) {
	err := req.Write(pc.bw)
	if err == nil {
		err = pc.bw.Flush()
	}
	if err != nil && pc.cw.err == nil {
		pc.close()
	} else {
		pc.mu.Lock()
		if !pc.headerRead {
			pc.conn.SetReadDeadline(time.Now().Add(pc.u.limits.ResponseHeaderTimeout)) //nolint:errcheck
		}
		pc.mu.Unlock()
	}
	wrote <- err
}

// alive reports whether a pooled connection can carry another request:
// nothing is buffered, and the upstream has neither closed it nor sent
// anything unasked (which would be read as the next request's response).
func (pc *upConn) alive() bool {
	return pc.br.Buffered() == 0 && !pc.closed.Load() && pc.probe.quietNow()
}

// connWriter writes to an upstream connection and keeps the first error:
// Request.Write reports a failed write as a failed read of the body.
type connWriter struct {
	w   io.Writer
	err error
}

func (c *connWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// upBody is a response body. When it has been read to the end, its
// connection returns to the pool; closed before that, the connection is
// closed.
type upBody struct {
	pc    *upConn
	body  io.ReadCloser
	h     *cancelHook // the exchange's, which closes pc when cancelled
	wrote chan error  // nil if the request had no body
	reuse bool        // neither the upstream nor the request (a body) asked to close
	err   error       // set when finished
}

func (b *upBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.finish(err)
	}
	return n, err
}

func (b *upBody) Close() error {
	if b.err == nil {
		b.finish(net.ErrClosed)
	}
	return nil
}

// finish releases the connection once; err is io.EOF (or nil for an
// empty body) when the body was read whole.
func (b *upBody) finish(err error) {
	if err == nil {
		err = io.EOF
	}
	b.err = err
	pc := b.pc
	if err == io.EOF && b.wrote != nil {
		// The response ended whole: the writer may still be sending the
		// rest of the body (scanned for placeholders as it is read).
		// It gets a moment to end before the connection, never reused
		// after a body, closes under it.
		b.waitWriter()
	}
	reuse := err == io.EOF && b.reuse && b.h.clear()
	if !reuse {
		b.h.clear()
		pc.close()
	}
	b.body.Close()
	if reuse {
		pc.u.put(pc)
	}
}

// waitWriter waits briefly for the writer of the request body to end.
func (b *upBody) waitWriter() {
	select {
	case <-b.wrote:
		return
	default:
	}
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-b.wrote:
	case <-t.C:
	}
}

// upgradedBody is the connection after 101 Switching Protocols: reads
// return what the upstream sends, writes go to it. It is never pooled.
type upgradedBody struct {
	pc *upConn
	h  *cancelHook
}

func (b *upgradedBody) Read(p []byte) (int, error)  { return b.pc.br.Read(p) }
func (b *upgradedBody) Write(p []byte) (int, error) { return b.pc.conn.Write(p) }
func (b *upgradedBody) Close() error {
	b.h.clear()
	b.pc.close()
	return nil
}

// limitReader counts what is read from a connection and, while limited,
// bounds it: headers, of a response upstream or a request in a tunnel,
// may not grow memory without bound.
type limitReader struct {
	r       io.Reader
	limited bool
	n       int64 // bytes left while limited
	got     int64 // bytes read since limit
}

func (l *limitReader) limit(n int64) { l.limited, l.n, l.got = true, n, 0 }

func (l *limitReader) unlimit() int64 {
	l.limited = false
	return l.got
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.limited {
		if l.n <= 0 {
			return 0, errHeadersTooLarge
		}
		if int64(len(p)) > l.n {
			p = p[:l.n]
		}
	}
	n, err := l.r.Read(p)
	l.got += int64(n)
	l.n -= int64(n)
	return n, err
}

// cancelHook ends an exchange from another goroutine: a client that went
// away, a tunnel's lifetime, Close. What the exchange is waiting on (a
// dial, an upstream connection) registers the function that ends it. A
// cancelled hook stays cancelled: whatever registers later runs at once.
// It costs no allocation per exchange, unlike a context and AfterFunc.
type cancelHook struct {
	mu        sync.Mutex
	f         func()
	cancelled bool
}

// set registers f, replacing what was registered; if the hook was
// cancelled, f runs at once.
func (h *cancelHook) set(f func()) {
	h.mu.Lock()
	if h.cancelled {
		h.mu.Unlock()
		f()
		return
	}
	h.f = f
	h.mu.Unlock()
}

// clear unregisters the function and reports whether the hook has not
// been cancelled.
func (h *cancelHook) clear() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.f = nil
	return !h.cancelled
}

// isCancelled reports whether cancel has run.
func (h *cancelHook) isCancelled() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cancelled
}

// cancel runs the registered function, once.
func (h *cancelHook) cancel() {
	h.mu.Lock()
	f := h.f
	h.f, h.cancelled = nil, true
	h.mu.Unlock()
	if f != nil {
		f()
	}
}
