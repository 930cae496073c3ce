package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// trustBundlePaths are where distributions keep the system's trusted CA
// bundle; the first that exists on the host is replaced inside.
var trustBundlePaths = []string{
	"/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine
	"/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
	"/etc/ssl/cert.pem",                  // Alpine, BSD style
}

// maskedPaths are host files and directories under the read-only /etc that
// the sandbox must not read, even where the host lets others read them;
// each is covered by an empty file or directory, as is everything under
// /etc that others may not read.
var maskedPaths = []string{"/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/ssl/private", "/etc/sudoers", "/etc/sudoers.d"}

// maxMasks bounds the private files masked under /etc.
const maxMasks = 256

// privateUnder returns always, plus every file and directory under dir
// that others may not read (the highest such directory only): the host
// keeps them from other users, and the sandbox must not read them either.
func privateUnder(dir string, always []string) ([]string, error) {
	out := slices.Clone(always)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil // unreadable: nothing below can be shown either
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Mode().Perm()&0o004 != 0 {
			return nil
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
		if len(out) > maxMasks {
			return fmt.Errorf("more than %d files under %s are private; tokrun cannot mask them all", maxMasks, dir)
		}
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
	return out, err
}

// topLevel are the host's top-level directories a program needs, besides
// /usr and /etc. On merged-/usr systems they are symlinks into /usr and are
// copied as symlinks; otherwise they are mounted read-only.
var topLevel = []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"}

// layout is what a run exposes, computed before anything starts.
type layout struct {
	rootfs string
	mounts []specs.Mount
	bundle string // path of the trust bundle inside
}

func bind(src, dst string, ro bool) specs.Mount {
	opts := []string{"rbind", "rw"}
	if ro {
		opts = []string{"rbind", "ro"}
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts}
}

// buildLayout creates the skeleton root in runDir and lists the mounts.
// exe is the host path of the tokrun binary, socket the proxy's socket.
func buildLayout(runDir, exe, socket, dir string, extra []Mount, caPEM []byte) (*layout, error) {
	l := &layout{rootfs: filepath.Join(runDir, "rootfs")}
	for _, d := range []string{"", "usr", "etc", "tmp", "proc", "dev", "sys", "root", "home", "run", "var", "var/tmp", "opt", ".tokrun"} {
		if err := os.MkdirAll(filepath.Join(l.rootfs, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(filepath.Join(l.rootfs, "tmp"), 0o1777); err != nil {
		return nil, err
	}
	l.mounts = []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		bind("/usr", "/usr", true),
		bind("/etc", "/etc", true),
	}
	for _, name := range topLevel {
		host := "/" + name
		st, err := os.Lstat(host)
		switch {
		case err != nil:
			continue
		case st.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(host)
			if err != nil {
				return nil, err
			}
			if err := os.Symlink(target, filepath.Join(l.rootfs, name)); err != nil {
				return nil, err
			}
		case st.IsDir():
			if err := os.Mkdir(filepath.Join(l.rootfs, name), 0o755); err != nil {
				return nil, err
			}
			l.mounts = append(l.mounts, bind(host, host, true))
		}
	}
	l.mounts = append(l.mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"mode=1777", "nosuid", "nodev"}})

	empty := filepath.Join(runDir, "empty")
	if err := os.WriteFile(empty, nil, 0o444); err != nil {
		return nil, err
	}
	masks, err := privateUnder("/etc", maskedPaths)
	if err != nil {
		return nil, err
	}
	for _, p := range masks {
		st, err := os.Stat(p)
		switch {
		case err != nil:
		case unix.Access(p, unix.R_OK) != nil:
			// Rootless: a path this user cannot read, the sandbox (whose
			// file access goes through a gofer with this user's rights)
			// cannot read either, and cannot even be mounted over.
		case st.IsDir():
			l.mounts = append(l.mounts, specs.Mount{Destination: p, Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "mode=0700"}})
		default:
			l.mounts = append(l.mounts, bind(empty, p, true))
		}
	}

	bundle, err := trustBundle(caPEM)
	if err != nil {
		return nil, err
	}
	bundleFile := filepath.Join(runDir, "ca-bundle.pem")
	if err := os.WriteFile(bundleFile, bundle, 0o444); err != nil {
		return nil, err
	}
	l.bundle = insideDir + "/ca-bundle.pem"
	for _, p := range trustBundlePaths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			l.mounts = append(l.mounts, bind(bundleFile, p, true))
			l.bundle = p
			break
		}
	}
	for _, f := range []string{"tokrun-init", "proxy.sock", "ca-bundle.pem"} {
		if err := os.WriteFile(filepath.Join(l.rootfs, ".tokrun", f), nil, 0o444); err != nil {
			return nil, err
		}
	}
	l.mounts = append(l.mounts,
		bind(exe, insideInit, true),
		bind(socket, insideSocket, true),
		bind(bundleFile, insideDir+"/ca-bundle.pem", true),
		bind(dir, dir, false),
	)
	for _, m := range extra {
		l.mounts = append(l.mounts, bind(m.Source, m.Dest, m.ReadOnly))
	}
	return l, nil
}

// addHome makes a home directory in the skeleton root for a command that
// does not run as root, and returns its path inside.
func (l *layout) addHome(uid, gid int) (string, error) {
	const home = "/home/tokrun"
	p := filepath.Join(l.rootfs, home)
	if err := os.MkdirAll(p, 0o700); err != nil {
		return "", err
	}
	if err := os.Chown(p, uid, gid); err != nil {
		return "", err
	}
	return home, nil
}

// trustBundle returns the system's trusted roots followed by caPEM.
func trustBundle(caPEM []byte) ([]byte, error) {
	var out []byte
	for _, p := range trustBundlePaths {
		b, err := os.ReadFile(p)
		if err == nil {
			out = append(out, b...)
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("reading the system trust bundle: %w", err)
		}
	}
	if len(out) > 0 && !strings.HasSuffix(string(out), "\n") {
		out = append(out, '\n')
	}
	return append(out, caPEM...), nil
}

// buildSpec returns the OCI spec of a run.
func buildSpec(l *layout, args, env []string, cwd string, tty bool, uid, gid, maxProcs int) *specs.Spec {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	return &specs.Spec{
		Version:  specs.Version,
		Hostname: "tokrun",
		Root:     &specs.Root{Path: l.rootfs},
		Process: &specs.Process{
			Terminal:        tty,
			User:            specs.User{UID: uint32(uid), GID: uint32(gid)},
			Args:            args,
			Env:             env,
			Cwd:             cwd,
			NoNewPrivileges: true,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: 65536, Soft: 65536},
				// Each process inside is one on the host: bounded, a fork
				// bomb fails inside instead of exhausting the host.
				{Type: "RLIMIT_NPROC", Hard: uint64(maxProcs), Soft: uint64(maxProcs)},
			},
		},
		Mounts: l.mounts,
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: "pid"}, {Type: "network"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}},
		},
	}
}
