package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrVisible reports a file that must stay outside the sandbox but that a
// mount would expose.
var ErrVisible = errors.New("would be visible inside the sandbox")

// Hidden is a host file that must not be visible inside the sandbox.
type Hidden struct {
	Path string
	What string // "the private key", for messages
	Hint string // what the user can do when it would be visible
}

// VisibleError is the error of a run refused because a hidden file would
// be visible. It wraps ErrVisible.
type VisibleError struct {
	Hidden
	Inside, Through string // where it would show, and through which mount
	Links           uint64 // set when refused for its hard links instead
	Writable        bool   // a Protected file: visible is fine, writable is not
}

func (e *VisibleError) Error() string {
	if e.Links > 1 {
		return fmt.Sprintf("%s %s %v: it has %d hard links, and tokrun cannot tell where the others are", e.What, e.Path, ErrVisible, e.Links)
	}
	if e.Writable {
		return fmt.Sprintf("%s %s would be writable inside the sandbox at %s (through the mount of %s)", e.What, e.Path, e.Inside, e.Through)
	}
	return fmt.Sprintf("%s %s %v at %s (through the mount of %s)", e.What, e.Path, ErrVisible, e.Inside, e.Through)
}

func (e *VisibleError) Unwrap() error { return ErrVisible }

// within reports whether p is base or below it, and the rest of p.
func within(p, base string) (string, bool) {
	if p == base {
		return "", true
	}
	if base == "/" {
		return p[1:], true
	}
	if strings.HasPrefix(p, base+"/") {
		return p[len(base)+1:], true
	}
	return "", false
}

// resolve returns the absolute path of p with every symlink followed.
func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// fileKey identifies a file or directory whatever path reaches it: a bind
// mount on the host, a symlink or another spelling of the path.
type fileKey struct{ dev, ino uint64 }

func keyOf(p string) (fileKey, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return fileKey{}, err
	}
	return fileKey{uint64(st.Dev), st.Ino}, nil
}

// ancestry maps p (after resolution) and every directory above it to the
// rest of the path from there down to p.
func ancestry(p string) (map[fileKey]string, error) {
	real, err := resolve(p)
	if err != nil {
		return nil, err
	}
	out := map[fileKey]string{}
	for cur := real; ; cur = filepath.Dir(cur) {
		k, err := keyOf(cur)
		if err != nil {
			return nil, err
		}
		rest, _ := filepath.Rel(cur, real)
		out[k] = rest
		if cur == "/" {
			return out, nil
		}
	}
}

// exposure returns where inside the sandbox p shows through a bind mount
// in mounts (read-write ones only when writable is set), or "" when it
// does not. A later mount that covers the inside path hides it.
func exposure(p string, mounts []specs.Mount, writable bool) (inside, through string, err error) {
	anc, err := ancestry(p)
	if err != nil {
		return "", "", err
	}
	if mounts, err = withSubmounts(mounts, mountPoints); err != nil {
		return "", "", err
	}
	for i, m := range mounts {
		if m.Type != "bind" || (writable && readOnly(m)) {
			continue
		}
		k, err := keyOf(m.Source)
		if errors.Is(err, os.ErrNotExist) {
			continue // nothing there to expose (the proxy socket, before it listens)
		}
		if err != nil {
			return "", "", fmt.Errorf("mount source %s: %w", m.Source, err)
		}
		rest, ok := anc[k]
		if !ok {
			continue
		}
		in := filepath.Join(m.Destination, rest)
		if !coveredAfter(mounts, i, in) {
			return in, m.Source, nil
		}
	}
	return "", "", nil
}

func readOnly(m specs.Mount) bool {
	for _, o := range m.Options {
		if o == "ro" {
			return true
		}
	}
	return false
}

// checkHidden returns a *VisibleError for the first of hidden that a bind
// mount would show inside, through whatever path (symlinks and host bind
// mounts included: files are compared by device and inode). A hidden file
// with more than one hard link is refused too: its other names cannot be
// found.
func checkHidden(hidden []Hidden, mounts []specs.Mount) error {
	for _, h := range hidden {
		if h.Path == "" {
			continue
		}
		st, err := os.Stat(h.Path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("checking %s: %w", h.Path, err)
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink > 1 && st.Mode().IsRegular() {
			return &VisibleError{Hidden: h, Links: uint64(sys.Nlink)}
		}
		inside, through, err := exposure(h.Path, mounts, false)
		if err != nil {
			return fmt.Errorf("checking %s: %w", h.Path, err)
		}
		if inside != "" {
			return &VisibleError{Hidden: h, Inside: inside, Through: through}
		}
	}
	return nil
}

// checkProtected returns a *VisibleError for the first of protected that
// a read-write bind mount would show inside, itself or through a
// directory above it.
func checkProtected(protected []Hidden, mounts []specs.Mount) error {
	for _, p := range protected {
		if p.Path == "" {
			continue
		}
		if _, err := os.Stat(p.Path); errors.Is(err, os.ErrNotExist) {
			continue
		}
		inside, through, err := exposure(p.Path, mounts, true)
		if err != nil {
			return fmt.Errorf("checking %s: %w", p.Path, err)
		}
		if inside != "" {
			return &VisibleError{Hidden: p, Inside: inside, Through: through, Writable: true}
		}
	}
	return nil
}

// coveredAfter reports whether a mount after index i hides inside.
func coveredAfter(mounts []specs.Mount, i int, inside string) bool {
	for _, m := range mounts[i+1:] {
		if _, ok := within(inside, m.Destination); ok {
			return true
		}
	}
	return false
}

// existingAncestor returns p if it exists, or its nearest ancestor that
// does.
func existingAncestor(p string) string {
	for {
		if _, err := os.Stat(p); err == nil || p == "/" || p == "." {
			return p
		}
		p = filepath.Dir(p)
	}
}

// withSubmounts returns mounts with, after each bind mount, one for each
// host mount below its source (points lists the host's mount points): bind
// mounts are recursive, so each of those comes into the sandbox too, with
// its own file system, which the source's device and inode do not cover.
// Each has the options of the mount it comes with.
func withSubmounts(mounts []specs.Mount, points func() ([]string, error)) ([]specs.Mount, error) {
	var pts []string
	out := make([]specs.Mount, 0, len(mounts))
	for _, m := range mounts {
		out = append(out, m)
		if m.Type != "bind" {
			continue
		}
		src, err := resolve(m.Source)
		if err != nil {
			continue // exposure skips or reports a source it cannot stat
		}
		if pts == nil {
			if pts, err = points(); err != nil {
				return nil, fmt.Errorf("listing the host's mounts: %w", err)
			}
		}
		for _, p := range pts {
			if rest, ok := within(p, src); ok && rest != "" {
				sub := m
				sub.Source, sub.Destination = p, filepath.Join(m.Destination, rest)
				out = append(out, sub)
			}
		}
	}
	return out, nil
}

// mountPoints lists the mount points of this process's mount namespace.
func mountPoints() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		// ID parent major:minor root mount-point options ...
		f := strings.Fields(line)
		if len(f) < 5 {
			return nil, fmt.Errorf("/proc/self/mountinfo: malformed line %q", line)
		}
		out = append(out, unescapeMountinfo(f[4]))
	}
	return out, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, ...) of a
// path in /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }
