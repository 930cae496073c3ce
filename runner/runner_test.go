package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParseMount(t *testing.T) {
	wd, _ := os.Getwd()
	for _, tc := range []struct {
		in   string
		want Mount
		err  string
	}{
		{in: "/data:/data", want: Mount{Source: "/data", Dest: "/data"}},
		{in: "/data:/in/x/:ro", want: Mount{Source: "/data", Dest: "/in/x", ReadOnly: true}},
		{in: "/data:/d:rw", want: Mount{Source: "/data", Dest: "/d"}},
		{in: "rel:/d", want: Mount{Source: filepath.Join(wd, "rel"), Dest: "/d"}},
		{in: "/data", err: "want SRC:DST"},
		{in: "/a:/b:ro:x", err: "want SRC:DST"},
		{in: "/a:/b:rx", err: "the mode must be ro or rw"},
		{in: ":/b", err: "must not be empty"},
		{in: "/a:b", err: "DST must be an absolute path"},
		{in: "/a:/", err: "DST cannot be /"},
		{in: "/a:/.tokrun/x", err: "DST cannot be under /.tokrun"},
		{in: "/a:/proc", err: "DST cannot be under /proc"},
		{in: "/a:/dev/shm", err: "DST cannot be under /proc"},
	} {
		got, err := ParseMount(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrMount) {
				t.Errorf("ParseMount(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMount(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// The sandbox's environment is exactly tokrun's own variables and the
// caller's extras: nothing else of the host's (an agent socket, a token)
// passes, and the proxy and trust variables cannot be changed.
func TestEnvironmentIsBuiltFromScratch(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-host")
	t.Setenv("GITHUB_TOKEN", "ghp-host")
	t.Setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
	t.Setenv("NO_PROXY", "*")
	t.Setenv("LANG", "de_DE.UTF-8")
	t.Setenv("TERM", "vt100")
	env, err := Environment("/bundle.pem", []string{"DEMO=ph", "PATH=/custom"})
	if err != nil {
		t.Fatal(err)
	}
	const proxy, bundle = "http://127.0.0.1:3128", "/bundle.pem"
	want := []string{
		"AWS_CA_BUNDLE=" + bundle, "CURL_CA_BUNDLE=" + bundle, "DEMO=ph", "GIT_SSL_CAINFO=" + bundle, "HOME=/root",
		"HTTPS_PROXY=" + proxy, "HTTP_PROXY=" + proxy, "LANG=de_DE.UTF-8", "NODE_EXTRA_CA_CERTS=" + bundle, "NODE_USE_ENV_PROXY=1",
		"PATH=/custom", "PIP_CERT=" + bundle, "REQUESTS_CA_BUNDLE=" + bundle, "SSL_CERT_FILE=" + bundle, "TERM=vt100",
		"http_proxy=" + proxy, "https_proxy=" + proxy,
	}
	if !slices.Equal(env, want) {
		t.Errorf("environment\n%q\nwant exactly\n%q", env, want)
	}
	for _, bad := range []string{"HTTPS_PROXY=x", "NO_PROXY=x", "no_proxy=*", "SSL_CERT_FILE=/x", "NOEQUALS"} {
		if _, err := Environment("/b", []string{bad}); err == nil {
			t.Errorf("Environment accepted %q", bad)
		}
	}
}

func TestCheckHidden(t *testing.T) {
	dir := t.TempDir()
	project := filepath.Join(dir, "project")
	keys := filepath.Join(dir, "keys")
	os.MkdirAll(project, 0o755)
	os.MkdirAll(keys, 0o755)
	key := filepath.Join(keys, "key.txt")
	os.WriteFile(key, []byte("k"), 0o600)
	linkInProject := filepath.Join(project, "key-link")
	os.Symlink(key, linkInProject)
	bind := func(src, dst string) specs.Mount { return specs.Mount{Type: "bind", Source: src, Destination: dst} }
	tmpfs := func(dst string) specs.Mount { return specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: dst} }

	for _, tc := range []struct {
		name    string
		hidden  string
		mounts  []specs.Mount
		visible bool
	}{
		{"outside every mount", key, []specs.Mount{bind(project, project)}, false},
		{"mounted directory holds it", key, []specs.Mount{bind(keys, "/k")}, true},
		{"parent directory mounted", key, []specs.Mount{bind(dir, "/d")}, true},
		{"hidden path is a symlink into a mount", linkInProject, []specs.Mount{bind(keys, "/k")}, true},
		{"covered by a later tmpfs", key, []specs.Mount{bind(dir, "/d"), tmpfs("/d/keys")}, false},
		{"covered by a later bind of something else", key, []specs.Mount{bind(dir, "/d"), bind(project, "/d/keys")}, false},
		{"a later mount under it does not cover it", key, []specs.Mount{bind(dir, "/d"), tmpfs("/d/keys/other")}, true},
		{"a later mount beside it does not cover it", key, []specs.Mount{bind(dir, "/d"), tmpfs("/d/ke")}, true},
		{"a missing hidden file is not visible", filepath.Join(keys, "nope"), []specs.Mount{bind(keys, "/k")}, false},
	} {
		err := checkHidden([]Hidden{{Path: tc.hidden, What: "the key"}}, tc.mounts)
		if got := err != nil; got != tc.visible {
			t.Errorf("%s: checkHidden = %v, want visible=%v", tc.name, err, tc.visible)
		}
		if err != nil && !errors.Is(err, ErrVisible) {
			t.Errorf("%s: error %v is not ErrVisible", tc.name, err)
		}
	}

	// Another path to the same directory, through a host bind mount, is
	// the same directory: files are compared by device and inode.
	if os.Geteuid() == 0 {
		alias := filepath.Join(dir, "alias")
		os.Mkdir(alias, 0o755)
		if err := syscall.Mount(keys, alias, "", syscall.MS_BIND, ""); err != nil {
			t.Fatalf("bind mount: %v", err)
		}
		err := checkHidden([]Hidden{{Path: key, What: "the key"}}, []specs.Mount{bind(alias, "/a")})
		syscall.Unmount(alias, 0)
		var ve *VisibleError
		if !errors.As(err, &ve) || ve.Inside != "/a/key.txt" {
			t.Errorf("a bind-mount alias of the key's directory: %v", err)
		}
	} else {
		t.Log("not root: the bind-mount alias case is not checked (it needs mount(2))")
	}

	// A hard link elsewhere cannot be found, so a linked key is refused.
	if err := os.Link(key, filepath.Join(project, "hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := checkHidden([]Hidden{{Path: key, What: "the key"}}, nil); err == nil || !strings.Contains(err.Error(), "hard links") {
		t.Errorf("a hard-linked key: %v", err)
	}
}

func TestLayout(t *testing.T) {
	run := t.TempDir()
	project := t.TempDir()
	extra := []Mount{{Source: t.TempDir(), Dest: "/data", ReadOnly: true}}
	l, err := buildLayout(run, "/proc/self/exe", filepath.Join(run, "proxy.sock"), project, extra, []byte("-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n"))
	if err != nil {
		t.Fatal(err)
	}
	byDest := map[string]specs.Mount{}
	var order []string
	for _, m := range l.mounts {
		byDest[m.Destination] = m
		order = append(order, m.Destination)
	}
	ro := func(dst string) bool { return slices.Contains(byDest[dst].Options, "ro") }
	for _, dst := range []string{"/usr", "/etc", "/data", insideInit} {
		if _, ok := byDest[dst]; !ok || !ro(dst) {
			t.Errorf("%s is not mounted read-only: %+v", dst, byDest[dst])
		}
	}
	if m := byDest[project]; m.Source != project || ro(project) {
		t.Errorf("the working directory is not mounted read-write at its own path: %+v", m)
	}
	if byDest["/tmp"].Type != "tmpfs" {
		t.Errorf("/tmp is not a private tmpfs: %+v", byDest["/tmp"])
	}
	if _, err := os.Stat("/etc/shadow"); err == nil {
		if m := byDest["/etc/shadow"]; m.Source != filepath.Join(run, "empty") || slices.Index(order, "/etc/shadow") < slices.Index(order, "/etc") {
			t.Errorf("/etc/shadow is not masked after /etc is mounted: %+v", m)
		}
	}
	if _, err := os.Stat("/etc/ssl/private"); err == nil && byDest["/etc/ssl/private"].Type != "tmpfs" {
		t.Errorf("/etc/ssl/private is not masked")
	}
	// Every file under /etc that others may not read is masked, not only
	// the well-known ones.
	private, err := privateUnder("/etc", maskedPaths)
	if err != nil {
		t.Fatal(err)
	}
	if len(private) == len(maskedPaths) {
		t.Log("no private file under /etc beyond the well-known ones: only those are checked here")
	}
	for _, p := range private {
		st, err := os.Stat(p)
		if err != nil || unix.Access(p, unix.R_OK) != nil {
			continue // not there, or not readable by tokrun either
		}
		m, ok := byDest[p]
		switch {
		case !ok || slices.Index(order, p) < slices.Index(order, "/etc"):
			t.Errorf("the private %s is not masked after /etc is mounted: %+v", p, m)
		case st.IsDir() && m.Type != "tmpfs":
			t.Errorf("the private directory %s is not covered by an empty tmpfs: %+v", p, m)
		case !st.IsDir() && m.Source != filepath.Join(run, "empty"):
			t.Errorf("the private file %s is not covered by an empty file: %+v", p, m)
		}
	}
	bundle, err := os.ReadFile(filepath.Join(run, "ca-bundle.pem"))
	if err != nil || !strings.HasSuffix(string(bundle), "TEST\n-----END CERTIFICATE-----\n") {
		t.Errorf("the trust bundle does not end with the run's CA")
	}
	if l.bundle != insideDir+"/ca-bundle.pem" {
		if m := byDest[l.bundle]; m.Source != filepath.Join(run, "ca-bundle.pem") {
			t.Errorf("the system bundle %s is not replaced: %+v", l.bundle, m)
		}
	}
	for _, name := range topLevel {
		if st, err := os.Lstat("/" + name); err == nil && st.Mode()&os.ModeSymlink != 0 {
			if target, _ := os.Readlink(filepath.Join(l.rootfs, name)); target == "" {
				t.Errorf("/%s is a symlink on the host but not in the skeleton root", name)
			}
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	noexec := filepath.Join(dir, "data")
	os.WriteFile(noexec, nil, 0o644)
	if p, err := lookPath("tool", "/nonexistent:"+dir); err != nil || p != exe {
		t.Errorf("lookPath(tool) = %q, %v", p, err)
	}
	if _, err := lookPath("data", dir); !errors.Is(err, os.ErrPermission) {
		t.Errorf("lookPath of a non-executable: %v, want permission denied", err)
	}
	if _, err := lookPath("missing", dir); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("lookPath of a missing command: %v", err)
	}
	if p, err := lookPath(exe, ""); err != nil || p != exe {
		t.Errorf("lookPath of a path: %q, %v", p, err)
	}
}

func TestIsInit(t *testing.T) {
	for args, want := range map[string]bool{"/.tokrun/tokrun-init --": true, "tokrun-init": true, "tokrun --": false, "": false} {
		if got := IsInit(strings.Fields(args)); got != want {
			t.Errorf("IsInit(%q) = %v", args, got)
		}
	}
}

func TestPrivateUnder(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "public"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "secret.key"), nil, 0o600)
	os.MkdirAll(filepath.Join(dir, "private", "inner"), 0o700)
	os.MkdirAll(filepath.Join(dir, "open", "deep"), 0o755)
	os.WriteFile(filepath.Join(dir, "open", "deep", "host.key"), nil, 0o640)
	os.Symlink("/etc/shadow", filepath.Join(dir, "link"))
	got, err := privateUnder(dir, []string{"/always"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/always", filepath.Join(dir, "open", "deep", "host.key"), filepath.Join(dir, "private"), filepath.Join(dir, "secret.key")}
	slices.Sort(got[1:])
	if !slices.Equal(got, want) {
		t.Errorf("privateUnder = %v, want %v", got, want)
	}
}

func TestChangedDuringRun(t *testing.T) {
	isolateHistory(t)
	stateDir, project, other := t.TempDir(), t.TempDir(), t.TempDir()
	st := state{dir: stateDir, history: filepath.Join(stateDir, historyFile)}
	now := time.Now()
	st.appendHistory(historyRecord{ID: "old", Places: []string{project}, Start: now.Add(-time.Hour)})
	st.appendHistory(historyRecord{ID: "old", End: now.Add(-59 * time.Minute)})
	policyFile := filepath.Join(project, "tokrun.yaml")
	os.WriteFile(policyFile, []byte("version: 1\n"), 0o644)
	outside := filepath.Join(other, "tokrun.yaml")
	os.WriteFile(outside, []byte("version: 1\n"), 0o644)
	if w, err := ChangedDuringRun(stateDir, policyFile); err != nil || w != nil {
		t.Fatalf("a file changed after every run: %v, %v", w, err)
	}
	// A run that is still going (no end yet) covers now.
	st.appendHistory(historyRecord{ID: "live", Places: []string{project}, Start: time.Now().Add(-time.Second)})
	os.Chmod(policyFile, 0o640)
	if w, err := ChangedDuringRun(stateDir, policyFile); err != nil || w == nil || w.ID != "live" || w.Path != policyFile {
		t.Fatalf("a file changed during a run, under its working directory: %v, %v", w, err)
	}
	if w, _ := ChangedDuringRun(stateDir, outside); w != nil {
		t.Fatalf("a file outside the run's places: %v", w)
	}
	// A symlink the run made to an old file is caught by its own change time.
	link := filepath.Join(project, "link.yaml")
	os.Symlink(outside, link)
	if w, _ := ChangedDuringRun(stateDir, link); w == nil {
		t.Fatalf("a symlink made during the run was not caught")
	}
}

// A bind mount brings the host mounts below its source with it (bind
// mounts are recursive): each is checked as a mount of its own, in the
// order that lets a later mount still cover it.
func TestWithSubmounts(t *testing.T) {
	dir := t.TempDir()
	project := filepath.Join(dir, "project")
	os.MkdirAll(filepath.Join(project, "sub"), 0o755)
	points := func() ([]string, error) {
		return []string{"/", dir, project, filepath.Join(project, "sub"), filepath.Join(project, "sub", "deeper"), project + "-other"}, nil
	}
	mounts := []specs.Mount{
		{Type: "tmpfs", Destination: "/tmp"},
		{Type: "bind", Source: project, Destination: "/work", Options: []string{"rbind", "ro"}},
		{Type: "bind", Source: filepath.Join(dir, "missing"), Destination: "/gone"},
	}
	got, err := withSubmounts(mounts, points)
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.Mount{
		mounts[0], mounts[1],
		{Type: "bind", Source: filepath.Join(project, "sub"), Destination: "/work/sub", Options: []string{"rbind", "ro"}},
		{Type: "bind", Source: filepath.Join(project, "sub", "deeper"), Destination: "/work/sub/deeper", Options: []string{"rbind", "ro"}},
		mounts[2],
	}
	if !slices.EqualFunc(got, want, func(a, b specs.Mount) bool {
		return a.Type == b.Type && a.Source == b.Source && a.Destination == b.Destination && slices.Equal(a.Options, b.Options)
	}) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if _, err := withSubmounts(mounts, func() ([]string, error) { return nil, errors.New("no /proc") }); err == nil {
		t.Fatal("a host whose mounts cannot be listed must not pass")
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/t\011x\012y\134z`: "/t\tx\ny\\z", `/plain`: "/plain", `/bad\04`: `/bad\04`, `/x\0`: `/x\0`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
	if pts, err := mountPoints(); err != nil || !slices.Contains(pts, "/") {
		t.Fatalf("mountPoints: %v, %v", pts, err)
	}
}

// Entries on the way to the policy count: a directory swapped in during a
// run (also on the way to the target of a symlink made before the run),
// or a symlink planted in a working directory reached through a symlink,
// are caught; a file the run only created elsewhere in the working
// directory is not.
func TestChangedDuringRunOnTheWay(t *testing.T) {
	isolateHistory(t)
	stateDir, project, other := t.TempDir(), t.TempDir(), t.TempDir()
	for _, d := range []string{"conf", "examples"} {
		os.Mkdir(filepath.Join(project, d), 0o755)
		os.WriteFile(filepath.Join(project, d, "p.yaml"), []byte("version: 1\n"), 0o644)
	}
	os.WriteFile(filepath.Join(other, "tokrun.yaml"), []byte("version: 1\n"), 0o644)
	link := filepath.Join(other, "project-link")
	os.Symlink(project, link)
	// The user's own link to the policy, made before the run: what the
	// run swaps on the way to its target counts.
	userLink := filepath.Join(project, "policy-link.yaml")
	os.Symlink(filepath.Join("conf", "p.yaml"), userLink)
	time.Sleep(1100 * time.Millisecond) // change times are kept in whole seconds here
	st := state{dir: stateDir, history: filepath.Join(stateDir, historyFile)}
	st.appendHistory(historyRecord{ID: "live", Places: []string{project}, Start: time.Now().Add(-clockLag)})

	os.WriteFile(filepath.Join(project, "notes.txt"), []byte("x"), 0o644) // changes the project directory itself
	policyFile := filepath.Join(project, "conf", "p.yaml")
	for _, p := range []string{policyFile, userLink} {
		if c, err := ChangedDuringRun(stateDir, p); err != nil || c != nil {
			t.Fatalf("nothing on the way to %s changed: %+v, %v", p, c, err)
		}
	}
	os.Rename(filepath.Join(project, "conf"), filepath.Join(project, "conf.orig"))
	os.Rename(filepath.Join(project, "examples"), filepath.Join(project, "conf"))
	if c, err := ChangedDuringRun(stateDir, policyFile); err != nil || c == nil || c.Path != filepath.Join(project, "conf") {
		t.Fatalf("a directory swapped in: %+v, %v", c, err)
	}
	if c, err := ChangedDuringRun(stateDir, userLink); err != nil || c == nil || c.Path != filepath.Join(project, "conf") {
		t.Fatalf("a directory swapped in on the way to an older symlink's target: %+v, %v", c, err)
	}
	os.Symlink(filepath.Join(other, "tokrun.yaml"), filepath.Join(project, "tokrun.yaml"))
	if c, err := ChangedDuringRun(stateDir, filepath.Join(link, "tokrun.yaml")); err != nil || c == nil || c.Path != filepath.Join(project, "tokrun.yaml") {
		t.Fatalf("a symlink planted, seen through a linked working directory: %+v, %v", c, err)
	}
}

// The history of runs is kept where it outlives the default state
// directory (a tmpfs, or gone at logout), with or without --state-dir.
func TestHistoryPath(t *testing.T) {
	for _, tt := range []struct {
		root bool
		home string
		want string
	}{
		{true, "/root", "/var/lib/tokrun/history.jsonl"},
		{true, "", "/var/lib/tokrun/history.jsonl"},
		{false, "/h", "/h/.local/state/tokrun/history.jsonl"},
		{false, "rel", ""},
		{false, "", ""},
	} {
		if got := historyPath(tt.root, tt.home); got != tt.want {
			t.Errorf("historyPath(%v, %q) = %q, want %q", tt.root, tt.home, got, tt.want)
		}
	}
}

// Trimming the history keeps the newer half, and the start of a run that
// has not ended, however old.
func TestTrimHistoryKeepsOpenWindows(t *testing.T) {
	dir := t.TempDir()
	st := state{dir: dir, history: filepath.Join(dir, historyFile)}
	start := time.Now().Add(-time.Hour)
	st.appendHistory(historyRecord{ID: "long", Places: []string{"/p"}, Start: start})
	for i := range 4000 {
		id := fmt.Sprintf("r%d", i)
		st.appendHistory(historyRecord{ID: id, Places: []string{"/p/" + strings.Repeat("x", 200)}, Start: start})
		st.appendHistory(historyRecord{ID: id, End: start.Add(time.Second)})
	}
	info, err := os.Stat(st.history)
	if err != nil || info.Size() > historyMax+historyMax/2 {
		t.Fatalf("history not trimmed: %v, %v", info.Size(), err)
	}
	ws, err := st.windows(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) == 0 || ws[0].ID != "long" || ws[0].End.Before(time.Now().Add(-time.Minute)) {
		t.Fatalf("the open run's window was dropped: first of %d windows is %+v", len(ws), ws[0])
	}
	if ws[len(ws)-1].ID != "r3999" {
		t.Fatalf("the newest window is %s", ws[len(ws)-1].ID)
	}
}

// Users other than root get a state directory they can create without
// XDG_RUNTIME_DIR.
func TestDefaultStateDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tt := range []struct {
		root bool
		env  map[string]string
		want string
	}{
		{true, map[string]string{"XDG_RUNTIME_DIR": "/run/user/0", "HOME": "/root"}, "/run/user/0/tokrun"},
		{true, map[string]string{"HOME": "/root"}, "/run/tokrun"},
		{false, map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000", "HOME": "/h"}, "/run/user/1000/tokrun"},
		{false, map[string]string{"HOME": "/h"}, "/h/.cache/tokrun"},
		{false, map[string]string{"XDG_RUNTIME_DIR": "rel", "HOME": "/h"}, "/h/.cache/tokrun"},
		{false, nil, "/run/tokrun"},
	} {
		if got := defaultStateDir(tt.root, env(tt.env)); got != tt.want {
			t.Errorf("defaultStateDir(%v, %v) = %q, want %q", tt.root, tt.env, got, tt.want)
		}
	}
}

// A run whose end was never recorded is over when its boot or its tokrun
// process is: its window then closes, once and for all, and a policy
// saved again after that is trusted. A live run's window stays open.
func TestWindowOfAFinishedRunCloses(t *testing.T) {
	isolateHistory(t)
	stateDir, project := t.TempDir(), t.TempDir()
	st := state{dir: stateDir, history: filepath.Join(stateDir, historyFile)}
	pol := filepath.Join(project, "tokrun.yaml")
	os.WriteFile(pol, []byte("version: 1\n"), 0o644)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	hour := time.Now().Add(-time.Hour)
	bootStart, err := bootTime()
	if err != nil {
		t.Fatal(err)
	}
	st.appendHistory(historyRecord{ID: "earlier-boot", Places: []string{project}, Start: bootStart.Add(-time.Hour), Machine: machineID(), Boot: "00000000-0000-0000-0000-000000000000", PIDNS: pidNS(), PID: os.Getpid()})
	st.appendHistory(historyRecord{ID: "killed", Places: []string{project}, Start: hour, Machine: machineID(), Boot: bootID(), PIDNS: pidNS(), PID: dead.Process.Pid, PIDStart: 1})
	live := startRecord("live", []string{t.TempDir()})
	st.appendHistory(live)
	// A run whose process start time was not known: its process cannot be
	// told from another with the same ID, so its window stays open.
	st.appendHistory(historyRecord{ID: "unknown-start", Places: []string{t.TempDir()}, Start: hour, Machine: machineID(), Boot: bootID(), PIDNS: pidNS(), PID: dead.Process.Pid})

	// The killed run's end is found now: the file, written before, may be
	// its plant.
	c, err := ChangedDuringRun(stateDir, pol)
	if err != nil || c == nil || c.ID != "killed" {
		t.Fatalf("a file changed before a killed run was found over: %+v, %v", c, err)
	}
	ws, err := st.windows(time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		switch w.ID {
		case "earlier-boot":
			if !w.End.Equal(bootStart) {
				t.Errorf("a run of an earlier boot ends at %v, want this boot's start %v", w.End, bootStart)
			}
		case "killed":
			if w.End.After(time.Now()) || w.foundFinished {
				t.Errorf("the killed run's end was not recorded: %+v", w)
			}
		case "live", "unknown-start":
			if w.End.Before(time.Now().Add(59 * time.Minute)) {
				t.Errorf("%s: the window closed: %+v", w.ID, w)
			}
		}
	}
	// Saved again, it is trusted.
	time.Sleep(20 * time.Millisecond)
	if err := os.Chmod(pol, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := ChangedDuringRun(stateDir, pol); err != nil || c != nil {
		t.Fatalf("a policy saved again after the runs ended: %+v, %v", c, err)
	}
}

// A run whose end one history recorded ended then for every history: a
// reader of another history that finds the run over does not move its
// end to now (which refused a policy saved again since).
func TestRecordedEndHoldsAcrossHistories(t *testing.T) {
	isolateHistory(t)
	stateDir, project := t.TempDir(), t.TempDir()
	persistent := state{history: persistentHistory()}
	if err := os.MkdirAll(filepath.Dir(persistent.history), 0o700); err != nil {
		t.Fatal(err)
	}
	local := state{dir: stateDir, history: filepath.Join(stateDir, historyFile)}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	start, end := time.Now().Add(-time.Hour), time.Now().Add(-time.Minute)
	killed := historyRecord{ID: "killed", Places: []string{project}, Start: start, Machine: machineID(), Boot: bootID(), PIDNS: pidNS(), PID: dead.Process.Pid, PIDStart: 1}
	for _, st := range []state{persistent, local} {
		if err := st.appendHistory(killed); err != nil {
			t.Fatal(err)
		}
	}
	persistent.appendHistory(historyRecord{ID: "killed", End: end})
	pol := filepath.Join(project, "tokrun.yaml")
	os.WriteFile(pol, []byte("version: 1\n"), 0o644) // saved after the recorded end
	if c, err := ChangedDuringRun(stateDir, pol); err != nil || c != nil {
		t.Fatalf("a policy saved after the run's recorded end: %+v, %v", c, err)
	}
	ws, err := local.windows(time.Now())
	if err != nil || len(ws) != 1 || !ws[0].End.Equal(end) || ws[0].foundFinished {
		t.Fatalf("the state directory's history: %+v, %v; want the recorded end %v written there", ws, err, end)
	}
}

// isolateHistory points the persistent history of runs at a temporary
// file, and makes the process look like a user other than root, so that a
// test never reads or writes the machine's history.
func isolateHistory(t *testing.T) {
	t.Helper()
	t.Setenv(usernsEnv, "1")
	p := filepath.Join(t.TempDir(), historyFile)
	saved := persistentHistory
	persistentHistory = func() string { return p }
	t.Cleanup(func() { persistentHistory = saved })
}

// An end a reader found (the run's process gone) never shortens the end
// the run recorded itself, whichever is written last.
func TestFoundEndDoesNotShrinkRecordedEnd(t *testing.T) {
	isolateHistory(t)
	stateDir, project := t.TempDir(), t.TempDir()
	st := state{dir: stateDir, history: filepath.Join(stateDir, historyFile)}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	st.appendHistory(historyRecord{ID: "x", Places: []string{project}, Start: time.Now().Add(-time.Minute), Machine: machineID(), Boot: bootID(), PIDNS: pidNS(), PID: dead.Process.Pid, PIDStart: 1})
	ws, err := st.windows(time.Now()) // a reader: x looks over
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	pol := filepath.Join(project, "tokrun.yaml")
	if err := os.WriteFile(pol, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	ownEnd := time.Now()
	st.appendHistory(historyRecord{ID: "x", End: ownEnd}) // x's own end
	st.closeFinished(ws)                                  // then the reader's
	after, err := st.windows(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range after {
		if w.ID == "x" && w.End.Before(ownEnd) {
			t.Errorf("x's window ends at %v, before the end x recorded (%v)", w.End, ownEnd)
		}
	}
	if c, err := ChangedDuringRun(stateDir, pol); err != nil || c == nil {
		t.Errorf("a policy planted by x before it ended is trusted: %+v, %v", c, err)
	}
}

// A run of another machine sharing the history (a home on NFS), or one
// recorded without a machine, is never judged by this machine's boot or
// processes; nor a run of this boot that began after it, by its boot.
func TestRunsOfElsewhereStayOpen(t *testing.T) {
	isolateHistory(t)
	stateDir, project := t.TempDir(), t.TempDir()
	st := state{dir: stateDir, history: filepath.Join(stateDir, historyFile)}
	start := time.Now().Add(-time.Second)
	bootStart, err := bootTime()
	if err != nil {
		t.Fatal(err)
	}
	st.appendHistory(historyRecord{ID: "other-machine", Places: []string{project}, Start: bootStart.Add(-time.Hour), Machine: "another-machine", Boot: "11111111-2222-3333-4444-555555555555", PIDNS: pidNS(), PID: 4242, PIDStart: 99})
	st.appendHistory(historyRecord{ID: "other-boot-later", Places: []string{project}, Start: start, Machine: machineID(), Boot: "11111111-2222-3333-4444-555555555555", PIDNS: pidNS(), PID: 4242, PIDStart: 99})
	st.appendHistory(historyRecord{ID: "other-pidns", Places: []string{project}, Start: start, Machine: machineID(), Boot: bootID(), PIDNS: "pid:[1]", PID: 4242, PIDStart: 99})
	ws, err := st.windows(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 3 {
		t.Fatalf("%d windows", len(ws))
	}
	for _, w := range ws {
		if w.foundFinished {
			t.Errorf("%s was found over: %+v", w.ID, w)
		}
	}
}

// A start record names this machine, boot, PID namespace and process (so
// that its run can be found over), and opens the window early enough for
// file times, which lag the clock.
func TestStartRecord(t *testing.T) {
	before := time.Now()
	r := startRecord("x", []string{"/p"})
	if !r.Start.Before(before.Add(-clockLag + time.Millisecond)) {
		t.Errorf("start %v is not %v before the call (%v)", r.Start, clockLag, before)
	}
	start, err := processStart(os.Getpid())
	if err != nil || r.PID != os.Getpid() || r.PIDStart != start || start == 0 {
		t.Errorf("process %d started %d, want %d started %d (%v)", r.PID, r.PIDStart, os.Getpid(), start, err)
	}
	if r.Boot == "" || r.Boot != bootID() || r.PIDNS == "" || r.PIDNS != pidNS() || r.Machine != machineID() {
		t.Errorf("record %+v", r)
	}
	if _, err := processStart(1 << 30); err == nil {
		t.Error("a process that cannot exist has a start time")
	}
}

// Every run is recorded in the persistent history, with or without a
// state directory of its own, and a run whose start cannot be recorded
// does not start.
func TestRunsAreRecordedWhereChecksRead(t *testing.T) {
	p := persistentHistory()
	if p == "" {
		t.Skip("no home directory for a persistent history")
	}
	st, err := openState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if st.history != p {
		t.Fatalf("a run with a state directory records in %s, want the persistent history %s", st.history, p)
	}
	dir := t.TempDir()
	s := &Sandbox{id: "no-history", st: state{dir: dir, history: dir}} // a directory: no record can be appended
	if err := s.recordStart(); err == nil || s.started {
		t.Fatalf("recordStart into a directory: %v, started %v", err, s.started)
	}
}

// Runs that append to the history while it is trimmed lose no record.
func TestHistoryAppendsDuringTrim(t *testing.T) {
	dir := t.TempDir()
	st := state{dir: dir, history: filepath.Join(dir, historyFile)}
	line, _ := json.Marshal(historyRecord{ID: "old", Places: []string{"/p/" + strings.Repeat("x", 300)}, Start: time.Now().Add(-time.Hour), End: time.Now().Add(-time.Hour)})
	// Over the limit: the first append trims.
	if err := os.WriteFile(st.history, bytes.Repeat(append(line, '\n'), historyMax/len(line)+1), 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				if err := st.appendHistory(historyRecord{ID: fmt.Sprintf("g%d-%d", g, i), Start: time.Now()}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(st.history)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) > historyMax {
		t.Fatalf("the history was not trimmed: %d bytes", len(b))
	}
	for g := range 8 {
		for i := range 40 {
			if !bytes.Contains(b, []byte(fmt.Sprintf(`"id":"g%d-%d"`, g, i))) {
				t.Fatalf("record g%d-%d lost", g, i)
			}
		}
	}
}

// The state directory, which holds the runs' proxy sockets, is made
// private to its user when opened, also when it was made open before.
func TestStateDirectoryIsPrivate(t *testing.T) {
	isolateHistory(t)
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := openState(dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("state directory mode %v (%v), want 0700", st.Mode().Perm(), err)
	}
}

// A run records as places it can write its working directory and its
// read-write mounts' sources (a policy it plants there is refused), not
// its read-only mounts.
func TestReadWriteMountsAreRecordedAsPlaces(t *testing.T) {
	dir, project, rw, ro := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	s := &Sandbox{id: "mounts", st: state{dir: dir, history: filepath.Join(dir, historyFile)}, cfg: Config{
		Dir:    project,
		Mounts: []Mount{{Source: rw, Dest: "/rw"}, {Source: ro, Dest: "/ro", ReadOnly: true}},
	}}
	if err := s.recordStart(); err != nil {
		t.Fatal(err)
	}
	ws, err := s.st.windows(time.Now())
	if err != nil || len(ws) != 1 {
		t.Fatalf("windows: %+v, %v", ws, err)
	}
	if want := []string{project, rw}; !slices.Equal(ws[0].Places, want) {
		t.Errorf("places %v, want %v", ws[0].Places, want)
	}
}

// A run whose start cannot be recorded in the history of runs does not
// start: Run fails, saying why, before any sandbox exists.
func TestRunNotStartedWithoutRecord(t *testing.T) {
	isolateHistory(t)
	stateDir := t.TempDir()
	t.Cleanup(func() { RemoveState(stateDir) }) // should a sandbox have been made
	s, err := New(Config{Command: []string{"/bin/true"}, Dir: t.TempDir(), StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.st.history = t.TempDir() // a directory: no record can be appended
	code, err := s.Run(t.Context())
	if code != ExitFailure || err == nil || !strings.Contains(err.Error(), "recording the run in the history of runs") {
		t.Fatalf("Run = %d, %v; want a failure to record the run", code, err)
	}
	if s.c != nil {
		t.Fatal("a sandbox was created for a run whose start was not recorded")
	}
	if ids, err := os.ReadDir(s.st.runscRoot()); err != nil || len(ids) != 0 {
		t.Fatalf("gVisor's state holds %v (%v), want no sandbox", ids, err)
	}
}
