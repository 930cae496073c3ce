package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesOnlyOnSuccess(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.yaml")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, 0o644, func(w io.Writer) error {
		io.WriteString(w, "half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatalf("after a failed write the file holds %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("a temporary file was left behind: %v", entries)
	}
	if err := Write(path, 0o640, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	st, _ := os.Stat(path)
	if string(b) != "new" || st.Mode().Perm() != 0o640 {
		t.Fatalf("got %q mode %v", b, st.Mode().Perm())
	}
}

// A directory opened before untrusted code runs keeps the write there,
// even when its path is replaced by a symlink to somewhere else.
func TestWriteInStaysInTheOpenedDirectory(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "out")
	elsewhere := filepath.Join(base, "elsewhere")
	os.Mkdir(out, 0o755)
	os.Mkdir(elsewhere, 0o755)
	root, err := os.OpenRoot(out)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	// The attack: the directory is moved away and replaced by a symlink.
	if err := os.Rename(out, out+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, out); err != nil {
		t.Fatal(err)
	}
	if err := WriteIn(root, "learned.yaml", 0o644, func(w io.Writer) error { _, err := io.WriteString(w, "x"); return err }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "learned.yaml")); err == nil {
		t.Fatal("the write followed the symlink")
	}
	if b, err := os.ReadFile(filepath.Join(out+".old", "learned.yaml")); err != nil || string(b) != "x" {
		t.Fatalf("the write did not land in the opened directory: %q, %v", b, err)
	}
}
