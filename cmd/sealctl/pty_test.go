//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokrun/tokrun/internal/ptytest"
	"github.com/tokrun/tokrun/sealing"
)

// waitEchoOff waits until the child has turned echo off, or has exited.
func waitEchoOff(t *testing.T, p *ptytest.PTY, exited <-chan struct{}) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for p.EchoOn(t) {
		select {
		case <-exited:
			t.Fatal("sealctl exited before turning echo off")
		case <-deadline:
			t.Fatal("sealctl did not turn echo off within 10s")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestPTYEchoes checks the harness: a terminal with echo on shows what is
// typed on the master side. Without this, the tests below could pass
// because nothing is ever echoed.
func TestPTYEchoes(t *testing.T) {
	p := ptytest.Open(t)
	if !p.EchoOn(t) {
		t.Fatal("a new pty has echo off")
	}
	if _, err := p.Master.Write([]byte("ECHOPROBE\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := p.Contents()
		if strings.Contains(got, "ECHOPROBE") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no echo from the pty: %q", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startSeal runs the sealctl binary (installed in $PATH by TestMain) with
// the pty as stdin.
func startSeal(t *testing.T, p *ptytest.PTY, pubFile string) (cmd *exec.Cmd, stdout, stderr *bytes.Buffer, exited chan struct{}, waitErr *error) {
	t.Helper()
	return startSealWith(t, p.Slave, sealArgs(pubFile))
}

// startSealWith runs the sealctl binary with args and stdin.
func startSealWith(t *testing.T, stdin *os.File, args []string) (cmd *exec.Cmd, stdout, stderr *bytes.Buffer, exited chan struct{}, waitErr *error) {
	t.Helper()
	exe, err := exec.LookPath("sealctl")
	if err != nil {
		t.Fatalf("sealctl is not in $PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd = exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), "GORACE="+quickRaceExit())
	cmd.Stdin = stdin
	stdout, stderr = new(bytes.Buffer), new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan struct{})
	waitErr = new(error)
	go func() {
		*waitErr = cmd.Wait()
		close(exited)
	}()
	return cmd, stdout, stderr, exited, waitErr
}

// typeSecret types secret at sealctl's prompt (echo off by now) and checks
// that it sealed that value, showed the prompt prompts times, never
// echoed the secret and left the terminal echoing.
func typeSecret(t *testing.T, p *ptytest.PTY, k *sealing.PrivateKey, secret string, prompts int,
	stdout, stderr *bytes.Buffer, exited chan struct{}, waitErr *error) {
	t.Helper()
	if _, err := p.Master.Write([]byte(secret + "\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("sealctl did not finish after one line")
	}
	if *waitErr != nil {
		t.Fatalf("sealctl: %v; stderr %q", *waitErr, stderr)
	}
	if !p.EchoOn(t) {
		t.Error("sealctl left the terminal with echo off")
	}
	if echoed := p.Output(t); strings.Contains(echoed, secret) {
		t.Errorf("the terminal echoed the secret: %q", echoed)
	}
	if got := stderr.String(); !strings.HasPrefix(got, "Enter secret for n: ") || strings.Count(got, "Enter secret for n: ") != prompts || strings.Contains(got, secret) {
		t.Errorf("stderr = %q, want the prompt %d times and no secret", got, prompts)
	}
	ring, err := sealing.NewKeyRing(k)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ring.Open(strings.TrimSuffix(stdout.String(), "\n"), "n")
	if err != nil {
		t.Fatalf("opening %q: %v", stdout, err)
	}
	if s.Reveal() != secret {
		t.Errorf("sealed a different value, %s", s.Fingerprint())
	}
}

func TestSealPromptDoesNotEcho(t *testing.T) {
	k, _, pubFile := testKey(t)
	p := ptytest.Open(t)
	_, stdout, stderr, exited, waitErr := startSeal(t, p, pubFile)

	waitEchoOff(t, p, exited)
	typeSecret(t, p, k, "sk-live-SENTINEL-4242", 1, stdout, stderr, exited, waitErr)
}

func TestSealPromptInterruptRestoresTerminal(t *testing.T) {
	_, _, pubFile := testKey(t)
	p := ptytest.Open(t)
	cmd, stdout, stderr, exited, waitErr := startSeal(t, p, pubFile)

	waitEchoOff(t, p, exited)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("sealctl did not stop on SIGINT")
	}
	var exitErr *exec.ExitError
	if !errors.As(*waitErr, &exitErr) || exitErr.ExitCode() != 130 {
		t.Errorf("exit: %v, want status 130", *waitErr)
	}
	if !p.EchoOn(t) {
		t.Error("interrupted sealctl left the terminal with echo off")
	}
	if stdout.Len() != 0 || !strings.HasSuffix(stderr.String(), "sealctl: error: interrupted\n") {
		t.Errorf("stdout %q, stderr %q", stdout, stderr)
	}
}

// TestSealInFromTerminal: --in naming a terminal (/dev/tty, /dev/stdin on
// a terminal) is typed into, so it is prompted for without echo, and one
// line is read, not everything up to an end of file.
func TestSealInFromTerminal(t *testing.T) {
	k, _, pubFile := testKey(t)
	p := ptytest.Open(t)
	_, stdout, stderr, exited, waitErr := startSealWith(t, nil, sealArgs(pubFile, "--in", p.Slave.Name()))

	waitEchoOff(t, p, exited)
	typeSecret(t, p, k, "sk-live-SENTINEL-5151", 1, stdout, stderr, exited, waitErr)
}

// TestSealPromptStopAndContinue: a shell turns echo back on when it stops
// a job (Ctrl-Z) and leaves it on when the job is resumed (fg); the prompt
// turns it off again before the secret is typed.
func TestSealPromptStopAndContinue(t *testing.T) {
	k, _, pubFile := testKey(t)
	p := ptytest.Open(t)
	cmd, stdout, stderr, exited, waitErr := startSeal(t, p, pubFile)

	waitEchoOff(t, p, exited)
	// SIGSTOP, not the SIGTSTP of Ctrl-Z: the kernel drops SIGTSTP to a
	// process group without a parent in the session (as under some CI).
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, cmd.Process.Pid)
	p.SetEcho(t, true) // as bash does when a job stops
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitEchoOff(t, p, exited)
	typeSecret(t, p, k, "sk-live-SENTINEL-7373", 2, stdout, stderr, exited, waitErr)
}

// waitStopped waits until process pid is stopped (state T in /proc).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		// The state follows the command name in parentheses.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'T' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not stop: %s", pid, stat)
		}
	}
}

func TestKeygenWarnsOnTerminal(t *testing.T) {
	p := ptytest.Open(t)
	exe, err := exec.LookPath("sealctl")
	if err != nil {
		t.Fatalf("sealctl is not in $PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, exe, "keygen")
	cmd.Env = append(os.Environ(), "GORACE="+quickRaceExit())
	cmd.Stdout, cmd.Stderr = p.Slave, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sealctl keygen: %v; stderr %q", err, stderr.String())
	}
	if !strings.HasPrefix(stderr.String(), "sealctl: warning: writing a private key to the terminal") {
		t.Errorf("stderr = %q, want a warning first", stderr.String())
	}
	if out := p.Output(t); !strings.Contains(out, "TOKRUN-SECRET-KEY-1") {
		t.Errorf("terminal shows %q, want the key file", out)
	}
}

// TestPubkeyRefusesTerminal: a private key is never typed into an echoing
// terminal; pubkey asks for a file instead of waiting for input.
func TestPubkeyRefusesTerminal(t *testing.T) {
	p := ptytest.Open(t)
	var stdout, stderr bytes.Buffer
	e := &env{stdin: p.Slave, stdout: &stdout, stderr: &stderr}
	if code := e.run([]string{"pubkey"}); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if stdout.Len() != 0 || !strings.HasPrefix(stderr.String(), "sealctl: error: no key file given and stdin is a terminal\nsealctl: hint: ") {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}
