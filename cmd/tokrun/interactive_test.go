package main

import (
	"bufio"
	"errors"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokrun/tokrun/internal/ptytest"
)

// start runs tokrun in the background with the world's flags.
func (w *world) start(stdin, stdout, stderr any, args ...string) *exec.Cmd {
	w.t.Helper()
	base := []string{"--key", w.keyFile, "--policy", w.policy, "--upstream-ca", w.caFile, "--state-dir", w.stateDir}
	cmd := exec.Command(tokrunBin, append(base, args...)...)
	cmd.Dir = w.project
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "TERM=xterm"}
	if r, ok := stdin.(io.Reader); ok {
		cmd.Stdin = r
	}
	if o, ok := stdout.(io.Writer); ok {
		cmd.Stdout = o
	}
	if e, ok := stderr.(io.Writer); ok {
		cmd.Stderr = e
	}
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// SIGTERM and SIGINT sent to tokrun reach the command.
func TestSignalsAreForwarded(t *testing.T) {
	w := newWorld(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		pr, pw := io.Pipe()
		cmd := w.start(nil, pw, nil, "--", "/bin/sh", "-c", `trap 'echo got signal; exit 7' TERM INT; echo ready; while :; do sleep 0.05; done`)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(pr)
		if !lines.Scan() || lines.Text() != "ready" {
			t.Fatalf("no ready line: %q", lines.Text())
		}
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		rest := make(chan string, 1)
		go func() {
			var b strings.Builder
			for lines.Scan() {
				b.WriteString(lines.Text() + "\n")
			}
			rest <- b.String()
		}()
		err := cmd.Wait()
		pw.Close()
		if code := exitCode(t, err); code != 7 {
			t.Errorf("%v: exit %d, want 7 from the command's trap", sig, code)
		}
		if out := <-rest; !strings.Contains(out, "got signal") {
			t.Errorf("%v: the command did not see the signal: %q", sig, out)
		}
	}
}

// With a terminal as stdin the command gets a terminal: an interactive
// Python works.
func TestInteractivePython(t *testing.T) {
	w := newWorld(t)
	p := ptytest.Open(t)
	cmd := w.start(p.Slave, p.Slave, p.Slave, "--", "python3", "-q")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(t, ">>> ", 30*time.Second)
	io.WriteString(p.Master, "import os; print('tty', os.isatty(0), 6*7)\n")
	p.WaitFor(t, "tty True 42", 10*time.Second)
	io.WriteString(p.Master, "raise SystemExit(5)\n")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := exitCode(t, err); code != 5 {
			t.Errorf("exit %d, want 5", code)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("tokrun did not exit; the terminal shows:\n%s", p.Contents())
	}
}
