package main

import (
	"bufio"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// --env, --mount and --allow do what they say, and nothing more.
func TestEnvMountAllow(t *testing.T) {
	w := newWorld(t)
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "in.txt"), "shared data\n", 0o644)
	t.Setenv("TOKRUN_E2E_PASS", "passed-through")
	r := w.runRaw("", "--state-dir", w.stateDir, "--upstream-ca", w.caFile, "--policy", w.policy, "--key", w.keyFile,
		"--env", "MODEL=small", "--mount", data+":/data:ro", "--", "/bin/sh", "-c",
		`echo "model=$MODEL"; cat /data/in.txt; touch /data/x 2>/dev/null && echo RO-WRITABLE; echo "openai=${OPENAI_API_KEY:-absent}"`)
	if r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	for _, want := range []string{"model=small", "shared data", "openai=absent"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r)
		}
	}
	if strings.Contains(r.stdout, "RO-WRITABLE") {
		t.Errorf("a :ro mount is writable:\n%s", r)
	}

	// Without a policy everything is refused, with a hint; --allow opens
	// one host without credentials.
	noPolicy := t.TempDir()
	script := `import urllib.request, urllib.error
try:
    with urllib.request.urlopen("` + w.apiURL("/v1/x") + `", timeout=30) as r:
        print("status", r.status)
except urllib.error.URLError as e:
    print("refused", e)
`
	writeFile(t, filepath.Join(noPolicy, "get.py"), script, 0o644)
	cmd := exec.Command(tokrunBin, "--state-dir", w.stateDir, "--upstream-ca", w.caFile, "--", "python3", "get.py")
	cmd.Dir = noPolicy
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "refused") || !strings.Contains(string(out), "tokrun: hint: no policy") ||
		!strings.Contains(string(out), "--allow never reaches a private address") {
		t.Errorf("without a policy: want a refusal and a hint, got %v\n%s", err, out)
	}
}

// startTokproxy starts a tokproxy daemon with policy and key, and the
// further flags extra, in dir (relative paths are dir's), and returns its
// socket and CA certificate.
func startTokproxy(t *testing.T, w *world, dir, policy, key string, extra ...string) (sock, ca string) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "proxy.sock")
	state := filepath.Join(t.TempDir(), "state")
	proxyCmd := exec.Command(tokproxyBin, append([]string{"serve", "--listen", "unix:" + sock, "--policy", policy, "--key", key, "--upstream-ca", w.caFile, "--state-dir", state}, extra...)...)
	proxyCmd.Dir = dir
	stderr, _ := proxyCmd.StderrPipe()
	if err := proxyCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxyCmd.Process.Kill(); proxyCmd.Wait() })
	go io.Copy(io.Discard, stderr)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(state, "ca.pem")); err == nil {
			return sock, filepath.Join(state, "ca.pem")
		}
		if time.Now().After(deadline) {
			t.Fatal("tokproxy did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tokrun --proxy uses a running tokproxy daemon instead of its own proxy.
func TestExternalProxy(t *testing.T) {
	w := newWorld(t)
	sock, ca := startTokproxy(t, w, t.TempDir(), w.policy, w.keyFile)
	r := w.runRaw("", "--state-dir", w.stateDir, "--proxy", "unix:"+sock, "--proxy-ca", ca, "--", "python3", "-c", `
import json, urllib.request
with urllib.request.urlopen("`+w.apiURL("/v1/via-daemon")+`", timeout=30) as r:
    print("authorized", json.load(r)["authorized"])
`)
	if r.code != 0 || !strings.Contains(r.stdout, "authorized True") || strings.Contains(r.stderr, "warning") {
		t.Fatalf("through tokproxy: want the credential injected, got\n%s", r)
	}
}

// With --proxy, the daemon's files are found from its command line: its
// key and its clients' tokens may not show inside, nor its policy be
// writable there (the daemon reloads it), relative paths included.
func TestExternalProxyDaemonFilesAreGuarded(t *testing.T) {
	w := newWorld(t)
	b, err := os.ReadFile(w.policy)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w.project, "proxy-policy.yaml"), string(b), 0o644)
	k, err := os.ReadFile(w.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w.project, "proxy-key.txt"), string(k), 0o600)
	writeFile(t, filepath.Join(w.project, "tokens.txt"), "ci "+strings.Repeat("ab", 32)+"\n", 0o600)
	for _, tt := range []struct {
		name, policy, key string
		extra             []string
		want              string
	}{
		{"policy in the working directory", "proxy-policy.yaml", w.keyFile, nil, "the proxy's policy " + filepath.Join(w.project, "proxy-policy.yaml") + " would be writable inside the sandbox"},
		{"key in the working directory", w.policy, "proxy-key.txt", nil, "the proxy's private key " + filepath.Join(w.project, "proxy-key.txt") + " would be visible inside the sandbox"},
		{"client tokens in the working directory", w.policy, w.keyFile, []string{"--token-file", "tokens.txt"}, "the proxy's client tokens " + filepath.Join(w.project, "tokens.txt") + " would be visible inside the sandbox"},
	} {
		sock, ca := startTokproxy(t, w, w.project, tt.policy, tt.key, tt.extra...)
		r := w.runRaw("", "--state-dir", w.stateDir, "--proxy", "unix:"+sock, "--proxy-ca", ca, "--", "/bin/true")
		if r.code != 125 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%s: want exit 125 and %q, got\n%s", tt.name, tt.want, r)
		}
	}
}

