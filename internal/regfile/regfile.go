// Package regfile opens files that must be regular files: key files,
// policies, token files, audit logs. A FIFO or device in their place is
// refused instead of blocking the process forever on open (a FIFO blocks
// a reader until a writer appears, and a writer until a reader does).
package regfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
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

// ReadFile reads the regular file at path, refusing files larger than
// limit bytes.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := Open(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: file is larger than %d bytes", path, limit)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, err
	}
	if int64(b.Len()) > limit {
		return nil, fmt.Errorf("%s: file is larger than %d bytes", path, limit)
	}
	return b.Bytes(), nil
}

// Cause keeps the cause of a file system error and drops the path and
// operation, for messages that name the file their own way, or must not
// quote it (a secret given to a file flag by mistake would be).
func Cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
