package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// tokrunBin is the tokrun binary the end-to-end tests run. It is built
// with CGO_ENABLED=0, as gVisor requires: the test binary itself (built
// with -race, so with cgo) cannot host a sandbox.
var tokrunBin string

// tokproxyBin is the proxy daemon, for runs with --proxy.
var tokproxyBin string

// e2eSkip, when not empty, says why the end-to-end tests cannot run here.
var e2eSkip string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokrun-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		tokrunBin = filepath.Join(dir, "tokrun")
		cmd := exec.Command("go", "build", "-o", tokrunBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building tokrun: %v\n%s", err, out)
			return 1
		}
		// The rootless test runs the binary as another user.
		if err := os.Chmod(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		tokproxyBin = filepath.Join(dir, "tokproxy")
		cmd = exec.Command("go", "build", "-o", tokproxyBin, "../tokproxy")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building tokproxy: %v\n%s", err, out)
			return 1
		}
		if os.Geteuid() != 0 {
			e2eSkip = "gVisor sandboxes are tested as root (CI runs as root); rootless runs are checked by tokrun doctor"
		}
		return m.Run()
	}()
	os.Exit(code)
}

// needSandbox skips a test that runs real sandboxes where they cannot run.
func needSandbox(t *testing.T) {
	t.Helper()
	if e2eSkip != "" {
		t.Skip(e2eSkip)
	}
}

// TestScript runs the command-line scripts in testdata/script with the
// built tokrun first in $PATH. They cover what tokrun checks before any
// sandbox starts.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			e.Setenv("PATH", filepath.Dir(tokrunBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
			e.Setenv("XDG_CONFIG_HOME", filepath.Join(e.WorkDir, "config"))
			e.Setenv("XDG_RUNTIME_DIR", filepath.Join(e.WorkDir, "run"))
			return nil
		},
	})
}