// A run whose tokrun was killed leaves state behind; the next run cleans
// it up.
func TestStaleRunsAreCleaned(t *testing.T) {
	w := newWorld(t)
	pr, pw := io.Pipe()
	cmd := w.start(nil, pw, nil, "--", "/bin/sh", "-c", "echo ready; sleep 600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatal("no ready line")
	}
	go io.Copy(io.Discard, pr)
	runs, _ := os.ReadDir(filepath.Join(w.stateDir, "runs"))
	if len(runs) != 1 {
		t.Fatalf("want one live run directory, got %d", len(runs))
	}
	stale := runs[0].Name()
	cmd.Process.Kill()
	cmd.Wait()
	pw.Close()
	if _, err := os.Stat(filepath.Join(w.stateDir, "runs", stale)); err != nil {
		t.Fatalf("a killed tokrun should leave its run directory (that is what is tested): %v", err)
	}
	if r := w.run("", "--", "/bin/true"); r.code != 0 {
		t.Fatalf("next run failed:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(w.stateDir, "runs", stale)); err == nil {
		t.Errorf("the stale run directory %s was not removed", stale)
	}
	if matches, _ := filepath.Glob(filepath.Join(w.stateDir, "runsc", "*"+stale+"*")); len(matches) > 0 {
		t.Errorf("the stale sandbox state is still there: %v", matches)
	}
	for _, cg := range []string{"/sys/fs/cgroup/memory/" + stale, "/sys/fs/cgroup/pids/" + stale, "/sys/fs/cgroup/" + stale} {
		if _, err := os.Stat(cg); err == nil {
			t.Errorf("the stale cgroup %s is still there", cg)
		}
	}
	// The sandbox of the killed run is gone too.
	out, _ := exec.Command("pgrep", "-f", "runsc-sandbox.*"+stale).Output()
	if len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("the stale sandbox still runs: pids %s", out)
	}
}

func TestServeFlags(t *testing.T) {
	got := serveFlags([]string{"/usr/bin/tokproxy", "serve", "--policy", "p.yaml", "--key=/k/key.txt", "--listen", "unix:/s", "--audit=-", "--state-dir"})
	want := map[string]string{"--policy": "p.yaml", "--key": "/k/key.txt", "--audit": "-"}
	if !maps.Equal(got, want) {
		t.Fatalf("serveFlags = %v, want %v", got, want)
	}
}

// With --proxy, a daemon whose process tokrun cannot see (here: tokrun
// runs in a PID namespace of its own) cannot have its files checked:
// tokrun says so, and runs.
func TestExternalProxyUnseenDaemonWarns(t *testing.T) {
	w := newWorld(t)
	if os.Geteuid() != 0 {
		t.Skip("a PID namespace of the test's own needs root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) is not installed")
	}
	sock, ca := startTokproxy(t, w, t.TempDir(), w.policy, w.keyFile)
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", tokrunBin,
		"--state-dir", w.stateDir, "--proxy", "unix:"+sock, "--proxy-ca", ca, "--", "/bin/echo", "ran")
	cmd.Dir = w.project
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/root"}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stdout.String() != "ran\n" {
		t.Fatalf("run: %v\nstdout %q\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "cannot tell the tokproxy daemon's files") {
		t.Fatalf("no warning that the daemon's files could not be checked:\n%s", stderr.String())
	}
}

