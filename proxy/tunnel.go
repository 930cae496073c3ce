package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/tokrun/tokrun/policy"
)

// A tunnel's requests are served one at a time on the goroutine that
// accepted its CONNECT, and each exchange runs start to end on it: read
// the request, decide, send it upstream, write the response. net/http's
// server would read every connection in a second goroutine while a
// request is in flight, and hand each request over between the two; on
// small requests, waking those goroutines costs more than the exchange.
// The connection is read concurrently only while an exchange has waited
// long (watchAfter), to notice a client that went away.

// Tunnel connection states, for Shutdown.
const (
	tunnelIdle   int32 = iota // between requests: Shutdown may close it
	tunnelActive              // an exchange is in flight: it finishes first
	tunnelClosed
)

// watchAfter is how long an exchange runs before the client connection is
// watched for the client going away, which cancels the exchange upstream.
const watchAfter = 50 * time.Millisecond

// lingerTime and lingerBytes bound how long and how much a connection
// closed on an unread request body keeps reading.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 64 << 20
)

// drainBody is how much of a request body left unread is discarded to
// keep the connection; beyond it, the connection closes.
const drainBody = 256 << 10

// aLongTimeAgo is a deadline that makes a blocked read return at once.
var aLongTimeAgo = time.Unix(1, 0)

// tunnelConn is one intercepted tunnel: the TLS server side of a client's
// connection.
type tunnelConn struct {
	s      *Server
	t      *tunnel
	raw    net.Conn
	tc     *tls.Conn
	in     tunnelReader
	br     *bufio.Reader
	bw     *bufio.Writer
	tls    *tls.ConnectionState
	remote string // the client's address
	state  atomic.Int32

	// mu guards what the goroutine reading a request body (to send it
	// upstream) and the watch share with the serving goroutine.
	mu           sync.Mutex
	responding   bool // the response has started: no "100 Continue" any more
	continueSent bool
	armed        bool // the exchange may be watched
	watching     bool // a watch is reading the connection
	inFlight     bool // an exchange is in flight
	cancel       cancelHook
	watch        *time.Timer
	watchDone    chan struct{}

	// Used by the serving goroutine only.
	decided lastDecision
	foreign lastForeign
	okHost  string // the last Host that passed checkHost, if hostOK
	hostOK  bool
}

// tunnelReader is what a tunnel's bufio.Reader reads: the TLS connection,
// bounded while a request's headers are read (limitReader), after any
// byte a watch took.
type tunnelReader struct {
	limitReader
	pending bool // b holds a byte the watch read
	b       [1]byte
}

func (r *tunnelReader) Read(p []byte) (int, error) {
	if r.pending && len(p) > 0 {
		r.pending = false
		p[0] = r.b[0]
		r.n--
		r.got++
		return 1, nil
	}
	return r.limitReader.Read(p)
}

// intercept answers the CONNECT, wraps the client side of the tunnel in
// TLS with a leaf for the CONNECT host, and serves the requests inside
// until the client, a limit or Shutdown ends it.
func (s *Server) intercept(conn net.Conn, t *tunnel) {
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		conn.Close()
		return
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		// The certificate is always the CONNECT host's, whatever the SNI
		// says; a different SNI is refused per request with 421.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cfg.CA.Leaf(t.host) },
	}
	c := &tunnelConn{s: s, t: t, raw: conn, tc: tls.Server(conn, cfg), remote: conn.RemoteAddr().String()}
	if !s.track(c) {
		conn.Close()
		return
	}
	defer s.untrack(c)
	if m := s.cfg.Metrics; m != nil {
		m.ActiveTunnels.Inc()
		defer m.ActiveTunnels.Dec()
	}
	life := time.AfterFunc(s.limits.MaxConnDuration, c.abort)
	defer life.Stop()
	c.serve()
}

