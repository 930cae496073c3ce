// Package regfile opens files that must be regular files: key files,
// policies, token files, audit logs. A FIFO or device in their place is
// refused instead of blocking the process forever on open (a FIFO blocks
// a reader until a writer appears, and a writer until a reader does).
package regfile

import (
	"fmt"
	"os"
	"syscall"
)

// Open is os.OpenFile that never blocks on a FIFO and refuses anything but
// a regular file. O_NONBLOCK has no effect on regular files; opening a
// FIFO for writing with no reader fails at once.
func Open(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NONBLOCK, perm)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return f, nil
}
