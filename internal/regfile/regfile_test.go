package regfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRefusesFIFOWithoutBlocking(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, flag := range []int{os.O_RDONLY, os.O_WRONLY | os.O_APPEND} {
		// Without O_NONBLOCK both opens would block this test forever.
		if _, err := Open(fifo, flag, 0); err == nil {
			t.Errorf("flag %#x: FIFO accepted", flag)
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