func (c *tunnelConn) serve() {
	defer c.tc.Close()
	lim := c.s.limits
	c.tc.SetDeadline(time.Now().Add(lim.ReadHeaderTimeout)) //nolint:errcheck // fails only when closed
	if err := c.tc.Handshake(); err != nil {
		return
	}
	c.tc.SetWriteDeadline(time.Time{}) //nolint:errcheck
	st := c.tc.ConnectionState()
	c.tls = &st
	c.in.r = c.tc
	c.br = bufio.NewReaderSize(&c.in, 4<<10)
	c.bw = bufio.NewWriterSize(c.tc, 4<<10)
	c.watch = time.AfterFunc(time.Hour, c.watchClient)
	c.watch.Stop()
	c.watchDone = make(chan struct{}, 1)
	for first := true; ; first = false {
		if !first {
			c.tc.SetReadDeadline(time.Now().Add(lim.IdleTimeout)) //nolint:errcheck
		}
		if !c.next() {
			return
		}
		c.tc.SetReadDeadline(time.Now().Add(lim.ReadHeaderTimeout)) //nolint:errcheck
		req, reason, why := c.readRequest()
		if req == nil {
			if reason != "" {
				r := &http.Request{Method: "", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Close: true}
				c.writeResponse(r, c.s.refuse(r, c.target(), reason, "", why))
			}
			return
		}
		if !c.exchange(req) {
			return
		}
		// Idle first, then the check: Shutdown sets draining before it
		// closes idle tunnels, so one of the two sees the other.
		c.state.Store(tunnelIdle)
		if c.s.draining.Load() {
			return
		}
	}
}

// abort closes the tunnel and ends its exchange in flight, upstream too
// (an upstream that stops reading a body would otherwise hold it).
func (c *tunnelConn) abort() {
	c.raw.Close()
	c.cancel.cancel()
}

// next waits for the first byte of a request and marks the connection
// active, unless Shutdown closed it first.
func (c *tunnelConn) next() bool {
	for {
		b, err := c.br.Peek(1)
		if err != nil {
			return false
		}
		if b[0] != '\r' && b[0] != '\n' { // stray line ends after a body
			break
		}
		c.br.Discard(1) //nolint:errcheck // the byte is buffered
	}
	return c.state.CompareAndSwap(tunnelIdle, tunnelActive)
}

// readRequest reads and checks a request's headers. On failure it returns
// the reason to refuse with, or none when the connection just ended.
func (c *tunnelConn) readRequest() (*http.Request, policy.Reason, string) {
	c.in.limit(int64(c.s.limits.MaxHeaderBytes) + 4096)
	req, err := http.ReadRequest(c.br)
	over := c.in.n <= 0
	c.in.unlimit()
	switch {
	case over:
		return nil, ReasonHeadersTooLarge, "the request's headers exceed " + strconv.Itoa(c.s.limits.MaxHeaderBytes>>10) + " KiB"
	case err != nil:
		var ne net.Error
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne) {
			return nil, "", ""
		}
		return nil, ReasonBadRequest, "malformed request"
	case req.ProtoMajor != 1:
		return nil, ReasonBadRequest, "only HTTP/1.x is served inside a tunnel"
	}
	// http.ReadRequest has moved the Host header to req.Host.
	if req.ProtoAtLeast(1, 1) && req.Host == "" {
		return nil, ReasonBadRequest, "missing Host header"
	}
	if !httpguts.ValidHostHeader(req.Host) {
		return nil, ReasonBadRequest, "malformed Host header"
	}
	for k, vs := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, ReasonBadRequest, "invalid header name"
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, ReasonBadRequest, "invalid header value"
			}
		}
	}
	req.TLS = c.tls
	req.RemoteAddr = c.remote
	expect := req.Header.Get("Expect")
	if expect != "" && !(strings.EqualFold(expect, "100-continue") && req.ProtoAtLeast(1, 1)) {
		return nil, ReasonBadRequest, "only Expect: 100-continue is supported"
	}
	if req.Body != http.NoBody {
		// A body is read without the header deadline (BodyPeekTimeout
		// bounds the part scanned before dialling).
		c.tc.SetReadDeadline(time.Time{}) //nolint:errcheck
		req.Body = &tunnelBody{c: c, body: req.Body, expect: expect != ""}
	}
	return req, "", ""
}

func (c *tunnelConn) target() target {
	return target{scheme: "https", host: c.t.host, port: c.t.port, client: c.t.client, decided: &c.decided, foreign: &c.foreign}
}

// checkHost is checkTunnelHost, remembering the Host value that passed:
// the TLS server name is the handshake's, and clients send the same Host
// on every request.
func (c *tunnelConn) checkHost(req *http.Request) string {
	if c.hostOK && req.Host == c.okHost && req.URL.Host == "" && req.TLS == c.tls {
		return ""
	}
	why := c.s.checkTunnelHost(req, c.t)
	if why == "" && req.URL.Host == "" && req.TLS == c.tls {
		c.okHost, c.hostOK = req.Host, true
	}
	return why
}

