//go:build linux

// Package ptytest gives tests a pseudo-terminal: a program under test gets
// the slave side as its terminal, and the test reads everything the
// terminal shows from the master side.
package ptytest

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal pair. Everything the terminal shows is
// collected from the master side.
type PTY struct {
	Master, Slave *os.File

	mu   sync.Mutex
	seen bytes.Buffer
	done chan struct{}
}

// Open opens a pseudo-terminal, or skips t where there is none. It is
// closed when t ends.
func Open(t testing.TB) *PTY {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: open /dev/ptmx: %v", err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		t.Skipf("no pseudo-terminal: unlock: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		t.Skipf("no pseudo-terminal: TIOCGPTN: %v", err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Skipf("no pseudo-terminal: open slave: %v", err)
	}
	p := &PTY{Master: master, Slave: slave, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 1024)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.seen.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return // EIO once every slave descriptor is closed
			}
		}
	}()
	t.Cleanup(func() {
		slave.Close()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Error("pty reader did not stop")
		}
		master.Close()
	})
	return p
}

// Contents returns what the terminal has shown so far.
func (p *PTY) Contents() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen.String()
}

// WaitFor waits until the terminal has shown s, failing t after timeout.
func (p *PTY) WaitFor(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Contents(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the terminal did not show %q within %v; it shows:\n%s", s, timeout, p.Contents())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Output closes the slave and returns everything the terminal showed.
func (p *PTY) Output(t testing.TB) string {
	t.Helper()
	p.Slave.Close()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("pty reader did not stop")
	}
	return p.Contents()
}

// EchoOn reports whether the terminal echoes what is typed.
func (p *PTY) EchoOn(t testing.TB) bool {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(p.Slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatalf("TCGETS: %v", err)
	}
	return tio.Lflag&unix.ECHO != 0
}

// SetEcho turns the terminal's echo on or off, as a shell does for the
// jobs it stops and resumes.
func (p *PTY) SetEcho(t testing.TB, on bool) {
	t.Helper()
	fd := int(p.Slave.Fd())
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatalf("TCGETS: %v", err)
	}
	if on {
		tio.Lflag |= unix.ECHO
	} else {
		tio.Lflag &^= unix.ECHO
	}
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		t.Fatalf("TCSETS: %v", err)
	}
}
