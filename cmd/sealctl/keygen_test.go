package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeygenToReadableFile: a key file redirected into a file others can
// read is written, with a warning that says so.
func TestKeygenToReadableFile(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		out, err := os.OpenFile(filepath.Join(t.TempDir(), "key.txt"), os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := out.Chmod(mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		e := &env{stdout: out, stderr: &stderr}
		if code := e.run([]string{"keygen"}); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		out.Close()
		want := fmt.Sprintf("sealctl: warning: writing a private key to a file that group or others can read (mode %04o)", mode)
		if !strings.HasPrefix(stderr.String(), want) {
			t.Errorf("mode %04o: stderr = %q, want a warning first", mode, stderr.String())
		}
	}
}

// TestKeygenOutputFailures: a public key or key file that could not be
// written to stdout (a full disk) fails the command, and keygen -o says
// the key file itself was written.
func TestKeygenOutputFailures(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full to fill: %v", err)
	}
	defer full.Close()
	dir := t.TempDir()
	key := filepath.Join(dir, "key.txt")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"keygen"}, "sealctl: error: writing the key file to stdout: no space left on device\n"},
		{[]string{"keygen", "-o", key}, "sealctl: error: wrote the key file " + key + ", but printing its public key failed: no space left on device\nsealctl: hint: print it with: sealctl pubkey -i " + key + "\n"},
		{[]string{"pubkey", "-i", key}, "sealctl: error: printing the public key: no space left on device\n"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		e := &env{stdout: full, stderr: &stderr}
		if code := e.run(tt.args); code != 1 || stderr.String() != tt.want {
			t.Errorf("%v: exit %d, stderr %q; want 1, %q", tt.args, code, stderr.String(), tt.want)
		}
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v", err)
	}
}