// exchange answers one request and reports whether the connection can
// carry another.
func (c *tunnelConn) exchange(req *http.Request) bool {
	c.mu.Lock()
	c.responding, c.continueSent = false, false
	c.mu.Unlock()
	var resp *http.Response
	t := c.target()
	if why := c.checkHost(req); why != "" {
		resp = c.s.refuse(req, t, ReasonHostMismatch, "", why)
	} else {
		c.mu.Lock()
		c.inFlight = true
		c.mu.Unlock()
		if req.Body == http.NoBody {
			c.arm()
		}
		t.cancel = &c.cancel
		t.readDeadline = c.tc.SetReadDeadline
		resp = c.s.exchange(req, t)
	}
	keep := c.writeResponse(req, resp)
	c.disarm()
	if !c.finishBody(req) {
		c.linger()
		return false
	}
	// A cancelled exchange (a tripwire that fired late, a client gone)
	// ends the tunnel: its hook stays cancelled.
	return keep && !c.cancel.isCancelled()
}

// linger reads and discards what the client still sends, for a moment,
// before the connection is closed with a request body unread: closing on
// unread data resets the connection, and the client could lose the
// response it has not read yet.
func (c *tunnelConn) linger() {
	c.raw.SetReadDeadline(time.Now().Add(lingerTime)) //nolint:errcheck
	io.CopyN(io.Discard, c.raw, lingerBytes)          //nolint:errcheck // ends at the deadline or when the client closes
}

// arm starts watching the connection after watchAfter: the request has
// been read whole, so anything more the client sends is its next request,
// and an end of stream means it went away.
func (c *tunnelConn) arm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inFlight {
		c.armed = true
		c.watch.Reset(watchAfter)
	}
}

// disarm stops the watch, waiting for a read in progress to give up.
func (c *tunnelConn) disarm() {
	c.mu.Lock()
	c.armed, c.inFlight = false, false
	watching := c.watching
	c.mu.Unlock()
	c.watch.Stop()
	if watching {
		c.tc.SetReadDeadline(aLongTimeAgo) //nolint:errcheck
		<-c.watchDone
		c.mu.Lock()
		c.watching = false
		c.mu.Unlock()
	}
}

// watchClient reads the connection while an exchange runs: a byte is kept
// for the next request; an error other than disarm's deadline cancels the
// exchange.
func (c *tunnelConn) watchClient() {
	c.mu.Lock()
	if !c.armed || c.watching || c.br.Buffered() > 0 {
		c.mu.Unlock()
		return
	}
	// Under mu, so that disarm's deadline comes after this one.
	c.tc.SetReadDeadline(time.Time{}) //nolint:errcheck
	c.watching = true
	c.mu.Unlock()
	n, err := c.tc.Read(c.in.b[:])
	c.mu.Lock()
	if n == 1 {
		c.in.pending = true
	}
	var ne net.Error
	cancel := err != nil && !(errors.As(err, &ne) && ne.Timeout()) && c.inFlight
	c.mu.Unlock()
	if cancel {
		c.cancel.cancel()
	}
	c.watchDone <- struct{}{}
}

// finishBody settles a request body the exchange did not read to the end:
// a small rest is discarded, so the connection can be kept; otherwise
// (or if the client still waits for "100 Continue") it is closed.
func (c *tunnelConn) finishBody(req *http.Request) bool {
	b, ok := req.Body.(*tunnelBody)
	if !ok {
		return true
	}
	// The deadline also ends a read the upstream writer may be blocked in.
	c.tc.SetReadDeadline(time.Now().Add(c.s.limits.ReadHeaderTimeout)) //nolint:errcheck
	b.scanning.Lock()
	defer b.scanning.Unlock()
	b.reading.Lock()
	defer b.reading.Unlock()
	b.mu.Lock()
	eof, failed := b.eof, b.err != nil
	b.closed = true
	b.mu.Unlock()
	if eof {
		return true
	}
	c.mu.Lock()
	waiting := b.expect && !c.continueSent
	c.mu.Unlock()
	if waiting || failed {
		return false
	}
	n, err := io.CopyN(io.Discard, b.body, drainBody+1)
	return err == io.EOF && n <= drainBody
}

// bodyDrainable reports whether finishBody may keep the connection, as
// far as can be known before the response: the body was read whole, or
// what is left of it is small.
func (c *tunnelConn) bodyDrainable(req *http.Request) bool {
	b, ok := req.Body.(*tunnelBody)
	if !ok {
		return true
	}
	b.mu.Lock()
	eof, read := b.eof, b.n
	b.mu.Unlock()
	c.mu.Lock()
	waiting := b.expect && !c.continueSent
	c.mu.Unlock()
	return eof || !waiting && req.ContentLength >= 0 && req.ContentLength-read <= drainBody
}

