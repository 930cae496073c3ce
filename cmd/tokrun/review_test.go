package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokrun/tokrun/internal/ptytest"
)

// What the sandbox could change for the next run, or see of tokrun's own
// files, is refused before anything is created.
func TestRefusesWritableTokrunAndVisibleState(t *testing.T) {
	w := newWorld(t)
	// A tokrun binary in the working directory could be replaced.
	copyBin := filepath.Join(w.project, "tokrun")
	b, err := os.ReadFile(tokrunBin)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, copyBin, string(b), 0o755)
	cmd := exec.Command(copyBin, "--state-dir", w.stateDir, "--", "/bin/true")
	cmd.Dir = w.project
	out, err := cmd.CombinedOutput()
	if exitCode(t, err) != 125 || !strings.Contains(string(out), "would be writable inside the sandbox") {
		t.Errorf("a tokrun binary in the working directory: want a refusal, got %v\n%s", err, out)
	}
	os.Remove(copyBin)

	// A state directory in the working directory would show other runs'
	// sockets; nothing is created before the refusal.
	r := w.runRaw("", "--state-dir", filepath.Join(w.project, ".state"), "--", "/bin/true")
	if r.code != 125 || !strings.Contains(r.stderr, "the state directory") || !strings.Contains(r.stderr, "hint: give --state-dir") {
		t.Errorf("a state directory in the working directory: want a refusal with its hint, got\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(w.project, ".state")); err == nil {
		t.Errorf("the refused run created the state directory")
	}

	// The same through a mount: the binary's directory mounted read-write,
	// the state directory's parent read-only.
	parent := t.TempDir()
	state := filepath.Join(parent, "state")
	t.Cleanup(func() { removeState(t, state) })
	for _, tt := range []struct{ state, mount, want string }{
		{w.stateDir, filepath.Dir(tokrunBin) + ":/x", "the tokrun binary " + tokrunBin + " would be writable inside the sandbox at /x/tokrun"},
		{state, parent + ":/x:ro", "the state directory " + state + " would be visible inside the sandbox"},
	} {
		r := w.runRaw("", "--key", w.keyFile, "--policy", w.policy, "--upstream-ca", w.caFile, "--state-dir", tt.state, "--mount", tt.mount, "--", "/bin/true")
		if r.code != 125 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("--mount %s: want exit 125 and %q, got\n%s", tt.mount, tt.want, r)
		}
	}

	// With --proxy, tokrun does not read the key, but the default key
	// file must still not be visible.
	cfgHome := filepath.Join(w.project, "config")
	os.MkdirAll(filepath.Join(cfgHome, "tokrun"), 0o700)
	writeFile(t, filepath.Join(cfgHome, "tokrun", "key.txt"), "TOKRUN-SECRET-KEY-1PLACEHOLDERFORTHETEST", 0o600)
	cmd = exec.Command(tokrunBin, "--state-dir", w.stateDir, "--proxy", "unix:/nonexistent.sock", "--proxy-ca", w.caFile, "--", "/bin/true")
	cmd.Dir = w.project
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root", "XDG_CONFIG_HOME=" + cfgHome}
	out, err = cmd.CombinedOutput()
	if exitCode(t, err) != 125 || !strings.Contains(string(out), "the private key") {
		t.Errorf("--proxy with the default key in the working directory: want a refusal, got %v\n%s", err, out)
	}
}

