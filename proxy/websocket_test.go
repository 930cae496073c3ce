package proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokrun/tokrun/internal/scrub"
	"github.com/tokrun/tokrun/internal/syncbuf"
)

// wsFrame is a client frame: masked with key, FIN set if fin.
func wsFrame(fin bool, opcode byte, key [4]byte, payload string) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = binary.BigEndian.AppendUint16(append(f, 0x80|126), uint16(n))
	default:
		f = binary.BigEndian.AppendUint64(append(f, 0x80|127), uint64(n))
	}
	f = append(f, key[:]...)
	for i := range len(payload) {
		f = append(f, payload[i]^key[i&3])
	}
	return f
}

// wsRecorder is an upstream that accepts a WebSocket handshake and keeps
// every byte the client sends after it, and the extensions it was offered.
type wsRecorder struct {
	got        syncbuf.Buffer
	extensions chan []string
	done       chan struct{}
}

func newWSRecorder() *wsRecorder {
	return &wsRecorder{extensions: make(chan []string, 1), done: make(chan struct{})}
}

func (u *wsRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.extensions <- r.Header.Values("Sec-Websocket-Extensions")
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	defer close(u.done)
	// With headers only the proxy may send, which must not pass.
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Tokrun-Decision: deny\r\nProxy-Authenticate: Basic\r\n\r\n")
	brw.Flush()
	io.Copy(&u.got, brw) // until the proxy closes
}

// A placeholder of a secret foreign to the host, sent in the client's
// WebSocket frames after the upgrade, sets off the tripwire: the frame
// bytes that would complete it never reach the upstream, the relay ends,
// and the tripwire is counted, reported and audited. Split across
// fragments, masked with different keys, written in pieces that cut
// headers and payloads, it is still found. The client's offer of
// compression, which would hide it, is not passed on. Frames before it
// pass. In a tunnel and over plain http.
func TestWebSocketTripwire(t *testing.T) {
	half := len(placeholder) / 2
	first := wsFrame(true, 1, [4]byte{1, 2, 3, 4}, "hello, a harmless frame")
	// A text message in two fragments, the placeholder cut between them,
	// and a ping between the fragments (it is not part of the message).
	stream := slices.Concat(first,
		wsFrame(false, 1, [4]byte{0x5a, 0xa5, 0x0f, 0xf0}, strings.Repeat("z", 300)+"key="+placeholder[:half]),
		wsFrame(true, 9, [4]byte{3, 3, 3, 3}, "ping"),
		wsFrame(true, 0, [4]byte{9, 8, 7, 6}, placeholder[half:]+" and more"))
	// The offset of the frame byte that carries the placeholder's last.
	completes := len(stream) - len(" and more") - 1
	for _, via := range []string{"tunnel", "plain"} {
		t.Run(via, func(t *testing.T) {
			up := newWSRecorder()
			var mu sync.Mutex
			var events []TripwireEvent
			onTrip := func(_ *harness, c *Config) {
				c.OnTripwire = func(e TripwireEvent) {
					mu.Lock()
					events = append(events, e)
					mu.Unlock()
				}
			}
			var h *harness
			var conn io.ReadWriter
			handshake := "GET /ws HTTP/1.1\r\nHost: open.example.com\r\n"
			if via == "tunnel" {
				h = newHarness(t, tripPolicy, up, onTrip)
				tc := h.tunnel(t, "open.example.com")
				defer tc.Close()
				tc.SetDeadline(time.Now().Add(20 * time.Second))
				conn = tc
			} else {
				plain := httptest.NewServer(up)
				defer plain.Close()
				_, port, _ := net.SplitHostPort(plain.Listener.Addr().String())
				h = newHarness(t, plainRule(tripPolicy, port), nil, onTrip)
				c, err := net.Dial("tcp", h.proxyURL.Host)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				conn = c
				handshake = "GET http://plain.example.com:" + port + "/ws HTTP/1.1\r\nHost: plain.example.com:" + port + "\r\n"
			}
			io.WriteString(conn, handshake+"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"+
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != 101 {
				t.Fatalf("handshake: %v %v", resp, err)
			}
			if ext := <-up.extensions; len(ext) != 0 {
				t.Errorf("the upstream was offered extensions %q", ext)
			}
			conn.Write(first)
			waitUntil(t, "the harmless frame upstream", func() bool { return up.got.String() == string(first) })
			// The rest in pieces of 7 bytes: headers and payloads cut.
			for rest := stream[len(first):]; len(rest) > 0; {
				n := min(7, len(rest))
				if _, err := conn.Write(rest[:n]); err != nil {
					break // the proxy has closed the connection
				}
				rest = rest[n:]
				time.Sleep(time.Millisecond)
			}
			if _, err := io.Copy(io.Discard, br); err != nil && !isClosedErr(err) {
				t.Fatalf("the relay did not end: %v", err)
			}
			<-up.done
			got := up.got.String()
			if !strings.HasPrefix(string(stream), got) || len(got) > completes {
				t.Fatalf("the upstream got %d of the %d bytes, through the one completing the placeholder (%d)", len(got), len(stream), completes)
			}
			if v := testutil.ToFloat64(h.metrics.Tripwires.WithLabelValues("api")); v != 1 {
				t.Errorf("tripwires counted: %v", v)
			}
			mu.Lock()
			if len(events) != 1 || events[0].Where != "websocket" || events[0].Secret != "api" {
				t.Errorf("tripwire events %+v", events)
			}
			mu.Unlock()
			rec := h.waitAudit(t, `"tripwire":"api"`)
			if !strings.Contains(rec, `"path":"/ws"`) || !strings.Contains(rec, "WebSocket frame") {
				t.Errorf("audit record %s", rec)
			}
			h.checkNoSecret()
		})
	}
}

// isClosedErr reports whether err is how a read ends on a connection the
// other side closed or reset.
func isClosedErr(err error) bool {
	var ne net.Error
	return strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "closed") || (errors.As(err, &ne) && !ne.Timeout())
}

