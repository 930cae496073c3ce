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
}

func (e *VisibleError) Error() string {
	if e.Links > 1 {
		return fmt.Sprintf("%s %s %v: it has %d hard links, and tokrun cannot tell where the others are", e.What, e.Path, ErrVisible, e.Links)
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