// tokrun does not consume more of its stdin than the command reads, so
// it can run in a loop that reads the same input.
func TestStdinIsNotSwallowed(t *testing.T) {
	w := newWorld(t)
	input := filepath.Join(t.TempDir(), "lines")
	writeFile(t, input, "a\nb\nc\n", 0o644)
	loop := `while read x; do "$TOKRUN" --state-dir "$STATE" -- /bin/true; echo "got $x"; done`
	for name, redirect := range map[string]string{"pipe": "printf 'a\\nb\\nc\\n' | (" + loop + ")", "file": "(" + loop + ") < " + input} {
		cmd := exec.Command("/bin/sh", "-c", redirect)
		cmd.Dir = w.project
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root", "TOKRUN=" + tokrunBin, "STATE=" + w.stateDir}
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "got a\ngot b\ngot c\n" {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
	// A file on stdin is read from the caller's offset.
	cmd := exec.Command("/bin/sh", "-c", `(read first; "$TOKRUN" --state-dir "$STATE" -- /bin/cat) < `+input)
	cmd.Dir = w.project
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root", "TOKRUN=" + tokrunBin, "STATE=" + w.stateDir}
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "b\nc\n" {
		t.Errorf("the command should read the file from the caller's offset: %v %q", err, out)
	}
}

// With a terminal on stdin but stdout redirected, the command gets pipes:
// stdout stays clean and stderr separate.
func TestNoTerminalWhenStdoutIsRedirected(t *testing.T) {
	w := newWorld(t)
	p := ptytest.Open(t)
	var out, errb bytes.Buffer
	cmd := w.start(p.Slave, &out, &errb, "--", "/bin/sh", "-c", "echo out; echo err >&2; test -t 0 && echo STDIN-IS-TTY >&2; true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if out.String() != "out\n" || !strings.HasPrefix(errb.String(), "err\n") {
		t.Errorf("stdout %q, stderr %q: want out and err on their own streams, without CRLF", out.String(), errb.String())
	}
}

// A command that stops the sandbox's init cannot make tokrun unstoppable:
// a SIGTERM still reaches init.
func TestStoppedInitDoesNotHangTokrun(t *testing.T) {
	w := newWorld(t)
	cmd := w.start(nil, nil, nil, "--", "/bin/sh", "-c", "kill -STOP 1; exit 0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		// Not a hang, but nothing left to test: init was not stopped.
		t.Skipf("tokrun ended by itself (%v): this gVisor did not stop init on kill -STOP 1", err)
	case <-time.After(3 * time.Second):
	}
	// One SIGTERM is enough: tokrun wakes init (SIGCONT) to pass it on.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Signal(syscall.SIGTERM) // the second kills the sandbox, so that nothing is left behind
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
		t.Fatal("tokrun did not end within 30s of a SIGTERM after the command stopped init")
	}
}

// A sandbox whose kernel is stuck cannot make tokrun unstoppable: after
// the second SIGTERM, the sandbox's processes are killed on the host. The
// sandbox process is stopped here from outside, the way a call its gofer
// never answers would hold it.
func TestStuckSandboxDoesNotHangTokrun(t *testing.T) {
	w := newWorld(t)
	cmd := w.start(nil, nil, nil, "--", "/bin/sh", "-c", "echo ready; sleep 1000")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("the command said %q: %v", line, err)
	}
	sandbox := childNamed(t, cmd.Process.Pid, "runsc-sandbox")
	if err := syscall.Kill(sandbox, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if code := exitCode(t, err); code != 137 {
			t.Errorf("exit status %d, want 137 (the command killed)", code)
		}
	case <-time.After(60 * time.Second):
		syscall.Kill(sandbox, syscall.SIGKILL)
		t.Fatal("tokrun still waits for a stuck sandbox 60s after a second SIGTERM")
	}
	// Killed, and reaped once tokrun has gone.
	for i := 0; ; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", sandbox)); os.IsNotExist(err) {
			break
		}
		if i == 100 {
			syscall.Kill(sandbox, syscall.SIGKILL)
			t.Fatal("the sandbox process outlived tokrun")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A fork bomb fails inside the sandbox at --max-procs, instead of using
// up the host's processes (each process inside is one on the host); the
// command cannot raise the limit first.
func TestMaxProcsBoundsForkBomb(t *testing.T) {
	w := newWorld(t)
	writeFile(t, filepath.Join(w.project, "fork.py"), `import os, resource, time
soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
resource.setrlimit(resource.RLIMIT_NPROC, (hard, hard))
n = 0
try:
    for i in range(200):
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        n += 1
except OSError as e:
    print("refused after", n, e.errno == 11, flush=True)
os._exit(0)
`, 0o644)
	r := w.runRaw("", "--key", w.keyFile, "--state-dir", w.stateDir, "--max-procs", "40", "--", "python3", "fork.py")
	var n int
	var eagain bool
	if _, err := fmt.Sscanf(r.stdout, "refused after %d %t", &n, &eagain); err != nil || r.code != 0 || !eagain || n > 40 {
		t.Fatalf("want fork refused with EAGAIN within 40 processes, got\n%s", r)
	}
	if r := w.runRaw("", "--max-procs", "0", "--", "/bin/true"); r.code != 125 || !strings.Contains(r.stderr, "--max-procs must be at least 1") {
		t.Errorf("--max-procs 0: want a usage error, got\n%s", r)
	}
}

// childNamed returns the PID of the child of pid whose command line
// starts with name.
func childNamed(t *testing.T, pid int, name string) int {
	t.Helper()
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			cmdline, _ := os.ReadFile("/proc/" + c + "/cmdline")
			if strings.HasPrefix(string(cmdline), name) {
				n, _ := strconv.Atoi(c)
				return n
			}
		}
	}
	t.Fatalf("tokrun (PID %d) has no %s child", pid, name)
	return 0
}

// The proxy's socket cannot be changed from inside: a chmod of it, which
// gVisor would hand to the gofer and never finish, fails at once.
func TestProxySocketIsReadOnly(t *testing.T) {
	w := newWorld(t)
	cmd := w.start(nil, nil, nil, "--", "/bin/sh", "-c", "chmod 777 /.tokrun/proxy.sock 2>/dev/null; echo chmod=$?; touch /.tokrun/proxy.sock 2>/dev/null; echo touch=$?")
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
		}
	}()
	out, err := cmd.Output()
	if err != nil || string(out) != "chmod=1\ntouch=1\n" {
		t.Fatalf("%v: %q, want chmod and touch refused (after 60s the run is killed)", err, out)
	}
}

// The SSH agent's socket is never reachable from the sandbox (gVisor
// connects Unix sockets through to the host).
func TestRefusesVisibleAgentSocket(t *testing.T) {
	w := newWorld(t)
	sock := filepath.Join(w.project, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(tokrunBin, "--state-dir", w.stateDir, "--", "/bin/true")
	cmd.Dir = w.project
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root", "SSH_AUTH_SOCK=" + sock}
	out, err := cmd.CombinedOutput()
	if exitCode(t, err) != 125 || !strings.Contains(string(out), "your SSH agent's socket") {
		t.Errorf("an SSH agent socket in the working directory: want a refusal, got %v\n%s", err, out)
	}
}

// The Docker daemon's sockets (root on the host to whoever reaches them)
// and the SSH agent's are among the files a run must not show.
func TestHostSocketsAreHidden(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "/tmp/ssh-test/agent.sock")
	var paths []string
	for _, h := range hostSockets() {
		paths = append(paths, h.Path)
	}
	for _, want := range []string{"/run/docker.sock", "/var/run/docker.sock", "/tmp/ssh-test/agent.sock"} {
		if !slices.Contains(paths, want) {
			t.Errorf("hostSockets lacks %s: %v", want, paths)
		}
	}
}
