package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokrun/tokrun/policy"
)

// target is where a request goes: the canonical host decided on, and the
// client that sent it.
type target struct {
	scheme string
	host   string
	port   int
	client string
	// cancel, if not nil, ends the exchange when the client goes away;
	// otherwise the request's context does.
	cancel *cancelHook
	// readDeadline, if not nil, sets the client connection's read
	// deadline (inside tunnels), to bound how long a body may trickle.
	readDeadline func(time.Time) error
	// decided, if not nil, keeps the last decision (a tunnel's: its
	// scheme, host and port are fixed).
	decided *lastDecision
	// foreign, if not nil, keeps the last host's foreign detectors.
	foreign *lastForeign
}

// lastForeign is a secret index's foreign detectors for a host: the same
// for every request of a tunnel, and a public-suffix lookup per wildcard
// binding to find.
type lastForeign struct {
	ix   *secretIndex
	host string
	dets []tripDetector
}

// foreignDets is ix.foreign(host), as found last time for the same index
// and host.
func (t target) foreignDets(ix *secretIndex, host string) []tripDetector {
	if c := t.foreign; c != nil && c.ix == ix && c.host == host {
		return c.dets
	}
	dets := ix.foreign(host)
	if t.foreign != nil {
		*t.foreign = lastForeign{ix: ix, host: host, dets: dets}
	}
	return dets
}

// lastDecision is a policy's decision for a method and a raw path. A
// client mostly repeats its requests, and a repeated one is decided as
// before while the decision holds (Policy.Holds: the decision depends on
// the time through its secrets' expiry, and otherwise only on the policy
// and the request).
type lastDecision struct {
	pol          *policy.Policy
	method, path string
	d            policy.Decision
}

// decide decides r with pol, as it did last time for the same request.
func (t target) decide(pol *policy.Policy, method, rawPath string) policy.Decision {
	if c := t.decided; c != nil && c.pol == pol && c.method == method && c.path == rawPath && pol.Holds(&c.d) {
		return c.d
	}
	d := pol.Decide(policy.Request{Scheme: t.scheme, Host: t.host, Port: t.port, Method: method, Path: rawPath})
	if t.decided != nil {
		*t.decided = lastDecision{pol: pol, method: method, path: rawPath, d: d}
	}
	return d
}

// hook returns t.cancel, or a hook that the end of r's context cancels.
func (t target) hook(r *http.Request) *cancelHook {
	if t.cancel != nil {
		return t.cancel
	}
	h := new(cancelHook)
	context.AfterFunc(r.Context(), h.cancel)
	return h
}

// exchangePlain handles an absolute-form http:// request (no tunnel).
func (s *Server) exchangePlain(r *http.Request) *http.Response {
	client := clientOf(r)
	if r.URL.Scheme != "http" {
		return s.refuse(r, target{client: client}, ReasonBadRequest, "", "only http:// URLs are proxied directly; use CONNECT for https")
	}
	host, port := r.URL.Hostname(), 80
	if p := r.URL.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return s.refuse(r, target{client: client}, ReasonBadRequest, "", "bad port")
		}
		port = n
	}
	t := target{scheme: "http", host: host, port: port, client: client}
	t.readDeadline, _ = r.Context().Value(readDeadlineKey{}).(func(time.Time) error)
	return s.exchange(r, t)
}

