package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tokrun/tokrun/runner"
)

// daemonFiles finds the files of the tokproxy daemon listening on socket,
// from its command line (through the socket's peer credentials): those
// that must not show in the sandbox (its key, CA key, state directory,
// tokens and audit log), and its policy, which may show but must not be
// writable there: the daemon reloads it as it changes. It reports ok
// false when it cannot tell them: the process cannot be seen (another
// user's, or another PID namespace's, whose files are then not this
// host's view anyway), or what listens is not "tokproxy serve" (a
// wrapper, a socket-activating service manager), or a path is relative
// to a directory it cannot see.
func daemonFiles(socket string) (hidden, protected []runner.Hidden, ok bool) {
	pid, err := peerPID(socket)
	if err != nil {
		return nil, nil, false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, nil, false
	}
	cwd, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd") // another user's: relative paths stay unknown
	args := strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
	if len(args) < 2 || !slices.Contains(args[1:], "serve") {
		return nil, nil, false
	}
	ok = true
	flags := serveFlags(args)
	if flags["--state-dir"] == "" && flags["--ca-key"] == "" {
		// The daemon's default state directory, from its environment.
		environ, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil {
			return nil, nil, false
		}
		flags["--state-dir"] = defaultTokproxyState(strings.Split(string(environ), "\x00"))
		if flags["--state-dir"] == "" {
			ok = false
		}
	}
	abs := func(p string) string {
		switch {
		case p == "" || p == "-":
			return ""
		case filepath.IsAbs(p):
			return p
		case cwd == "":
			ok = false
			return ""
		}
		return filepath.Join(cwd, p)
	}
	hint := "keep the tokproxy daemon's files outside the working directory and the mounts"
	for _, f := range []struct{ flag, what string }{
		{"--key", "the proxy's private key"},
		{"--ca-key", "the proxy's CA key"},
		{"--state-dir", "the proxy's state directory"},
		{"--token-file", "the proxy's client tokens"},
		{"--audit", "the proxy's audit log"},
	} {
		if p := abs(flags[f.flag]); p != "" {
			hidden = append(hidden, runner.Hidden{Path: p, What: f.what, Hint: hint})
		}
	}
	if p := abs(flags["--policy"]); p != "" {
		protected = append(protected, runner.Hidden{Path: p, What: "the proxy's policy", Hint: hint + ": the daemon reloads its policy when it changes"})
	}
	// Replaced, the binary would run with the daemon's key at its next
	// start. A binary replaced already (an upgrade) shows as deleted; its
	// path is what the next start runs.
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil {
		protected = append(protected, runner.Hidden{Path: strings.TrimSuffix(exe, " (deleted)"), What: "the tokproxy daemon's executable",
			Hint: "keep the tokproxy binary outside the working directory and the mounts: the daemon's next start would run what the command left there"})
	} else {
		ok = false
	}
	return hidden, protected, ok
}

// serveFlags returns the file flags of a "tokproxy serve" command line,
// in --flag value or --flag=value form.
func serveFlags(args []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(args[i], "=")
		switch name {
		case "--policy", "--key", "--ca-key", "--state-dir", "--token-file", "--audit":
		default:
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				break
			}
			i++
			value = args[i]
		}
		out[name] = value
	}
	return out
}

// defaultTokproxyState is tokproxy's default state directory in the
// environment env ("NAME=VALUE" entries): $XDG_STATE_HOME/tokproxy, or
// $HOME/.local/state/tokproxy; "" if neither is set.
func defaultTokproxyState(env []string) string {
	get := func(name string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, name+"="); ok {
				return v
			}
		}
		return ""
	}
	if d := get("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "tokproxy")
	}
	if h := get("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".local", "state", "tokproxy")
	}
	return ""
}

// peerPID returns the process ID of the process listening on the Unix
// socket at path.
func peerPID(path string) (int, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	rc, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	if cred.Pid <= 0 {
		return 0, errors.New("no peer process")
	}
	return int(cred.Pid), nil
}
