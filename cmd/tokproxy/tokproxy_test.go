package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/tokrun/tokrun/policy"
)

// testNow is the clock of every script: after the test vectors were
// sealed (2026-11-01) and after expired.sealed expired, but before
// full.sealed does (2030-01-01), so the scripts do not change with the
// date they run on.
const testNow = "2027-06-01T00:00:00Z"

func TestMain(m *testing.M) {
	if addrs := os.Getenv("TOKRUN_BENCH_RELAY"); addrs != "" {
		relayMain(addrs) // BenchmarkDaemon's baseline: a blind TCP relay process
		return
	}
	if args := os.Getenv("TOKRUN_BENCH_MINIMAL"); args != "" {
		minimalMain(args)
		return
	}
	if args := os.Getenv("TOKRUN_BENCH_GOPROXY"); args != "" {
		goproxyMain(args) // BenchmarkDaemon's reference: plain goproxy MITM
		return
	}
	testscript.Main(m, map[string]func(){"tokproxy": testProgram})
}

// testProgram is main with the fixed test clock. The clock is set only
// here, in the test binary: tokproxy itself has no way to fake the time.
func testProgram() {
	now, err := time.Parse(time.RFC3339, testNow)
	if err != nil {
		panic(err)
	}
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, now: func() time.Time { return now }}
	os.Exit(e.run(os.Args[1:]))
}

// TestScript runs the CLI scripts in testdata/script. Their policies use
// the public test key and vectors of testdata/sealing.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			// Without this, every child built with -race sleeps 1s at exit.
			e.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			return nil
		},
	})
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		url  string
		want policy.Request
	}{
		{"https://api.openai.com/v1/chat?x=1", policy.Request{Scheme: "https", Host: "api.openai.com", Path: "/v1/chat"}},
		{"https://api.openai.com", policy.Request{Scheme: "https", Host: "api.openai.com", Path: "/"}},
		{"https://api.openai.com?x=/y", policy.Request{Scheme: "https", Host: "api.openai.com", Path: "/"}},
		{"https://api.openai.com#/y", policy.Request{Scheme: "https", Host: "api.openai.com", Path: "/"}},
		{"http://h.example:8080/a#b?c", policy.Request{Scheme: "http", Host: "h.example", Port: 8080, Path: "/a"}},
		{"HTTPS://API.Example.COM./x", policy.Request{Scheme: "https", Host: "API.Example.COM.", Path: "/x"}},
		{"http://[::1]:9000/x", policy.Request{Scheme: "http", Host: "::1", Port: 9000, Path: "/x"}},
		// The path is passed on as written, for the policy to normalise.
		{"https://h.example/v1/%2e%2e/admin", policy.Request{Scheme: "https", Host: "h.example", Path: "/v1/%2e%2e/admin"}},
		{"https://h.example/v1%2Fadmin", policy.Request{Scheme: "https", Host: "h.example", Path: "/v1%2Fadmin"}},
		{"https://h.example//admin", policy.Request{Scheme: "https", Host: "h.example", Path: "//admin"}},
		{"https://h.example/a%20b/%C3%A9", policy.Request{Scheme: "https", Host: "h.example", Path: "/a%20b/%C3%A9"}},
		{`https://h.example/a\b`, policy.Request{Scheme: "https", Host: "h.example", Path: `/a\b`}},
	}
	for _, tt := range tests {
		tt.want.Method = "GET"
		got, err := parseRequest("GET", tt.url)
		if err != nil {
			t.Errorf("parseRequest(%q): %v", tt.url, err)
			continue
		}
		if got != tt.want {
			t.Errorf("parseRequest(%q) = %+v, want %+v", tt.url, got, tt.want)
		}
	}
}

func TestParseRequestErrors(t *testing.T) {
	tests := []struct{ url, want string }{
		{"api.openai.com/v1", "URL does not start with https:// or http://"},
		{"api.openai.com:443/v1", "URL does not start with https:// or http://"},
		{"https:v1", "URL does not start with https:// or http://"},
		{"://x/", `cannot parse URL: missing protocol scheme`},
		{"ftp://api.openai.com/", `URL scheme "ftp" is not supported; the proxy handles https and http`},
		{"https:///v1", "URL has no host"},
		{"https://:443/v1", "URL has no host"},
		{"https://api.openai.com:0/", "URL port 0 is out of range 1-65535"},
		{"https://api.openai.com:65536/", "URL port 65536 is out of range 1-65535"},
		{"https://api.openai.com:x/", `cannot parse URL: invalid port ":x" after host`},
		{"https://api.openai.com/%zz", `cannot parse URL: invalid URL escape "%zz"`},
		{"https://api.openai.com/a b\x7f", "cannot parse URL: net/url: invalid control character in URL"},
		{"https://user:hunter2@api.openai.com/", "URL holds a user name or password"},
	}
	for _, tt := range tests {
		_, err := parseRequest("GET", tt.url)
		if err == nil || err.Error() != tt.want {
			t.Errorf("parseRequest(%q) error = %v, want %q", tt.url, err, tt.want)
		}
	}
}

// TestExitStatus checks the exit-code contract, which scripts cannot see
// beyond zero and non-zero.
func TestExitStatus(t *testing.T) {
	const (
		good = "../../testdata/policy/good/"
		key  = "../../testdata/sealing/key.txt"
	)
	now, _ := time.Parse(time.RFC3339, testNow)
	tests := []struct {
		args       []string
		want       int
		wantStdout bool
	}{
		{[]string{"--help"}, exitOK, true},
		{[]string{"policy", "check", good + "full.yaml", "--key", key}, exitOK, true},
		{[]string{"policy", "explain", good + "full.yaml", "--key", key, "GET", "https://api.openai.com/v1/models"}, exitOK, true},
		{[]string{"policy", "explain", good + "full.yaml", "--key", key, "GET", "https://api.openai.com/admin"}, exitDenied, true},
		{[]string{"policy", "explain", good + "full.yaml", "--key", key, "--json", "GET", "https://evil.example/"}, exitDenied, true},
		{[]string{"policy", "explain", good + "expired.yaml", "--key", key, "GET", "https://api.example.com/"}, exitDenied, true},
		{[]string{"policy", "explain", good + "full.yaml", "--key", key, "GET", "api.openai.com"}, exitError, false},
		{[]string{"policy", "explain", good + "full.yaml", "GET", "https://api.openai.com/v1/models"}, exitError, false},
		{[]string{"policy", "check", "../../testdata/policy/bad/many-errors.yaml"}, exitError, false},
		{[]string{"policy", "check", "--nope"}, exitError, false},
		{[]string{"policy", "nope"}, exitError, false},
	}
	for _, tt := range tests {
		var stdout, stderr strings.Builder
		e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, now: func() time.Time { return now }}
		if got := e.run(tt.args); got != tt.want {
			t.Errorf("tokproxy %s: exit status %d, want %d\nstderr:\n%s", strings.Join(tt.args, " "), got, tt.want, stderr.String())
		}
		if (stdout.Len() > 0) != tt.wantStdout {
			t.Errorf("tokproxy %s: stdout %q, want output: %v", strings.Join(tt.args, " "), stdout.String(), tt.wantStdout)
		}
		if tt.want == exitError && !strings.HasPrefix(stderr.String(), "tokproxy: error: ") {
			t.Errorf("tokproxy %s: stderr %q, want a tokproxy error", strings.Join(tt.args, " "), stderr.String())
		}
	}
}
