package runner

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tokrun/tokrun/internal/runsc"
)

// InitName is argv[0] of tokrun when it runs as the sandbox's init.
const InitName = "tokrun-init"

// IsInit reports whether args (normally os.Args) start tokrun as the
// sandbox's init.
func IsInit(args []string) bool {
	return len(args) > 0 && filepath.Base(args[0]) == InitName
}

// Init is the sandbox's first process. It relays ProxyAddr to the proxy's
// socket, starts the command with the environment it was given, forwards
// signals to it, reaps every orphan, and returns the command's exit code
// (128+N when signal N killed it). args are os.Args:
//
//	tokrun-init [--tty] -- CMD [ARGS...]
func Init(args []string) int {
	tty := false
	rest := args[1:]
	for len(rest) > 0 && rest[0] != "--" {
		switch rest[0] {
		case "--tty":
			tty = true
		default:
			fmt.Fprintf(os.Stderr, "tokrun-init: unknown argument %q\n", rest[0])
			return ExitFailure
		}
		rest = rest[1:]
	}
	if len(rest) < 2 {
		fmt.Fprintln(os.Stderr, "tokrun-init: no command")
		return ExitFailure
	}
	cmd := rest[1:]
	closeInherited()

	// Signals are caught before the child starts so none is lost.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)

	ln, err := net.Listen("tcp", ProxyAddr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tokrun-init: cannot serve the proxy at %s: %v\n", ProxyAddr, err)
		return ExitFailure
	}
	go relay(ln, insideSocket)

	path, err := lookPath(cmd[0], os.Getenv("PATH"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "tokrun: %s: %v\n", cmd[0], err)
		if errors.Is(err, os.ErrPermission) {
			return 126
		}
		return 127
	}
	attr := &os.ProcAttr{
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		// With a terminal the command becomes its foreground job, so that
		// ^C and ^Z reach it; init stays the session leader.
		Sys: &syscall.SysProcAttr{Setpgid: true, Foreground: tty, Ctty: 0},
	}
	p, err := os.StartProcess(path, cmd, attr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tokrun: %s: %v\n", cmd[0], err)
		return 126
	}
	for sig := range sigs {
		if sig == unix.SIGCHLD {
			if code, done := reap(p.Pid); done {
				return code
			}
			continue
		}
		if s, ok := sig.(syscall.Signal); ok && s != unix.SIGURG && s != unix.SIGPIPE {
			// The child leads its own process group (or session): the
			// signal reaches the whole job, as from a terminal.
			_ = unix.Kill(-p.Pid, s)
		}
	}
	return ExitFailure
}

// reap collects every exited child. It reports the exit code once the
// command itself (pid) has exited.
func reap(pid int) (int, bool) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || got <= 0 {
			return 0, false
		}
		if got == pid {
			if ws.Signaled() {
				return 128 + int(ws.Signal()), true
			}
			return ws.ExitStatus(), true
		}
	}
}

// lookPath finds cmd on path the way a shell does.
func lookPath(cmd, path string) (string, error) {
	if strings.Contains(cmd, "/") {
		return cmd, executable(cmd)
	}
	var firstErr error
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, cmd)
		err := executable(p)
		if err == nil {
			return p, nil
		}
		if firstErr == nil && !errors.Is(err, os.ErrNotExist) {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", errors.New("command not found")
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return os.ErrPermission
	}
	return nil
}

// relay serves each connection on ln by a connection to the Unix socket.
func relay(ln net.Listener, socket string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("unix", socket)
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{})
			go func() {
				io.Copy(u, c)
				if cw, ok := u.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
				close(done)
			}()
			io.Copy(c, u)
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			<-done
		}()
	}
}

// HandleReexec is the first call in main of a binary that runs sandboxes.
// When runsc re-executed the binary (as the sandbox, the gofer, ...) or
// started it as the sandbox's init, it does that job and exits; otherwise
// it returns and main goes on.
func HandleReexec() {
	switch {
	case runsc.IsReexec(os.Args):
		runsc.Main()
	case IsInit(os.Args):
		os.Exit(Init(os.Args))
	}
}

// closeInherited marks every descriptor above stderr close-on-exec: init
// is handed some by the sandbox (a pipe), and os.StartProcess passes on
// whatever is not, so the command would hold them.
func closeInherited() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}