// tunnelBody is a request body inside a tunnel. The goroutine that sends
// it upstream reads it; closing it does not read the rest (finishBody
// decides); the first read sends "100 Continue" when the client waits
// for it.
type tunnelBody struct {
	c      *tunnelConn
	body   io.ReadCloser
	expect bool

	reading  sync.Mutex // held during a read of body
	scanning sync.Mutex // held during a read of scanned, its scan included

	mu     sync.Mutex // guards the fields below, never held during a read
	n      int64      // bytes read
	eof    bool
	err    error
	closed bool
}

func (b *tunnelBody) Read(p []byte) (int, error) {
	b.reading.Lock()
	defer b.reading.Unlock()
	b.mu.Lock()
	closed, eof := b.closed, b.eof
	b.mu.Unlock()
	switch {
	case closed:
		return 0, http.ErrBodyReadAfterClose
	case eof:
		return 0, io.EOF
	}
	if b.expect {
		if err := b.c.sendContinue(); err != nil {
			b.mu.Lock()
			b.err = err
			b.mu.Unlock()
			return 0, err
		}
	}
	n, err := b.body.Read(p)
	b.mu.Lock()
	b.n += int64(n)
	if err == io.EOF {
		b.eof = true
	} else if err != nil {
		b.err = err
	}
	b.mu.Unlock()
	if err == io.EOF {
		b.c.arm()
	}
	return n, err
}

func (b *tunnelBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// scanned returns r, a reader of this body that scans what it reads for
// placeholders, made to hold b.scanning through each read: finishBody,
// which takes it too, then sees a tripwire that read fired (its
// exchange cancelled) before it lets the connection carry another
// request.
func (b *tunnelBody) scanned(r io.ReadCloser) io.ReadCloser {
	return &scannedBody{b: b, ReadCloser: r}
}

type scannedBody struct {
	b *tunnelBody
	io.ReadCloser
}

func (s *scannedBody) Read(p []byte) (int, error) {
	s.b.scanning.Lock()
	defer s.b.scanning.Unlock()
	return s.ReadCloser.Read(p)
}

// sendContinue answers "100 Continue" once, unless the response has begun.
func (c *tunnelConn) sendContinue() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.continueSent || c.responding {
		return nil
	}
	c.continueSent = true
	c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n") //nolint:errcheck // a failed write fails the flush
	return c.bw.Flush()
}

// writeResponse sends resp to the client and reports whether its framing
// lets the connection carry another request.
func (c *tunnelConn) writeResponse(req *http.Request, resp *http.Response) bool {
	defer resp.Body.Close()
	c.mu.Lock()
	c.responding = true
	c.mu.Unlock()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		c.disarm() // the relay reads the connection
		c.relayUpgrade(resp)
		return false
	}
	h := resp.Header
	keep := !req.Close && !resp.Close && !c.s.draining.Load() && c.bodyDrainable(req)
	code := resp.StatusCode
	hasBody := req.Method != http.MethodHead && code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
	chunked := false
	length := h["Content-Length"]
	delete(h, "Content-Length")
	switch {
	case resp.ContentLength >= 0 && code != http.StatusNoContent && code != http.StatusNotModified && code >= 200:
		h["Content-Length"] = contentLength(length, resp.ContentLength)
	case !hasBody:
	case req.ProtoAtLeast(1, 1):
		chunked = true
		h["Transfer-Encoding"] = []string{"chunked"}
	default:
		keep = false // the end of the body is the end of the connection
	}
	switch {
	case !keep:
		h["Connection"] = []string{"close"}
	case !req.ProtoAtLeast(1, 1):
		h["Connection"] = []string{"keep-alive"}
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{time.Now().UTC().Format(http.TimeFormat)}
	}
	bw := c.bw
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	bw.WriteString("HTTP/1.1 ")        //nolint:errcheck // a failed write fails the flush
	bw.WriteString(strconv.Itoa(code)) //nolint:errcheck
	bw.WriteByte(' ')                  //nolint:errcheck
	bw.WriteString(text)               //nolint:errcheck
	bw.WriteString("\r\n")             //nolint:errcheck
	writeHeader(bw, h, nil)
	bw.WriteString("\r\n") //nolint:errcheck
	if !hasBody {
		return bw.Flush() == nil && keep
	}
	stream := resp.ContentLength < 0
	if ab, ok := resp.Body.(*auditedBody); ok {
		stream = ab.stream
	}
	n, err := c.copyBody(resp.Body, chunked, stream)
	if err != nil {
		clientGone(resp.Body)
		// Cut the connection without TLS close_notify, so that even a
		// close-delimited body is seen to be truncated.
		c.raw.Close()
		return false
	}
	if chunked {
		_, err = bw.WriteString("0\r\n\r\n")
	}
	if err == nil {
		err = bw.Flush()
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return false
	}
	return err == nil && keep
}