// What listens on the --proxy socket but is not "tokproxy serve" (a
// wrapper, a service manager) cannot have its files checked: tokrun says
// so, and still refuses to show a CA key beside the --proxy-ca file. A daemon without --state-dir keeps its CA key in its default state
// directory, found from its environment: inside the working directory,
// the run is refused.
func TestExternalProxyFilesFromTheDaemonItself(t *testing.T) {
	w := newWorld(t)
	sock := filepath.Join(t.TempDir(), "not-tokproxy.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	r := w.runRaw("", "--state-dir", w.stateDir, "--proxy", "unix:"+sock, "--proxy-ca", w.caFile, "--", "/bin/true")
	if r.code != 0 || !strings.Contains(r.stderr, "cannot tell the tokproxy daemon's files") {
		t.Fatalf("a listener that is not tokproxy serve: want a warning, got\n%s", r)
	}
	// Its CA key, where a daemon keeps it beside the certificate given
	// with --proxy-ca, is still refused.
	caCopy := filepath.Join(w.project, "ca.pem")
	writeFile(t, caCopy, string(w.ca.certPEM), 0o644)
	writeFile(t, filepath.Join(w.project, "ca-key.pem"), "-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----\n", 0o600)
	r = w.runRaw("", "--state-dir", w.stateDir, "--proxy", "unix:"+sock, "--proxy-ca", caCopy, "--", "/bin/true")
	if want := "the proxy's CA key " + filepath.Join(w.project, "ca-key.pem") + " would be visible inside the sandbox"; r.code != 125 || !strings.Contains(r.stderr, want) {
		t.Fatalf("a listener that is not tokproxy serve, its CA key in the working directory: want exit 125 and %q, got\n%s", want, r)
	}

	home := filepath.Join(w.project, "home")
	sock = filepath.Join(t.TempDir(), "proxy.sock")
	proxyCmd := exec.Command(tokproxyBin, "serve", "--listen", "unix:"+sock, "--policy", w.policy, "--key", w.keyFile)
	proxyCmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
	if err := proxyCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxyCmd.Process.Kill(); proxyCmd.Wait() })
	ca := filepath.Join(home, ".local", "state", "tokproxy", "ca.pem")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ca); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tokproxy did not start")
		}
	}
	// The CA certificate copied elsewhere, as clients get it: the CA key
	// is not beside it.
	caPEM, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	ca = filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, ca, string(caPEM), 0o644)
	r = w.runRaw("", "--state-dir", w.stateDir, "--proxy", "unix:"+sock, "--proxy-ca", ca, "--", "/bin/true")
	if want := "the proxy's state directory " + filepath.Join(home, ".local", "state", "tokproxy") + " would be visible inside the sandbox"; r.code != 125 || !strings.Contains(r.stderr, want) {
		t.Fatalf("want exit 125 and %q, got\n%s", want, r)
	}
}

// With --proxy, the daemon's executable may not be writable inside: the
// command could replace it, and the daemon's next start would run that
// with the daemon's key.
func TestExternalProxyExecutableProtected(t *testing.T) {
	w := newWorld(t)
	b, err := os.ReadFile(tokproxyBin)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(w.project, "bin", "tokproxy")
	os.MkdirAll(filepath.Dir(bin), 0o755)
	writeFile(t, bin, string(b), 0o755)
	state, sock := t.TempDir(), filepath.Join(t.TempDir(), "proxy.sock")
	proxyCmd := exec.Command(bin, "serve", "--listen", "unix:"+sock, "--policy", w.policy, "--key", w.keyFile, "--state-dir", state)
	if err := proxyCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxyCmd.Process.Kill(); proxyCmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tokproxy did not start")
		}
	}
	r := w.runRaw("", "--state-dir", w.stateDir, "--proxy", "unix:"+sock, "--proxy-ca", filepath.Join(state, "ca.pem"), "--", "/bin/true")
	if want := "the tokproxy daemon's executable " + bin + " would be writable inside the sandbox"; r.code != 125 || !strings.Contains(r.stderr, want) {
		t.Fatalf("want exit 125 and %q, got\n%s", want, r)
	}
}
