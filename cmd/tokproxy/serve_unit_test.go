package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokrun/tokrun/internal/syncbuf"
)

func TestParseListen(t *testing.T) {
	tests := []struct {
		in      string
		want    listenSpec
		wantErr string
	}{
		{in: "unix:/run/tokproxy/p.sock", want: listenSpec{"unix", "/run/tokproxy/p.sock"}},
		{in: "unix:./a//p.sock", want: listenSpec{"unix", "a/p.sock"}},
		{in: "tcp:127.0.0.1:3128", want: listenSpec{"tcp", "127.0.0.1:3128"}},
		{in: "tcp:[::1]:0", want: listenSpec{"tcp", "[::1]:0"}},
		{in: "tcp:localhost:8080", want: listenSpec{"tcp", "localhost:8080"}},
		{in: "tcp::3128", wantErr: "the host is missing"},
		{in: "tcp:127.0.0.1", wantErr: "want tcp:HOST:PORT"},
		{in: "tcp:::1:80", wantErr: "want tcp:HOST:PORT"},
		{in: "tcp:127.0.0.1:http", wantErr: `port "http" is not a number`},
		{in: "tcp:127.0.0.1:65536", wantErr: `port "65536" is not a number`},
		{in: "/run/p.sock", wantErr: "want unix:PATH or tcp:HOST:PORT"},
		{in: "unix", wantErr: "want unix:PATH or tcp:HOST:PORT"},
		{in: "http:127.0.0.1:80", wantErr: `unknown network "http"`},
		{in: "unix:/" + strings.Repeat("a", maxSocketPath), wantErr: "the limit is 107"},
	}
	for _, tt := range tests {
		got, err := parseListen(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseListen(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseListen(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseTokens(t *testing.T) {
	const d1 = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	const d2 = "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"
	tests := []struct {
		text      string
		wantNames []string
		wantErrs  []string
	}{
		{"# comment\n\nci " + d1 + "\n  laptop-2.x\t" + strings.ToUpper(d2) + "  \n", []string{"ci", "laptop-2.x"}, nil},
		{"", nil, nil},
		{"ci " + d1 + " extra\n", nil, []string{"t:1: want NAME SHA256HEX, got 3 fields"}},
		{"ci " + d1[:62] + "\n", nil, []string{"t:1: client ci: the digest is not a SHA-256"}},
		{"-ci " + d1 + "\n", nil, []string{"t:1: client name must be"}},
		{"unix " + d1 + "\n127.0.0.1 " + d2 + "\n", nil, []string{"t:1: client name must not be \"unix\" or an IP address", "t:2: client name must not be"}},
		{"ci " + d1 + "\nci " + d2 + "\nx " + d1 + "\n", []string{"ci"}, []string{"t:2: client ci is already listed on line 1", "t:3: client x has the same token digest as line 1"}},
	}
	for _, tt := range tests {
		tokens, errs := parseTokens("t", []byte(tt.text))
		var names []string
		for _, tok := range tokens {
			names = append(names, tok.Name)
		}
		if strings.Join(names, ",") != strings.Join(tt.wantNames, ",") {
			t.Errorf("%q: names %v, want %v", tt.text, names, tt.wantNames)
		}
		if len(errs) != len(tt.wantErrs) {
			t.Errorf("%q: errors %v, want %v", tt.text, errs, tt.wantErrs)
			continue
		}
		for i, err := range errs {
			if !strings.HasPrefix(err.Error(), tt.wantErrs[i]) {
				t.Errorf("%q: error %q, want prefix %q", tt.text, err, tt.wantErrs[i])
			}
			if strings.Contains(err.Error(), d1) || strings.Contains(err.Error(), d2[:20]) {
				t.Errorf("%q: error %q quotes the line", tt.text, err)
			}
		}
	}
}

// TestListenUnix checks the socket's mode, that a stale socket is
// replaced, and that closing removes only the socket this process made.
func TestListenUnix(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	b, err := listen(listenSpec{"unix", path}, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != os.ModeSocket|0o660 {
		t.Errorf("mode %v, want %v", st.Mode(), os.ModeSocket|0o660)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := listen(listenSpec{"unix", path}, 0o600); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Errorf("second listen: %v, want in-use error", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the socket", len(entries))
	}

	// Another file now at the path is not removed on close.
	os.Remove(path)
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("close removed a file it did not create: %v", err)
	}
}

// TestStopWhileAReloadIsBlocked: a reload that blocks reading a file (a
// policy on a hung network mount; beforeReload stands in for the kernel)
// holds up no stop. SIGTERM drains and returns, with a SIGHUP queued
// behind the blocked reload, and the audit log is closed without the
// reopen that would follow the reload.
func TestStopWhileAReloadIsBlocked(t *testing.T) {
	f := newE2EFiles(t)
	var stderr syncbuf.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr}
	o := &serveOptions{
		policyFile: f.policy, keyFile: f.key, stateDir: f.stateDir, audit: f.audit,
		specs: []listenSpec{{"unix", filepath.Join(f.dir, "p.sock")}}, mode: 0o600,
		drainTimeout: 5 * time.Second,
	}
	d, errs := e.startDaemon(o)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	d.beforeReload = func() {
		entered <- struct{}{}
		<-release
	}
	sigs := make(chan os.Signal, 4)
	done := make(chan int, 1)
	go func() { done <- d.run(sigs) }()

	sigs <- syscall.SIGHUP
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP started no reload")
	}
	sigs <- syscall.SIGHUP
	sigs <- syscall.SIGTERM
	select {
	case st := <-done:
		if st != exitOK {
			t.Errorf("exit status %d, want %d", st, exitOK)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("SIGTERM did not stop a daemon whose reload is blocked\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "still blocked reading a file; stopping without it") {
		t.Errorf("the stop does not say what it left behind:\n%s", stderr.String())
	}
}
