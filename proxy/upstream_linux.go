package proxy

import (
	"net"
	"syscall"
)

// quietProbe tells whether anything waits on a connection. It peeks
// without blocking and, once made, costs no allocation per call.
type quietProbe struct {
	rc    syscall.RawConn // nil if the connection has no descriptor
	quiet bool
	peek  func(fd uintptr) bool // p.peekFD, bound once
}

func (p *quietProbe) init(c net.Conn) {
	if sc, ok := c.(syscall.Conn); ok {
		p.rc, _ = sc.SyscallConn()
	}
	p.peek = p.peekFD
}

// quietNow reports whether the peer has neither closed the connection nor
// sent anything.
func (p *quietProbe) quietNow() bool {
	if p.rc == nil {
		return true
	}
	p.quiet = false
	return p.rc.Read(p.peek) == nil && p.quiet
}

func (p *quietProbe) peekFD(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	p.quiet = n <= 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
	return true
}
