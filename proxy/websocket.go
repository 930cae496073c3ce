package proxy

import (
	"encoding/binary"
	"errors"

	"github.com/tokrun/tokrun/internal/scrub"
)

// wsScan follows the frames a WebSocket client sends after the upgrade,
// unmasks their payloads and watches them for the placeholders of secrets
// foreign to the host, as a request body is watched: the frame bytes that
// would complete a placeholder are never passed on. Payloads are watched
// as three streams, so that a placeholder split across frames is caught
// however the receiver joins them: the data frames' (a message's
// fragments, between which control frames may come), the control
// frames', and all of them in the order sent.
// Compressed frames could hide a placeholder: the proxy removes the
// client's extension offer from the handshake, and a frame that uses an
// extension anyway (RSV bits set, a reserved opcode) ends the relay, as
// does a malformed control frame.
type wsScan struct {
	dets []tripDetector
	ws   []*scrub.Watcher // over the data frames' payloads
	cws  []*scrub.Watcher // over the control frames' payloads
	aws  []*scrub.Watcher // over all payloads
	// onTrip reports a placeholder found; it runs once.
	onTrip func(*tripwireError)

	hdr    [14]byte // the frame header being read
	nh     int      // its bytes so far
	left   uint64   // payload bytes left in the current frame
	masked bool
	ctl    bool // the current frame is a control frame
	key    [4]byte
	ko     int   // offset into key of the next payload byte
	err    error // sticky: the relay ends
}

var (
	errWSExtension = errors.New("a WebSocket frame uses an extension, and its payload cannot be scanned for placeholders")
	errWSControl   = errors.New("a WebSocket control frame is fragmented or longer than 125 bytes")
)

func newWSScan(dets []tripDetector, onTrip func(*tripwireError)) *wsScan {
	w := &wsScan{dets: dets, onTrip: onTrip}
	for _, d := range dets {
		w.ws = append(w.ws, d.d.Watcher())
		w.cws = append(w.cws, d.d.Watcher())
		w.aws = append(w.aws, d.d.Watcher())
	}
	return w
}

// scan follows p, the client's next bytes. It returns an error if they
// must not be passed on: a tripwire (reported to onTrip first), or a
// frame it cannot scan. After an error every call returns it.
func (w *wsScan) scan(p []byte) error {
	if w.err != nil {
		return w.err
	}
	for len(p) > 0 {
		if w.left > 0 {
			n := int(min(w.left, uint64(len(p))))
			if err := w.payload(p[:n]); err != nil {
				w.err = err
				return err
			}
			w.left -= uint64(n)
			p = p[n:]
			continue
		}
		w.hdr[w.nh] = p[0]
		w.nh++
		p = p[1:]
		if w.nh < 2 || w.nh < wsHeaderLen(w.hdr[1]) {
			continue
		}
		if err := w.frameStart(); err != nil {
			w.err = err
			return err
		}
		n, off := uint64(w.hdr[1]&0x7f), 2
		switch n {
		case 126:
			n, off = uint64(binary.BigEndian.Uint16(w.hdr[2:])), 4
		case 127:
			n, off = binary.BigEndian.Uint64(w.hdr[2:]), 10
		}
		w.masked = w.hdr[1]&0x80 != 0
		if w.masked {
			copy(w.key[:], w.hdr[off:off+4])
		}
		w.left, w.ko, w.nh = n, 0, 0
	}
	return nil
}

// frameStart checks a frame's first bytes: its opcode, its RSV bits and,
// for a control frame, its FIN bit and length.
func (w *wsScan) frameStart() error {
	op := w.hdr[0] & 0x0f
	switch {
	case w.hdr[0]&0x70 != 0, op >= 3 && op <= 7, op >= 0xb:
		return errWSExtension
	case op >= 8 && (w.hdr[0]&0x80 == 0 || w.hdr[1]&0x7f > 125):
		return errWSControl
	}
	w.ctl = op >= 8
	return nil
}

// wsHeaderLen is the length of a frame header whose second byte is b1.
func wsHeaderLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// payload unmasks and watches payload bytes, a piece at a time.
func (w *wsScan) payload(p []byte) error {
	watchers := w.ws
	if w.ctl {
		watchers = w.cws
	}
	var buf [1024]byte
	for len(p) > 0 {
		data := p
		if w.masked {
			n := copy(buf[:], p)
			for i := range n {
				buf[i] ^= w.key[(w.ko+i)&3]
			}
			w.ko = (w.ko + n) & 3
			data = buf[:n]
		}
		p = p[len(data):]
		for i := range w.dets {
			if watchers[i].Seen(data) || w.aws[i].Seen(data) {
				hit := &tripwireError{secret: w.dets[i].secret, where: "websocket"}
				w.onTrip(hit)
				return hit
			}
		}
	}
	return nil
}
