package runner

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// Exit codes of a run, besides the command's own status (which passes
// through) and 128+N for a command killed by signal N.
const (
	// ExitFailure is returned when tokrun or the sandbox failed, and the
	// command's own status is unknown.
	ExitFailure = 125
	// ExitTripwire is returned when the proxy's tripwire ended the run
	// (--on-tripwire kill).
	ExitTripwire = 124
)

// Inside paths of the sandbox's plumbing. /.tokrun is a read-only
// directory that exists only inside the sandbox.
const (
	insideDir    = "/.tokrun"
	insideInit   = insideDir + "/tokrun-init"
	insideSocket = insideDir + "/proxy.sock"
	// ProxyAddr is where the sandbox's init serves the proxy inside the
	// sandbox; HTTP_PROXY and HTTPS_PROXY point to it.
	ProxyAddr = "127.0.0.1:3128"
)

// Config describes one sandboxed run. The zero value of each optional
// field means its default.
type Config struct {
	// Command is the program and its arguments, resolved inside the
	// sandbox with PATH.
	Command []string
	// Dir is the host working directory, mounted read-write at the same
	// path; the command starts there. If empty, the current directory.
	Dir string
	// Env holds KEY=VALUE pairs added to the sandbox's environment, which
	// is otherwise built from scratch (see [Environment]).
	Env []string
	// Mounts are further host paths to expose.
	Mounts []Mount
	// ProxySocket is the host path of the proxy's Unix socket, the
	// sandbox's only way out. If empty, the run has its own socket path,
	// [Sandbox.ProxySocket], on which the caller must listen.
	ProxySocket string
	// CACert is the PEM certificate of the CA that signs the proxy's
	// intercepted tunnels. It is added to the system trust bundle inside.
	CACert []byte
	// Hidden are host files that must not be visible inside (the private
	// key, the audit log). New refuses to run when a mount would expose
	// one, with a *VisibleError.
	Hidden []Hidden
	// Protected are host files that may show inside but must not be
	// writable there, nor the directories that hold them (a proxy's live
	// policy). New refuses to run when a read-write mount would expose
	// one, with a *VisibleError.
	Protected []Hidden
	// TTY gives the command a pseudo-terminal; Stdin must then be a
	// terminal.
	TTY bool
	// MaxProcs bounds the processes and threads of the command's user
	// inside (RLIMIT_NPROC, enforced by gVisor: fork fails with EAGAIN
	// beyond it). Each process inside is a process on the host. Zero means
	// DefaultMaxProcs.
	MaxProcs int
	// Stdin, Stdout and Stderr are the command's stdio; nil means empty
	// input and discarded output.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// StateDir holds sandbox state, logs and skeleton roots. If empty,
	// [DefaultStateDir].
	StateDir string
	// Rootless runs the sandbox without root, inside a user namespace.
	Rootless bool
	// Debug writes gVisor's debug logs to the run's log directory.
	Debug bool
}

// Mount exposes a host path inside the sandbox.
type Mount struct {
	Source   string // absolute host path
	Dest     string // absolute path inside
	ReadOnly bool
}

// ErrMount reports a --mount value that cannot be used.
var ErrMount = errors.New("invalid mount")

// ParseMount parses SRC:DST[:ro] or SRC:DST:rw. SRC is made absolute
// relative to the current directory; DST must be absolute.
func ParseMount(s string) (Mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Mount{}, fmt.Errorf("%w %q: want SRC:DST or SRC:DST:ro", ErrMount, s)
	}
	m := Mount{Source: parts[0], Dest: parts[1]}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			m.ReadOnly = true
		case "rw":
		default:
			return Mount{}, fmt.Errorf("%w %q: the mode must be ro or rw, not %q", ErrMount, s, parts[2])
		}
	}
	if m.Source == "" || m.Dest == "" {
		return Mount{}, fmt.Errorf("%w %q: SRC and DST must not be empty", ErrMount, s)
	}
	src, err := filepath.Abs(m.Source)
	if err != nil {
		return Mount{}, fmt.Errorf("%w %q: %v", ErrMount, s, err)
	}
	m.Source = src
	if !filepath.IsAbs(m.Dest) {
		return Mount{}, fmt.Errorf("%w %q: DST must be an absolute path inside the sandbox", ErrMount, s)
	}
	m.Dest = filepath.Clean(m.Dest)
	if err := checkDest(m.Dest); err != nil {
		return Mount{}, fmt.Errorf("%w %q: %v", ErrMount, s, err)
	}
	return m, nil
}

// checkDest refuses destinations that would replace the sandbox's own
// plumbing or system directories.
func checkDest(dst string) error {
	switch {
	case dst == "/":
		return errors.New("DST cannot be /")
	case dst == insideDir || strings.HasPrefix(dst, insideDir+"/"):
		return fmt.Errorf("DST cannot be under %s, which tokrun uses", insideDir)
	case dst == "/proc" || strings.HasPrefix(dst, "/proc/") || dst == "/dev" || strings.HasPrefix(dst, "/dev/") || dst == "/sys" || strings.HasPrefix(dst, "/sys/"):
		return fmt.Errorf("DST cannot be under /proc, /dev or /sys")
	}
	return nil
}

// DefaultMaxProcs is Config.MaxProcs when it is zero.
const DefaultMaxProcs = 2048
