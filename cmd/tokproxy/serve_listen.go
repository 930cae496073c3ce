package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tokrun/tokrun/internal/regfile"
)

// listenSpec is one --listen value: "unix:PATH" or "tcp:HOST:PORT".
type listenSpec struct {
	network string // "unix" or "tcp"
	addr    string // a socket path, or HOST:PORT
}

func (l listenSpec) String() string { return l.network + ":" + l.addr }

// maxSocketPath is the longest Unix socket path Linux accepts
// (sizeof(sun_path) - 1).
const maxSocketPath = 107

// parseListen parses a --listen value. A TCP address needs an explicit
// host, so that listening on every interface is a choice written as
// 0.0.0.0 or [::], never the accident of an empty host.
func parseListen(s string) (listenSpec, error) {
	network, addr, ok := strings.Cut(s, ":")
	if !ok || addr == "" {
		return listenSpec{}, fmt.Errorf("--listen %q: want unix:PATH or tcp:HOST:PORT", s)
	}
	switch network {
	case "unix":
		if len(addr) > maxSocketPath {
			return listenSpec{}, fmt.Errorf("--listen %q: socket path is %d bytes long; the limit is %d", s, len(addr), maxSocketPath)
		}
		return listenSpec{network: "unix", addr: filepath.Clean(addr)}, nil
	case "tcp":
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return listenSpec{}, fmt.Errorf("--listen %q: want tcp:HOST:PORT, such as tcp:127.0.0.1:3128", s)
		}
		if host == "" {
			return listenSpec{}, fmt.Errorf("--listen %q: the host is missing; use tcp:127.0.0.1:%s (or tcp:0.0.0.0:%s for every interface)", s, port, port)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
			return listenSpec{}, fmt.Errorf("--listen %q: port %q is not a number from 0 to 65535", s, port)
		}
		return listenSpec{network: "tcp", addr: addr}, nil
	}
	return listenSpec{}, fmt.Errorf("--listen %q: unknown network %q; want unix:PATH or tcp:HOST:PORT", s, network)
}

// isLoopback reports whether a TCP listen address is on a loopback
// interface only.
func isLoopback(hostport string) bool {
	host, _, _ := net.SplitHostPort(hostport)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// boundListener is an open listener and how to clean up after it.
type boundListener struct {
	spec listenSpec
	ln   net.Listener
	// socket is the file info of a Unix socket this process created, used
	// to remove that socket, and only that one, when the listener closes.
	socket fs.FileInfo
}

// close closes the listener and removes its socket file if it is still
// the one this process created.
func (b *boundListener) close() {
	b.ln.Close()
	if b.socket != nil {
		if st, err := os.Lstat(b.spec.addr); err == nil && os.SameFile(st, b.socket) {
			os.Remove(b.spec.addr)
		}
	}
}

// listen opens the listener of spec. A Unix socket gets mode before any
// client can reach it: it is bound inside a fresh directory only this
// user can enter, given its mode there, then linked into place.
func listen(spec listenSpec, mode os.FileMode) (*boundListener, error) {
	if spec.network == "tcp" {
		ln, err := net.Listen("tcp", spec.addr)
		if err != nil {
			return nil, fmt.Errorf("--listen %s: %w", spec, unwrapOpError(err))
		}
		return &boundListener{spec: spec, ln: ln}, nil
	}
	path := spec.addr
	if err := removeStaleSocket(path); err != nil {
		return nil, fmt.Errorf("--listen %s: %w", spec, err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".tokproxy")
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", spec, regfile.Cause(err))
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", spec, unwrapOpError(err))
	}
	// The socket is reached through its final path; this process removes
	// it itself, there.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*boundListener, error) {
		ln.Close()
		return nil, fmt.Errorf("--listen %s: %w", spec, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(regfile.Cause(err))
	}
	st, err := os.Lstat(tmp)
	if err != nil {
		return fail(regfile.Cause(err))
	}
	// A hard link, unlike a rename, never replaces a file that appeared at
	// path since the check above (another server's socket, say).
	if err := os.Link(tmp, path); err != nil {
		return fail(regfile.Cause(err))
	}
	return &boundListener{spec: spec, ln: ln, socket: st}, nil
}

// removeStaleSocket removes the socket at path if nothing listens on it
// (left by a process that crashed). Anything else at path is an error:
// tokproxy never removes a regular file or a socket in use.
func removeStaleSocket(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return regfile.Cause(err)
	}
	if st.Mode().Type() != fs.ModeSocket {
		return errors.New("the path exists and is not a socket; remove it or choose another path")
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return errors.New("another process is listening on this socket")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cannot tell whether the existing socket is in use: %w", unwrapOpError(err))
	}
	if err := os.Remove(path); err != nil {
		return regfile.Cause(err)
	}
	return nil
}

// unwrapOpError drops the "listen tcp 127.0.0.1:3128: " prefix of a
// net.OpError, since the message already names the listener.
func unwrapOpError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		err = op.Err
	}
	var sc *os.SyscallError
	if errors.As(err, &sc) {
		return sc.Err
	}
	return err
}