// wsScan follows frames of every length form, masked or not, fed in any
// pieces, and refuses a frame that uses an extension.
func TestWSScan(t *testing.T) {
	dets := []tripDetector{{secret: "api", d: mustScrubber(t, placeholder)}}
	unmasked := func(payload string) []byte {
		f := wsFrame(true, 2, [4]byte{}, payload)
		f[1] &^= 0x80
		return append(f[:len(f)-len(payload)-4], payload...)
	}
	for _, tc := range []struct {
		name   string
		stream []byte
		want   error // nil, errWSExtension, or a tripwire
	}{
		{"7-bit", wsFrame(true, 1, [4]byte{1, 2, 3, 4}, "x"+placeholder), &tripwireError{}},
		{"16-bit", wsFrame(true, 1, [4]byte{1, 2, 3, 4}, strings.Repeat("a", 1000)+placeholder), &tripwireError{}},
		{"64-bit", wsFrame(true, 2, [4]byte{7, 7, 7, 7}, strings.Repeat("b", 70000)+placeholder), &tripwireError{}},
		{"unmasked", unmasked(placeholder), &tripwireError{}},
		{"empty frames between halves", slices.Concat(wsFrame(false, 1, [4]byte{1}, placeholder[:5]),
			wsFrame(true, 9, [4]byte{2}, ""), wsFrame(true, 0, [4]byte{3}, placeholder[5:])), &tripwireError{}},
		{"clean", append(wsFrame(true, 1, [4]byte{1, 2, 3, 4}, placeholder[:10]), wsFrame(true, 1, [4]byte{4, 3, 2, 1}, strings.Repeat("c", 200))...), nil},
		{"masking hides nothing", wsFrame(true, 1, [4]byte{0xff, 0, 0xff, 0}, strings.Repeat("d", 3)+placeholder), &tripwireError{}},
		{"a ping between the fragments", slices.Concat(wsFrame(false, 1, [4]byte{1, 2, 3, 4}, "key="+placeholder[:10]),
			wsFrame(true, 9, [4]byte{5, 6, 7, 8}, "x"), wsFrame(true, 0, [4]byte{9, 9, 9, 9}, placeholder[10:])), &tripwireError{}},
		{"a pong between the fragments", slices.Concat(wsFrame(false, 2, [4]byte{1}, placeholder[:3]),
			wsFrame(true, 10, [4]byte{2}, strings.Repeat("p", 125)), wsFrame(true, 0, [4]byte{3}, placeholder[3:])), &tripwireError{}},
		{"in a ping", wsFrame(true, 9, [4]byte{1, 1, 1, 1}, placeholder), &tripwireError{}},
		{"in a close frame", wsFrame(true, 8, [4]byte{1, 1, 1, 1}, "\x03\xe8"+placeholder), &tripwireError{}},
		{"halves in a message and a ping", slices.Concat(wsFrame(false, 1, [4]byte{1}, placeholder[:10]),
			wsFrame(true, 9, [4]byte{2}, placeholder[10:]), wsFrame(true, 0, [4]byte{3}, "end")), &tripwireError{}},
		{"halves in two pings, a message between", slices.Concat(wsFrame(true, 9, [4]byte{1}, placeholder[:7]),
			wsFrame(true, 1, [4]byte{2}, "between"), wsFrame(true, 10, [4]byte{3}, placeholder[7:])), &tripwireError{}},
		{"compressed", append([]byte{0xc1}, wsFrame(true, 1, [4]byte{}, "zz")[1:]...), errWSExtension},
		{"reserved data opcode", wsFrame(true, 3, [4]byte{}, "zz"), errWSExtension},
		{"reserved control opcode", wsFrame(true, 0xb, [4]byte{}, "zz"), errWSExtension},
		{"fragmented ping", wsFrame(false, 9, [4]byte{}, "zz"), errWSControl},
		{"long ping", wsFrame(true, 9, [4]byte{}, strings.Repeat("l", 126)), errWSControl},
	} {
		for _, piece := range []int{1, 3, 1 << 20} {
			var trips int
			w := newWSScan(dets, func(*tripwireError) { trips++ })
			var err error
			for rest := tc.stream; len(rest) > 0 && err == nil; {
				n := min(piece, len(rest))
				err = w.scan(rest[:n])
				rest = rest[n:]
			}
			var hit *tripwireError
			switch {
			case tc.want == nil && err != nil,
				(tc.want == errWSExtension || tc.want == errWSControl) && err != tc.want,
				tc.want != nil && tc.want != errWSExtension && tc.want != errWSControl && (!errors.As(err, &hit) || hit.secret != "api" || trips != 1):
				t.Errorf("%s in pieces of %d: %v (%d trips), want %v", tc.name, piece, err, trips, tc.want)
			}
			if err != nil && w.scan([]byte("more")) != err {
				t.Errorf("%s: the error does not stick", tc.name)
			}
		}
	}
}

