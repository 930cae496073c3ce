package runner

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// stdio connects the caller's stdio to the sandbox: through pipes, or
// through a pseudo-terminal that runsc creates and hands over on a Unix
// socket. The sandbox never gets the caller's own files: a regular file
// given as stdout would be written from offset 0, over what it held.
type stdio struct {
	cfg Config

	// Ends given to the sandbox (nil with a terminal).
	in, out, err *os.File
	// inShared: in is the caller's own stdin, not ours to close.
	inShared bool
	// stdin is what is copied into inW.
	stdin io.Reader
	// Our ends of the pipes.
	inW, outR, errR *os.File
	copies          sync.WaitGroup

	consoleSocket string
	consoleLn     *net.UnixListener
	master        *os.File
	restore       func()
}

func newStdio(cfg Config, runDir string) (*stdio, error) {
	s := &stdio{cfg: cfg}
	if cfg.TTY {
		s.consoleSocket = filepath.Join(runDir, "console.sock")
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.consoleSocket, Net: "unix"})
		if err != nil {
			return nil, fmt.Errorf("console socket: %w", err)
		}
		s.consoleLn = ln
		return s, nil
	}
	var err error
	pipe := func(r, w **os.File) {
		if err == nil {
			*r, *w, err = os.Pipe()
		}
	}
	s.stdin = cfg.Stdin
	f, isFile := cfg.Stdin.(*os.File)
	var st os.FileInfo
	if isFile {
		st, err = f.Stat()
	}
	switch {
	case err != nil:
		return nil, err
	case isFile && st.Mode().IsRegular():
		// gVisor would read a regular file from offset 0; a pipe gets the
		// rest of the file from the caller's offset, read with pread so
		// that the caller's offset does not move.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		s.stdin = io.NewSectionReader(f, off, 1<<62)
		pipe(&s.in, &s.inW)
	case isFile && !term.IsTerminal(int(f.Fd())):
		// A pipe, socket or device is handed over as it is: the command
		// reads only what it needs, and the rest stays for whoever reads
		// next.
		s.in, s.inShared = f, true
	default:
		pipe(&s.in, &s.inW)
	}
	pipe(&s.outR, &s.out)
	pipe(&s.errR, &s.err)
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// started is called once the sandbox holds its ends of the pipes: ours
// are closed so that the sandbox's exit ends the copies with EOF.
func (s *stdio) started() {
	if s.inShared {
		s.in = nil
	}
	for _, f := range []**os.File{&s.in, &s.out, &s.err} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
}

// attach starts copying. With a terminal it first receives the console.
func (s *stdio) attach() error {
	if s.cfg.TTY {
		return s.attachConsole()
	}
	copyOut := func(w io.Writer, r *os.File) {
		defer s.copies.Done()
		if w == nil {
			w = io.Discard
		}
		_, _ = io.Copy(w, r)
	}
	s.copies.Add(2)
	go copyOut(s.cfg.Stdout, s.outR)
	go copyOut(s.cfg.Stderr, s.errR)
	if s.inW != nil {
		go func() {
			if s.stdin != nil {
				_, _ = io.Copy(s.inW, s.stdin)
			}
			s.inW.Close()
		}()
	}
	return nil
}

func (s *stdio) attachConsole() error {
	_ = s.consoleLn.SetDeadline(time.Now().Add(30 * time.Second))
	conn, err := s.consoleLn.AcceptUnix()
	if err != nil {
		return fmt.Errorf("receiving the sandbox's terminal: %w", err)
	}
	defer conn.Close()
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return fmt.Errorf("receiving the sandbox's terminal: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return errors.New("receiving the sandbox's terminal: no descriptor")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return errors.New("receiving the sandbox's terminal: no descriptor")
	}
	s.master = os.NewFile(uintptr(fds[0]), "pty-master")
	if f, ok := s.cfg.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if old, err := term.MakeRaw(int(f.Fd())); err == nil {
			s.restore = func() { _ = term.Restore(int(f.Fd()), old) }
		}
	}
	s.resize()
	s.copies.Add(1)
	go func() {
		defer s.copies.Done()
		w := s.cfg.Stdout
		if w == nil {
			w = io.Discard
		}
		_, _ = io.Copy(w, s.master)
	}()
	go func() {
		if s.cfg.Stdin != nil {
			_, _ = io.Copy(s.master, s.cfg.Stdin)
		}
	}()
	return nil
}

// resize copies the caller's terminal size to the sandbox's terminal.
func (s *stdio) resize() {
	if s.master == nil {
		return
	}
	for _, x := range []any{s.cfg.Stdin, s.cfg.Stdout} {
		if f, ok := x.(*os.File); ok {
			if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
				_ = unix.IoctlSetWinsize(int(s.master.Fd()), unix.TIOCSWINSZ, ws)
				return
			}
		}
	}
}

// drain waits until the command's output has been copied out. With a
// terminal, reading the master ends with EIO once the sandbox is gone.
func (s *stdio) drain() {
	done := make(chan struct{})
	go func() { s.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		// Something inside still holds the output open (a daemonised
		// grandchild of a destroyed sandbox cannot); give up rather than hang.
	}
}

func (s *stdio) close() {
	if s.restore != nil {
		s.restore()
	}
	if s.inShared {
		s.in = nil
	}
	for _, f := range []*os.File{s.in, s.out, s.err, s.inW, s.outR, s.errR, s.master} {
		if f != nil {
			f.Close()
		}
	}
	if s.consoleLn != nil {
		s.consoleLn.Close()
	}
}
