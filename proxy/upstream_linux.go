package proxy

import (
	"net"
	"syscall"
	"unsafe"
)

// quietProbe tells whether anything waits on a connection. It peeks
// without blocking and, once made, costs no allocation per call.
type quietProbe struct {
	rc    syscall.RawConn // nil if the connection has no descriptor
	quiet bool
	peek  func(fd uintptr) // p.peekFD, bound once
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
	return p.rc.Control(p.peek) == nil && p.quiet
}

// peekFD peeks at one byte. The call cannot block (MSG_DONTWAIT), so it
// is made as a raw system call, and through Control rather than Read,
// which would ready the poller for a wait that never comes.
func (p *quietProbe) peekFD(fd uintptr) {
	var b [1]byte
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	// Only "nothing to read yet" is quiet: a byte is data sent unasked,
	// and no error with no byte is the end of the stream.
	p.quiet = errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK
}