// exchange decides one request and, if allowed, sends it upstream with
// the secrets injected. It always returns a response: upstream failures
// and denials become responses with reason headers.
func (s *Server) exchange(r *http.Request, t target) *http.Response {
	start := s.cfg.Now()
	rawPath, ok := requestPath(r)
	if !ok {
		return s.refuse(r, t, ReasonBadRequest, "", "request target must be a path or an absolute URL")
	}
	pol := s.cfg.Policy()
	d := t.decide(pol, r.Method, rawPath)
	if d.Allow {
		d = checkOverrides(pol, r, t, rawPath, d)
	}
	rec := Record{Client: t.client, Method: d.Method, Scheme: d.Scheme, Host: d.Host, Port: d.Port, Path: d.Path, Rule: d.Rule, Reason: string(d.Reason)}
	ix := s.secrets(pol)
	dets := t.foreignDets(ix, d.Host)
	if trip := checkHead(r, dets); trip != nil {
		return s.tripped(r, rec, trip, start)
	}
	if trip := checkDecided(d.Host, d.Path, r.URL.RawQuery, dets); trip != nil {
		return s.tripped(r, rec, trip, start)
	}
	if !d.Allow {
		s.count(false, d.Rule, d.Reason)
		resp := denial(r, d.Reason, d.Rule, d.Explanation)
		rec.Decision, rec.Status = "deny", resp.StatusCode
		s.audit(rec, start)
		return resp
	}

	// The outgoing request is built from scratch: the canonical host and
	// normalised path that were decided, and the client's headers (this
	// handler owns them) with hop-by-hop headers removed. A client's
	// "Connection: close" does not end pooled upstream connections (the
	// upstream client closes those that carried a body).
	upgrade := isWebSocketUpgrade(r.Header)
	u := &url.URL{Scheme: d.Scheme, Host: authority(d.Host, d.Port, d.Scheme), Opaque: d.Path, RawQuery: r.URL.RawQuery}
	out := &http.Request{
		Method: d.Method, URL: u, Host: u.Host, Header: r.Header,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Body: http.NoBody, ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding,
		Trailer: r.Trailer,
	}
	stripHopByHop(out.Header)
	if upgrade {
		out.Header.Set("Connection", "Upgrade")
		out.Header.Set("Upgrade", "websocket")
	}
	out.Trailer = nil // trailers are neither scanned nor needed: never forwarded
	if upgrade && r.Body != nil && r.Body != http.NoBody {
		// A WebSocket handshake has no content; after the switch, the
		// connection carries frames, and a body would be read twice.
		return s.refuse(r, t, ReasonBadRequest, d.Rule, "a WebSocket upgrade request cannot carry a body")
	}
	if len(d.Inject) > 0 && upgrade {
		// Frames after a protocol switch cannot be scrubbed.
		return s.refuse(r, t, ReasonUpgradeWithSecret, d.Rule, "rule "+d.Rule+" injects a secret, and WebSocket traffic cannot be scanned for it; use a rule without secrets for WebSocket endpoints")
	}
	if upgrade && len(dets) > 0 {
		// The client's frames are watched for foreign placeholders, which
		// compression (permessage-deflate) would hide: offer no extension.
		delete(out.Header, "Sec-Websocket-Extensions")
	}
	var injected []string
	var fps string // the secrets' fingerprints: what the pool keys connections by
	for i, inj := range d.Inject {
		out.Header.Set(inj.Header, inj.Secret.HeaderValue())
		injected = append(injected, inj.Name)
		if i == 0 {
			fps = inj.Fingerprint
		} else {
			fps += "," + inj.Fingerprint
		}
	}
	rec.Secrets = injected
	if len(d.Inject) > 0 {
		// Responses to requests that carried a secret are scanned for it:
		// ask for them whole and unencoded.
		out.Header.Set("Accept-Encoding", "identity")
		delete(out.Header, "Range")
		delete(out.Header, "If-Range")
	}
	in := &countingReader{r: r.Body}
	var trip *tripReader
	if r.Body != nil && r.Body != http.NoBody {
		out.Body = in
		if len(dets) > 0 {
			// Scan the start of the body before dialling, so a small body
			// with a foreign placeholder never leaves; the rest is
			// scanned as it streams, and the request is cut off on a hit.
			trip = newTripReader(in, dets)
			if t.readDeadline != nil {
				t.readDeadline(s.cfg.Now().Add(s.limits.BodyPeekTimeout)) //nolint:errcheck // best effort
			}
			head, err := io.ReadAll(io.LimitReader(trip, peekBody))
			if t.readDeadline != nil {
				t.readDeadline(time.Time{}) //nolint:errcheck
			}
			if trip.hit.Load() != nil {
				rec.Secrets = nil
				return s.tripped(r, rec, trip.hit.Load(), start)
			}
			if err != nil {
				return s.refuse(r, t, ReasonBadRequest, d.Rule, "could not read the request body")
			}
			out.Body = &readCloser{Reader: io.MultiReader(bytes.NewReader(head), trip), c: trip}
			if tb, ok := r.Body.(*tunnelBody); ok {
				out.Body = tb.scanned(out.Body)
			}
		}
	}

	up := s.public
	if d.AllowPrivate {
		up = s.private
	}
	sent := s.cfg.Now()
	hook := t.hook(r)
	resp, err := up.roundTrip(hook, out, upKey{scheme: d.Scheme, host: d.Host, port: d.Port, client: poolClient(t.client), secrets: fps})
	var late *lateTrip
	if trip != nil {
		hit := trip.hit.Load()
		if err == nil {
			late = &lateTrip{}
			hit = trip.afterResponse(func(hit *tripwireError) { s.trippedLate(hook, late, hit, rec, start) })
		}
		if hit != nil {
			if err == nil {
				resp.Body.Close()
			}
			rec.Secrets = nil
			return s.tripped(r, rec, hit, start)
		}
	}
	if m := s.cfg.Metrics; m != nil && err == nil {
		m.upstreamDuration(d.Rule, s.cfg.Now().Sub(sent))
	}
	if err != nil {
		// The client's error text can quote upstream bytes (a malformed
		// header echoing the secret): record only the public explanation.
		reason, why := classifyUpstreamError(err, d.Host, d.Port)
		if in.failed.Load() {
			// The client's body failed (malformed chunks, a client
			// gone or too slow): not the upstream's failure.
			reason, why = ReasonBadRequest, "could not read the request body from the client"
		}
		return s.fail(r, rec, reason, why, in.n.Load(), start)
	}
	if m := s.cfg.Metrics; m != nil {
		for _, name := range injected {
			m.injected(d.Rule, name)
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols && !upgrade {
		resp.Body.Close()
		return s.failLate(r, rec, late, ReasonUpstreamError, "the upstream switched protocols without being asked", in.n.Load(), start)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		stripHopByHop(resp.Header)
		// The upstream connection's end is not the client's: the
		// proxy frames the response itself (and a request with a body
		// always closes its upstream connection, see upstream).
		resp.Close = false
		return s.respond(r, resp, ix, rec, in, late, hook, start)
	}
	// A switch keeps its Connection and Upgrade, never the proxy's own
	// headers: an upstream could forge its verdicts.
	for name := range resp.Header {
		if strings.HasPrefix(name, "Proxy-") || strings.HasPrefix(name, "X-Tokrun-") {
			delete(resp.Header, name)
		}
	}
	if len(dets) == 0 {
		return s.respond(r, resp, ix, rec, in, late, hook, start)
	}
	// The upgrade's frames are its body: a placeholder in them is a
	// tripwire that fires late, as in a body after the upstream answered.
	late = &lateTrip{}
	frames := newWSScan(dets, func(hit *tripwireError) { s.trippedLate(hook, late, hit, rec, start) })
	resp = s.respond(r, resp, ix, rec, in, late, hook, start)
	if ab, ok := resp.Body.(*auditedBody); ok {
		ab.frames = frames
	}
	return resp
}

// respond readies an allowed upstream response for the client: the
// secrets injected (rec.Secrets) are scrubbed from it, and the audit
// record and metrics are written when its body is finished.
func (s *Server) respond(r *http.Request, resp *http.Response, ix *secretIndex, rec Record, in *countingReader, late *lateTrip, hook *cancelHook, start time.Time) *http.Response {
	injected := rec.Secrets
	eventStream := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	ab := &auditedBody{s: s, stream: resp.ContentLength < 0 || eventStream, in: in, late: late, start: start}
	if len(injected) > 0 {
		if err := decodeForScrubbing(rec.Method, resp); err != nil {
			resp.Body.Close()
			return s.failLate(r, rec, late, ReasonUnscannable, err.Error(), in.n.Load(), start)
		}
		if readsWhole(rec.Method, resp, eventStream) {
			// Nothing has been sent to the client yet: a body the
			// upstream cuts short is answered as the upstream's failure.
			body, err := readWhole(resp)
			if err != nil {
				reason, why := classifyUpstreamError(err, rec.Host, rec.Port)
				return s.failLate(r, rec, late, reason, why, in.n.Load(), start)
			}
			resp.Body = body
		}
		var err error
		if ab.scrubs, err = ix.scrubResponse(rec.Method, resp, injected); err != nil {
			resp.Body.Close()
			return s.failLate(r, rec, late, ReasonUnscannable, "the response cannot be scanned for the injected secret", in.n.Load(), start)
		}
	}
	s.count(true, rec.Rule, policy.Reason(rec.Reason))
	rec.Decision, rec.Status = "allow", resp.StatusCode
	ab.rc, ab.rec, ab.hook = resp.Body, rec, hook
	resp.Body = ab
	return resp
}

// decodeForScrubbing makes a response to a request that carried a secret
// scannable: a gzip body (sent although identity was asked for) is
// decompressed for the client; any other encoding is refused, since an
// echo of the secret inside it could not be found. Every Content-Encoding
// line counts (two lines are one list), and the errors quote nothing the
// upstream sent: an upstream can echo the secret into any header.
func decodeForScrubbing(method string, resp *http.Response) error {
	var codings []string
	for _, v := range resp.Header.Values("Content-Encoding") {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	switch {
	case len(codings) == 0:
		return nil
	case !hasBody(method, resp.StatusCode):
		return nil // nothing to decode: the headers are scrubbed as any
	case len(codings) > 1 || codings[0] != "gzip" && codings[0] != "x-gzip":
		return errUnscannableEncoding
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		return errors.New("the upstream sent a gzip response that does not decompress")
	}
	resp.Body = &readCloser{Reader: zr, c: resp.Body}
	resp.Header.Del("Content-Encoding")
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	return nil
}

var errUnscannableEncoding = errors.New("the upstream answered with a Content-Encoding other than gzip, which cannot be scanned for the injected secret")

// hasBody tells whether a response to method with status code can carry
// a body.
func hasBody(method string, code int) bool {
	return method != http.MethodHead && code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

// fail answers an allowed request that could not be completed: the
// upstream failed, or its response cannot be scanned. rec keeps the
// request's rule and the secrets that were sent; why goes to the client
// and to the audit record's error field, so it must hold public facts only.
func (s *Server) fail(r *http.Request, rec Record, reason policy.Reason, why string, bytesIn int64, start time.Time) *http.Response {
	resp := denial(r, reason, rec.Rule, why)
	s.count(false, rec.Rule, reason)
	rec.Decision, rec.Reason, rec.Status, rec.Error, rec.BytesIn = "deny", string(reason), resp.StatusCode, why, bytesIn
	s.audit(rec, start)
	return resp
}

// lateTrip is a tripwire that fired after the upstream began its answer.
type lateTrip struct {
	mu       sync.Mutex
	hit      *tripwireError
	reported bool // the request's audit record is written
}

// poolClient is the part of a client's name its upstream connections are
// pooled under: a client known only by its address (an unauthenticated
// TCP listener) is known by its IP, so that its next connections find the
// upstream connections its earlier ones left. Token names are never
// "unix", an IP address or hold ":" (New refuses them).
func poolClient(client string) string {
	if i := strings.LastIndexByte(client, ':'); i >= 0 {
		return client[:i]
	}
	return client
}

// trippedLate handles a placeholder found in a request body after the
// upstream began its answer (it answers before reading the whole body):
// the body was cut off before the placeholder left; now the exchange is
// ended, which cuts the response off too, and the tripwire is reported at
// once. The request's audit record, written when its response ends, keeps
// the decision (allow) and names the tripwire and the cut; if it was
// written already, a record of its own says deny, tripwire.
func (s *Server) trippedLate(hook *cancelHook, late *lateTrip, hit *tripwireError, rec Record, start time.Time) {
	late.mu.Lock()
	late.hit = hit
	reported := late.reported
	late.mu.Unlock()
	// Counted and reported before the exchange ends, so that whoever sees
	// the request end (and its record) sees the tripwire too.
	if m := s.cfg.Metrics; m != nil {
		m.Tripwires.WithLabelValues(hit.secret).Inc()
	}
	if s.cfg.OnTripwire != nil {
		s.cfg.OnTripwire(TripwireEvent{Secret: hit.secret, Where: hit.where, Host: rec.Host, Client: rec.Client})
	}
	hook.cancel()
	if reported {
		rec.Decision, rec.Reason, rec.Tripwire = "deny", string(ReasonTripwire), hit.secret
		rec.Error = "the rest of the request body was cut off: " + hit.Error()
		s.audit(rec, start)
	}
}

// take marks the request's record as written now, and returns the
// tripwire that fired late, if one did (l may be nil).
func (l *lateTrip) take() *tripwireError {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reported = true
	return l.hit
}

// failLate is fail for a request whose body is still scanned (late): a
// tripwire that fired late, before anything went to the client, is the
// answer instead (trippedLate counted and reported it already).
func (s *Server) failLate(r *http.Request, rec Record, late *lateTrip, reason policy.Reason, why string, bytesIn int64, start time.Time) *http.Response {
	if hit := late.take(); hit != nil {
		rec.Secrets = nil
		return s.refuseTripped(r, rec, hit, start)
	}
	return s.fail(r, rec, reason, why, bytesIn, start)
}

// tripped refuses a request that carried a placeholder to a foreign host.
func (s *Server) tripped(r *http.Request, rec Record, trip *tripwireError, start time.Time) *http.Response {
	if m := s.cfg.Metrics; m != nil {
		m.Tripwires.WithLabelValues(trip.secret).Inc()
	}
	resp := s.refuseTripped(r, rec, trip, start)
	if s.cfg.OnTripwire != nil {
		s.cfg.OnTripwire(TripwireEvent{Secret: trip.secret, Where: trip.where, Host: rec.Host, Client: rec.Client})
	}
	return resp
}

// refuseTripped answers and audits a tripwire's refusal.
func (s *Server) refuseTripped(r *http.Request, rec Record, trip *tripwireError, start time.Time) *http.Response {
	resp := denial(r, ReasonTripwire, rec.Rule, trip.Error())
	s.count(false, rec.Rule, ReasonTripwire)
	rec.Decision, rec.Reason, rec.Status, rec.Tripwire = "deny", string(ReasonTripwire), resp.StatusCode, trip.secret
	s.audit(rec, start)
	return resp
}

// refuse answers a request the proxy cannot even decide.
func (s *Server) refuse(r *http.Request, t target, reason policy.Reason, rule, why string) *http.Response {
	start := s.cfg.Now()
	resp := denial(r, reason, rule, why)
	s.count(false, rule, reason)
	s.audit(Record{Client: t.client, Decision: "deny", Reason: string(reason), Method: r.Method, Scheme: t.scheme, Host: t.host, Port: t.port, Status: resp.StatusCode}, start)
	return resp
}

// classifyUpstreamError maps an upstream client error to a reason and a public
// explanation (no internal addresses).
func classifyUpstreamError(err error, host string, port int) (policy.Reason, string) {
	hp := authority(host, port, "")
	var ne net.Error
	switch {
	case errors.Is(err, ErrForbiddenAddress):
		return ReasonPrivateAddress, hp + " resolves to a private, loopback, link-local or metadata address; a rule must set unsafe_allow_private_network to reach it"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return ReasonUpstreamTimeout, "timed out waiting for " + hp
	default:
		return ReasonUpstreamError, "could not complete the request to " + hp
	}
}

// requestPath returns the path of the request target exactly as the
// client sent it, without the query, for the policy to normalise.
func requestPath(r *http.Request) (string, bool) {
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	if !strings.HasPrefix(uri, "/") {
		_, rest, ok := strings.Cut(uri, "://")
		if !ok {
			return "", false
		}
		i := strings.IndexAny(rest, "/?#")
		if i < 0 || rest[i] != '/' {
			return "/", true
		}
		uri = rest[i:]
	}
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		uri = uri[:i]
	}
	return uri, true
}

// authority formats host:port, bracketing IPv6 and omitting the scheme's
// default port.
func authority(host string, port int, scheme string) string {
	if (scheme == "https" && port == 443) || (scheme == "http" && port == 80) {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// write sends a response to the client: headers, then the body, flushed
// as it arrives when the upstream streams (no length, or SSE), and a
// WebSocket upgrade relayed both ways.
func (s *Server) write(w http.ResponseWriter, r *http.Request, resp *http.Response) {
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		s.relayUpgrade(w, resp)
		return
	}
	if resp.ContentLength >= 0 && h.Get("Content-Length") == "" && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	if resp.Close {
		h.Set("Connection", "close")
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	var dst io.Writer = w
	stream := resp.ContentLength < 0
	if ab, ok := resp.Body.(*auditedBody); ok {
		stream = ab.stream
	}
	if stream {
		dst = &flushWriter{w: w, rc: http.NewResponseController(w)}
	}
	if _, err := io.Copy(dst, resp.Body); err != nil {
		clientGone(resp.Body)
		// A body cut short (an upstream gone, a tripwire) must not look
		// whole: end the connection without the body's last chunk.
		panic(http.ErrAbortHandler)
	}
}

type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

// relayUpgrade finishes a WebSocket handshake and copies frames both ways.
func (s *Server) relayUpgrade(w http.ResponseWriter, resp *http.Response) {
	up, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\n"); err != nil {
		return
	}
	if err := resp.Header.Write(brw); err != nil {
		return
	}
	if _, err := brw.WriteString("\r\n"); err != nil || brw.Flush() != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(up, brw) //nolint:errcheck
		upgradedConn(up).Close()
	}()
	io.Copy(conn, up) //nolint:errcheck
	conn.Close()
	wg.Wait()
}

// upgradedConn returns what closes the upstream connection of an upgraded
// response body without finishing the body: the goroutine relaying the
// client's frames uses it to end the relay, while the body's reader still
// counts what it read (the audit record is written once, when the body
// itself is closed).
func upgradedConn(body io.ReadWriteCloser) io.Closer {
	if ab, ok := body.(*auditedBody); ok {
		return ab.rc
	}
	return body
}

// peekBody is how much of a request body is scanned for placeholders
// before anything is sent upstream.
const peekBody = 64 << 10

// readCloser reads from one reader and closes another (the source a
// wrapping reader such as a decompressor or scrubber reads from).
type readCloser struct {
	io.Reader
	c io.Closer
}

func (b *readCloser) Close() error { return b.c.Close() }

// countingReader counts a request body. The upstream client's writer
// reads it while the response may already be arriving: n is atomic.
type countingReader struct {
	r      io.ReadCloser
	n      atomic.Int64
	failed atomic.Bool // reading from the client failed (not at the end, not after Close)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	if err != nil && err != io.EOF && !errors.Is(err, http.ErrBodyReadAfterClose) {
		c.failed.Store(true)
	}
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// auditedBody counts response bytes and, once the body is finished or
// closed, writes the exchange's audit record and its scrub metrics.
type auditedBody struct {
	rc     io.ReadCloser
	stream bool // the upstream streams: flush each write to the client
	n      int64
	// cut: reading the upstream's body failed before its end; gone: the
	// client went away first. Neither is set after an upgrade, which
	// either side ends by closing.
	cut, gone bool
	hook      *cancelHook // the exchange's: cancelled when the client goes away (or a tripwire fires late)
	once      sync.Once

	s      *Server
	rec    Record
	start  time.Time
	in     *countingReader // the request body, for its size
	late   *lateTrip       // nil if the request body is not scanned
	scrubs scrubCounts
	frames *wsScan // after an upgrade, if the client's frames are watched
}

func (b *auditedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	switch {
	case err == io.EOF:
		b.finish()
	case err != nil && b.rec.Status != http.StatusSwitchingProtocols:
		// A client going away ends the upstream request too.
		if b.hook != nil && b.hook.isCancelled() {
			b.gone = true
		} else {
			b.cut = true
		}
	}
	return n, err
}

// clientGone notes that copying the body to the client failed: unless
// reading it did, the client went away before its end.
func clientGone(body io.Reader) {
	if b, ok := body.(*auditedBody); ok && !b.cut && b.rec.Status != http.StatusSwitchingProtocols {
		b.gone = true
	}
}

// Write sends what the client sends after an upgrade to the upstream,
// unless its frames are watched and these bytes may not pass.
func (b *auditedBody) Write(p []byte) (int, error) {
	w, ok := b.rc.(io.Writer)
	if !ok {
		return 0, errors.New("body is not writable")
	}
	if b.frames != nil {
		if err := b.frames.scan(p); err != nil {
			return 0, err
		}
	}
	return w.Write(p)
}

func (b *auditedBody) Close() error {
	err := b.rc.Close()
	b.finish()
	return err
}

func (b *auditedBody) finish() { b.once.Do(b.report) }

func (b *auditedBody) report() {
	rec := &b.rec
	rec.BytesIn, rec.BytesOut = b.in.n.Load(), b.n
	if hit := b.late.take(); hit != nil {
		rec.Tripwire = hit.secret
		rec.Error = "cut off: " + hit.Error()
	} else if b.cut {
		// Fixed text: the reader's error can quote what the upstream sent.
		rec.Error = "the response was cut short: the upstream's body failed or ended early"
	} else if b.gone {
		rec.Error = "the client went away before the response's end"
	}
	for i, name := range b.scrubs.names {
		c := b.scrubs.of(i)
		rec.Scrubbed += int(c)
		if m := b.s.cfg.Metrics; m != nil && c > 0 {
			m.Scrubs.WithLabelValues(name).Add(float64(c))
		}
	}
	b.s.audit(*rec, b.start)
}

// count updates the decision metric.
func (s *Server) count(allow bool, rule string, reason policy.Reason) {
	switch m := s.cfg.Metrics; {
	case m == nil:
	case allow && reason == policy.Allowed:
		m.allowed(rule)
	case allow:
		m.Decisions.WithLabelValues("allow", rule, string(reason)).Inc()
	default:
		m.Decisions.WithLabelValues("deny", rule, string(reason)).Inc()
	}
}

// audit completes and writes one record.
func (s *Server) audit(rec Record, start time.Time) {
	if s.cfg.Audit == nil && s.cfg.OnRecord == nil {
		return
	}
	now := s.cfg.Now()
	if start.IsZero() {
		start = now
	}
	rec.Time = start.UTC()
	rec.DurationMS = float64(now.Sub(start).Microseconds()) / 1000
	if s.cfg.OnRecord != nil {
		s.cfg.OnRecord(rec)
	}
	if s.cfg.Audit == nil {
		return
	}
	if err := s.cfg.Audit.Write(rec); err != nil {
		s.auditFailed(err)
	}
}

// auditFailed logs and counts records that could not be written.
func (s *Server) auditFailed(err error) {
	n := LostRecords(err)
	s.log.Error("audit write failed", "records", n, "err", err)
	if m := s.cfg.Metrics; m != nil {
		m.AuditErrors.Add(float64(n))
	}
}