func mustScrubber(t *testing.T, placeholder string) *scrub.Scrubber {
	t.Helper()
	s, err := scrub.New([]scrub.Pair{{Secret: placeholder, Placeholder: "PH"}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWebSocketClosedByClientIsNoError: a relay the client ends (here by
// closing its connection, which closes the upstream's) is a whole
// exchange; its audit record carries no error.
func TestWebSocketClosedByClientIsNoError(t *testing.T) {
	up := newWSRecorder()
	h := newHarness(t, tripPolicy, up)
	tc := h.tunnel(t, "open.example.com")
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(tc, "GET /ws-closed HTTP/1.1\r\nHost: open.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	if resp.Header.Get("X-Tokrun-Decision") != "" || resp.Header.Get("Proxy-Authenticate") != "" {
		t.Errorf("the upstream's switch passed on the proxy's own headers: %v", resp.Header)
	}
	frame := wsFrame(true, 1, [4]byte{1, 2, 3, 4}, "hello")
	tc.Write(frame)
	waitUntil(t, "the frame upstream", func() bool { return up.got.String() == string(frame) })
	tc.Close()
	<-up.done
	rec := h.waitAudit(t, `"path":"/ws-closed"`)
	if strings.Contains(rec, `"error"`) {
		t.Errorf("a relay the client closed is recorded with an error: %s", rec)
	}
}
