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

// checkHidden returns an error naming the first of hidden that a bind
// mount in mounts would show inside. A path reached through a bind mount
// is visible unless a later mount covers it inside. A hidden file with
// more than one hard link is refused too: its other names cannot be found.
func checkHidden(hidden []string, mounts []specs.Mount) error {
	type bound struct {
		src, dst string
		idx      int
	}
	var binds []bound
	for i, m := range mounts {
		if m.Type != "bind" {
			continue
		}
		src, err := resolve(m.Source)
		if errors.Is(err, os.ErrNotExist) {
			continue // nothing there to expose (the proxy socket, before it listens)
		}
		if err != nil {
			return fmt.Errorf("mount source %s: %w", m.Source, err)
		}
		binds = append(binds, bound{src, m.Destination, i})
	}
	for _, h := range hidden {
		if h == "" {
			continue
		}
		real, err := resolve(h)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("checking %s: %w", h, err)
		}
		if st, err := os.Stat(real); err == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink > 1 && st.Mode().IsRegular() {
				return fmt.Errorf("%s %w: it has %d hard links, and tokrun cannot tell where the others are", h, ErrVisible, sys.Nlink)
			}
		}
		for _, b := range binds {
			rest, ok := within(real, b.src)
			if !ok {
				continue
			}
			inside := filepath.Join(b.dst, rest)
			if !coveredAfter(mounts, b.idx, inside) {
				return fmt.Errorf("%s %w at %s (through the mount of %s)", h, ErrVisible, inside, b.src)
			}
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