// contentLength returns the Content-Length header for n: the one the
// response has (the upstream's, or the scrubbed body's), if it already
// says n, which saves formatting it again; otherwise a new one.
func contentLength(have []string, n int64) []string {
	var buf [20]byte
	v := strconv.AppendInt(buf[:0], n, 10)
	if len(have) == 1 && have[0] == string(v) {
		return have
	}
	return []string{string(v)}
}

// writeHeader writes h as header lines, except the names in exclude, as
// Header.Write does (invalid names dropped, CR and LF in values made
// spaces, values trimmed) but in map order: fields with different names
// have no order in HTTP, and sorting them costs a third of writing a
// small response's head.
func writeHeader(bw *bufio.Writer, h http.Header, exclude map[string]bool) {
	for k, vs := range h {
		if exclude[k] || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				v = newlineToSpace.Replace(v)
			}
			bw.WriteString(k)                       //nolint:errcheck // a failed write fails the flush
			bw.WriteString(": ")                    //nolint:errcheck
			bw.WriteString(textproto.TrimString(v)) //nolint:errcheck
			bw.WriteString("\r\n")                  //nolint:errcheck
		}
	}
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

var copyBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// copyBody copies a response body to the client, in chunks if asked,
// flushing each read when the upstream streams. It returns the body bytes
// written and the first error, of either side.
func (c *tunnelConn) copyBody(body io.Reader, chunked, stream bool) (int64, error) {
	buf := copyBufs.Get().(*[32 << 10]byte)
	defer copyBufs.Put(buf)
	bw := c.bw
	var total int64
	for {
		n, rerr := body.Read(buf[:])
		if n > 0 {
			if chunked {
				bw.WriteString(strconv.FormatInt(int64(n), 16)) //nolint:errcheck // a failed write fails the next
				bw.WriteString("\r\n")                          //nolint:errcheck
			}
			if _, err := bw.Write(buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
			if chunked {
				bw.WriteString("\r\n") //nolint:errcheck
			}
			if stream {
				if err := bw.Flush(); err != nil {
					return total, err
				}
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// relayUpgrade finishes a WebSocket handshake and copies frames both ways
// until either side closes.
func (c *tunnelConn) relayUpgrade(resp *http.Response) {
	up, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		return
	}
	bw := c.bw
	bw.WriteString("HTTP/1.1 101 Switching Protocols\r\n") //nolint:errcheck // a failed write fails the flush
	resp.Header.Write(bw)                                  //nolint:errcheck
	bw.WriteString("\r\n")                                 //nolint:errcheck
	if bw.Flush() != nil {
		return
	}
	c.tc.SetReadDeadline(time.Time{}) //nolint:errcheck
	// A relay is idle to Shutdown, as a hijacked connection was to
	// net/http's: it is closed, not waited for.
	c.state.Store(tunnelIdle)
	if c.s.draining.Load() {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, c.br) //nolint:errcheck // either side closing ends the relay
		upgradedConn(up).Close()
	}()
	io.Copy(c.tc, up) //nolint:errcheck
	c.raw.Close()
	<-done
}

// track registers a tunnel for Shutdown and Close, unless they have begun.
func (s *Server) track(c *tunnelConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.tconns[c] = struct{}{}
	s.twg.Add(1)
	return true
}

func (s *Server) untrack(c *tunnelConn) {
	s.mu.Lock()
	delete(s.tconns, c)
	s.mu.Unlock()
	s.twg.Done()
}

// closeTunnels closes every tunnel, or only the idle ones; an active one
// ends after its response (draining is set).
func (s *Server) closeTunnels(idleOnly bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.tconns {
		switch {
		case !idleOnly:
			c.abort()
		case c.state.CompareAndSwap(tunnelIdle, tunnelClosed):
			c.raw.Close()
		}
	}
}

// waitTunnels waits until every tunnel has ended, or ctx has.
func (s *Server) waitTunnels(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.twg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
