package regfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRefusesFIFOWithoutBlocking(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, flag := range []int{os.O_RDONLY, os.O_WRONLY | os.O_APPEND} {
		// Without O_NONBLOCK either open would block for good: it runs
		// apart, so that the test fails instead of hanging.
		done := make(chan error, 1)
		go func() {
			f, err := Open(fifo, flag, 0)
			if err == nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("flag %#x: FIFO accepted", flag)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("flag %#x: opening a FIFO blocked", flag)
		}
	}
	if _, err := Open(dir, os.O_RDONLY, 0); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	file := filepath.Join(dir, "f")
	f, err := Open(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("ok"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if data, err := os.ReadFile(file); err != nil || string(data) != "ok" {
		t.Fatalf("regular file: %q %v", data, err)
	}
}

// TestCause: the cause of a failed open or link, without the path (which
// could be a secret typed into a file flag).
func TestCause(t *testing.T) {
	dir := t.TempDir()
	secretPath := filepath.Join(dir, "sk-live-SENTINEL")
	_, err := os.Open(secretPath)
	if c := Cause(err); !errors.Is(c, fs.ErrNotExist) || strings.Contains(c.Error(), "SENTINEL") {
		t.Errorf("Cause(open error) = %v", c)
	}
	if err := os.WriteFile(secretPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = os.Link(secretPath, secretPath)
	if c := Cause(err); !errors.Is(c, fs.ErrExist) || strings.Contains(c.Error(), "SENTINEL") {
		t.Errorf("Cause(link error) = %v", c)
	}
	other := errors.New("other")
	if Cause(other) != other {
		t.Error("Cause changed an error that names no path")
	}
}
