// Package atomicfile writes a file completely or not at all: the content
// goes to a temporary file in the same directory, which is synced and
// renamed over the target only when writing succeeded. A failed or
// interrupted write leaves the target as it was and no temporary behind.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write calls fill with a writer for the new content of path, then puts
// the content in place with mode perm.
func Write(path string, perm os.FileMode, fill func(io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return WriteIn(root, base, perm, fill)
}

// WriteIn is Write for the file name in the directory root. Opened before
// untrusted code runs, root keeps the write in that directory even if the
// path that led to it is replaced by a symlink meanwhile.
func WriteIn(root *os.Root, name string, perm os.FileMode, fill func(io.Writer) error) (err error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	tmp := "." + name + ".tmp-" + hex.EncodeToString(b[:])
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			root.Remove(tmp)
		}
	}()
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = root.Rename(tmp, name); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(root.Name(), name), err)
	}
	return nil
}
