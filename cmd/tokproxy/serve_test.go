package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokrun/tokrun/internal/syncbuf"
)

// TestServeEndToEnd runs one daemon through its life: clients over the
// Unix socket and TCP (Go, curl, python3), denials, reloads, metrics,
// drain on SIGTERM, then the audit log it left. The harness is in
// serve_harness_test.go.
func TestServeEndToEnd(t *testing.T) {
	f := newE2EFiles(t)
	sock := filepath.Join(f.dir, "proxy.sock")
	d := startDaemon(t, f,
		"--policy", f.policy, "--key", f.key,
		"--listen", "unix:"+sock, "--listen", "tcp:127.0.0.1:0", "--token-file", f.tokens,
		"--state-dir", f.stateDir, "--upstream-ca", f.up.caFile,
		"--admin", "127.0.0.1:0", "--audit", f.audit,
		"--watch-interval", "0", "--drain-timeout", "20s")
	if d.tcpAddr == "" || d.adminAddr == "" {
		t.Fatalf("no listener addresses in the log:\n%s", d.stderr.String())
	}
	authFailures := 0
	var decisions float64 // all decisions, counted before the daemon stops

	t.Run("files", func(t *testing.T) {
		for path, want := range map[string]os.FileMode{sock: 0o600 | os.ModeSocket, f.audit: 0o600, filepath.Join(f.stateDir, "ca-key.pem"): 0o600} {
			st, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode() != want {
				t.Errorf("%s: mode %v, want %v", path, st.Mode(), want)
			}
		}
	})

	t.Run("health", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			if st, body := d.adminGet(p); st != http.StatusOK {
				t.Errorf("%s: %d %q", p, st, body)
			}
		}
	})

	t.Run("unix allowed with injection", func(t *testing.T) {
		st, body, _ := get(t, d.client(sock, "", nil), f.up.url("/v1/unix"))
		if st != http.StatusOK || body != "hello from upstream: GET /v1/unix\n" {
			t.Fatalf("got %d %q", st, body)
		}
		auth := f.up.authSeen()
		if len(auth) == 0 || auth[len(auth)-1] != "Bearer "+e2eSecret {
			t.Errorf("upstream saw Authorization %q, want the injected secret", auth)
		}
	})

	t.Run("tcp allowed with token", func(t *testing.T) {
		st, body, _ := get(t, d.client("", f.token, nil), f.up.url("/v1/tcp"))
		if st != http.StatusOK || !strings.Contains(body, "GET /v1/tcp") {
			t.Fatalf("got %d %q", st, body)
		}
	})

	t.Run("tcp without or with a wrong token", func(t *testing.T) {
		for _, token := range []string{"", "tokproxy_wrong"} {
			cr := &connectResult{}
			if _, err := d.client("", token, cr).Get(f.up.url("/v1/x")); err == nil {
				t.Fatal("request without a valid token succeeded")
			}
			authFailures++
			if cr.status != http.StatusProxyAuthRequired || cr.reason != "proxy_auth_required" {
				t.Errorf("token %q: CONNECT answered %d %q, want 407 proxy_auth_required", token, cr.status, cr.reason)
			}
		}
		// A plain-HTTP request too.
		st, _, reason := get(t, d.client("", "", nil), fmt.Sprintf("http://127.0.0.1:%d/", f.up.port))
		authFailures++
		if st != http.StatusProxyAuthRequired || reason != "proxy_auth_required" {
			t.Errorf("plain HTTP without token: %d %q, want 407", st, reason)
		}
	})

	t.Run("denied host", func(t *testing.T) {
		cr := &connectResult{}
		if _, err := d.client(sock, "", cr).Get(fmt.Sprintf("https://localhost:%d/", f.up.port)); err == nil {
			t.Fatal("denied host succeeded")
		}
		if cr.status != http.StatusForbidden || cr.reason != "host_not_allowed" {
			t.Errorf("CONNECT answered %d %q, want 403 host_not_allowed", cr.status, cr.reason)
		}
	})

	t.Run("curl", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("curl is not installed")
		}
		// curl 7.88 cannot reach an HTTP proxy over a Unix socket, so it
		// uses the TCP listener.
		ca := filepath.Join(f.stateDir, "ca.pem")
		cmd := exec.Command("curl", "-sS", "--proxy", "http://"+d.tcpAddr,
			"--proxy-header", "Proxy-Authorization: Bearer "+f.token,
			"--cacert", ca, f.up.url("/v1/curl"))
		cmd.Env = noProxyEnv()
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "hello from upstream: GET /v1/curl\n" {
			t.Errorf("curl: %v: %q", err, out)
		}
		cmd = exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_connect}", "--proxy", "http://"+d.tcpAddr, "--cacert", ca, f.up.url("/v1/curl"))
		cmd.Env = noProxyEnv()
		out, err = cmd.Output()
		authFailures++
		if err == nil || string(out) != "407" {
			t.Errorf("curl without token: %v, CONNECT status %q, want an error and 407", err, out)
		}
	})

	t.Run("python", func(t *testing.T) {
		if _, err := exec.LookPath("python3"); err != nil {
			t.Skip("python3 is not installed")
		}
		ca := filepath.Join(f.stateDir, "ca.pem")
		for _, tt := range []struct{ url, token, want string }{
			{f.up.url("/v1/python"), f.token, "200 hello from upstream: GET /v1/python\n"},
			{f.up.url("/v1/python"), "", "error Tunnel connection failed: 407 Proxy Authentication Required\n"},
		} {
			cmd := exec.Command("python3", "-c", pythonClient, tt.url, ca, tt.token)
			cmd.Env = noProxyEnv("HTTPS_PROXY=http://" + d.tcpAddr)
			out, err := cmd.CombinedOutput()
			if tt.token == "" {
				authFailures++
			}
			if err != nil || string(out) != tt.want {
				t.Errorf("python3 %s (token %v): %v: %q, want %q", tt.url, tt.token != "", err, out, tt.want)
			}
		}
	})

	t.Run("reload rejected on SIGHUP", func(t *testing.T) {
		before := d.metric(`tokrun_policy_reloads_total{result="failure"}`)
		replaceFile(t, f.policy, f.policyText("    bogus_field: 1\n"))
		d.signal(syscall.SIGHUP)
		waitFor(t, "a failed reload", func() bool {
			return d.metric(`tokrun_policy_reloads_total{result="failure"}`) == before+1
		})
		// The metric can count the failure before the log line has come
		// through the pipe.
		problem := regexp.MustCompile(`level=ERROR msg="policy problem" problem="` + regexp.QuoteMeta(f.policy) + `:\d+: rules\[0\]\.bogus_field: `)
		waitFor(t, "a file:line problem in the log", func() bool { return problem.MatchString(d.stderr.String()) })
		// The previous policy is still in force.
		if st, _, _ := get(t, d.client(sock, "", nil), f.up.url("/v1/after-bad-reload")); st != http.StatusOK {
			t.Errorf("after a rejected reload: %d, want 200", st)
		}
	})

	t.Run("reload accepted on SIGHUP", func(t *testing.T) {
		replaceFile(t, f.policy, f.policyText(denyBlocked))
		d.signal(syscall.SIGHUP)
		waitFor(t, "a successful reload", func() bool {
			return d.metric(`tokrun_policy_reloads_total{result="success"}`) == 1
		})
		st, _, reason := get(t, d.client(sock, "", nil), f.up.url("/blocked/x"))
		if st != http.StatusForbidden || reason != "denied_by_rule" {
			t.Errorf("after reload: %d %q, want 403 denied_by_rule", st, reason)
		}
		if v := d.metric(`tokrun_decisions_total{decision="deny",reason="denied_by_rule",rule="no-blocked"}`); v < 1 {
			t.Errorf("decisions for the new deny rule = %v, want >= 1", v)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		_, body := d.adminGet("/metrics")
		for _, want := range []string{
			`tokrun_decisions_total{decision="allow",reason="allowed",rule="local-api"} `,
			`tokrun_decisions_total{decision="deny",reason="host_not_allowed",rule=""} `,
			`tokrun_injections_total{rule="local-api",secret="api"} `,
			`tokrun_policy_info{hash="`,
			"go_goroutines ",
			"process_open_fds ",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if v := d.metric(`tokrun_decisions_total{decision="allow",reason="allowed",rule="local-api"}`); v < 5 {
			t.Errorf("allowed decisions = %v, want >= 5", v)
		}
		if strings.Contains(body, e2eSecret) || strings.Contains(body, "127.0.0.1") {
			t.Error("/metrics holds the secret or a raw host")
		}
	})

	t.Run("drain on SIGTERM", func(t *testing.T) {
		type result struct {
			status int
			body   string
			err    error
		}
		// Allowed requests are counted once the upstream answers; the slow
		// one adds two decisions, its CONNECT and its GET.
		decisions = d.sumMetric("tokrun_decisions_total") + 2
		res := make(chan result, 1)
		c := d.client(sock, "", nil)
		go func() {
			resp, err := c.Get(f.up.url("/slow"))
			if err != nil {
				res <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			res <- result{resp.StatusCode, string(b), err}
		}()
		select {
		case <-f.up.slowSeen:
		case r := <-res:
			t.Fatalf("slow request ended early: %+v", r)
		case <-time.After(30 * time.Second):
			t.Fatal("the slow request never reached the upstream")
		}
		d.signal(syscall.SIGTERM)
		waitFor(t, "/readyz to report draining", func() bool {
			st, _ := d.adminGet("/readyz")
			return st == http.StatusServiceUnavailable
		})
		if st, _ := d.adminGet("/healthz"); st != http.StatusOK {
			t.Errorf("/healthz while draining: %d, want 200", st)
		}
		if c, err := net.Dial("tcp", d.tcpAddr); err == nil {
			c.Close()
			t.Error("the TCP listener still accepts while draining")
		}
		// A SIGHUP while draining (logrotate's postrotate) neither
		// reloads nor cuts the drain short.
		d.signal(syscall.SIGHUP)
		waitFor(t, "the SIGHUP to be taken", func() bool {
			return strings.Contains(d.stderr.String(), "SIGHUP while draining: no reload; still draining")
		})
		close(f.up.release)
		r := <-res
		if r.err != nil || r.status != http.StatusOK || r.body != "hello from upstream: GET /slow\n" {
			t.Errorf("slow request across SIGTERM: %+v, want 200", r)
		}
		if code := d.exitCode(); code != 0 {
			t.Errorf("exit status %d after a clean drain, want 0", code)
		}
		if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind after exit: %v", err)
		}
	})

	t.Run("audit", func(t *testing.T) {
		data, err := os.ReadFile(f.audit)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		var allowUnix, allowToken, auth int
		for _, line := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("audit line %q: %v", line, err)
			}
			for _, k := range []string{"time", "client", "decision", "reason", "method", "host", "status", "bytes_in", "bytes_out", "duration_ms"} {
				if _, ok := rec[k]; !ok {
					t.Errorf("audit line lacks %s: %s", k, line)
				}
			}
			switch {
			case rec["reason"] == "proxy_auth_required":
				auth++
			case rec["decision"] == "allow" && rec["client"] == "unix" && rec["rule"] == "local-api":
				allowUnix++
			case rec["decision"] == "allow" && rec["client"] == "e2e":
				allowToken++
			}
		}
		if auth != authFailures {
			t.Errorf("%d proxy_auth_required records, want %d", auth, authFailures)
		}
		if allowUnix == 0 || allowToken == 0 {
			t.Errorf("allowed records: %d from the socket, %d from token e2e; want some of each", allowUnix, allowToken)
		}
		// One record per decision: every decision counted in the metrics,
		// refused authentications included, is one line.
		if want := int(decisions); len(lines) != want {
			t.Errorf("%d audit records, want %d decisions:\n%s", len(lines), want, data)
		}
	})

	t.Run("no secret or token leaks", func(t *testing.T) {
		audit, _ := os.ReadFile(f.audit)
		for name, s := range map[string]string{"stderr": d.stderr.String(), "stdout": d.stdout.String(), "audit": string(audit)} {
			if strings.Contains(s, e2eSecret) || strings.Contains(s, f.token) {
				t.Errorf("%s holds the secret or the client token", name)
			}
		}
		if d.stdout.String() != "" {
			t.Errorf("stdout: %q, want nothing", d.stdout.String())
		}
	})
}

// TestServeWatchWaitsForTheFileToSettle: a policy written in place, here
// with a pause before its deny rules, is valid without them; the watcher
// does not put that prefix into force, only the whole file once it has
// stayed the same.
func TestServeWatchWaitsForTheFileToSettle(t *testing.T) {
	f := newE2EFiles(t)
	replaceFile(t, f.policy, f.policyText(denyBlocked))
	sock := filepath.Join(f.dir, "proxy.sock")
	d := startDaemon(t, f,
		f.unixArgs(sock, "--admin", "127.0.0.1:0",
			"--watch-interval", "20ms")...)
	c := d.client(sock, "", nil)

	// Written in place: the head first, then (after many checks, fewer than
	// a second) the deny rules, with a comment that makes the content new.
	whole := f.policyText("# changed\n" + denyBlocked)
	head := whole[:strings.Index(whole, "deny:")]
	pol, err := os.OpenFile(f.policy, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pol.Close()
	if _, err := pol.WriteString(head); err != nil {
		t.Fatal(err)
	}
	const hold = 500 * time.Millisecond // many checks, and less than watchSettle
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if st, _, _ := get(t, c, f.up.url("/blocked/x")); st != http.StatusForbidden {
			t.Fatalf("with the policy half-written: %d, want 403 from the policy in force", st)
		}
	}
	if _, err := pol.WriteString(whole[len(head):]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the whole file loaded", func() bool {
		return d.metric(`tokrun_policy_reloads_total{result="success"}`) >= 1
	})
	if v := d.metric(`tokrun_policy_reloads_total{result="success"}`); v != 1 {
		t.Errorf("successful reloads = %v, want 1: the half-written file was loaded", v)
	}
	if st, _, _ := get(t, c, f.up.url("/blocked/x")); st != http.StatusForbidden {
		t.Errorf("after the reload: %d, want 403", st)
	}
}

// TestServeAdminConnectionsBounded: the admin listener, which takes no
// credentials, serves at most adminMaxConns connections at once; a flood
// of idle ones makes the next wait, not the daemon grow.
func TestServeAdminConnectionsBounded(t *testing.T) {
	f := newE2EFiles(t)
	sock := filepath.Join(f.dir, "proxy.sock")
	d := startDaemon(t, f, f.unixArgs(sock, "--admin", "127.0.0.1:0")...)
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range adminMaxConns {
		c, err := net.Dial("tcp", d.adminAddr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	scrape := func() error {
		c := &http.Client{Timeout: 500 * time.Millisecond}
		resp, err := c.Get("http://" + d.adminAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	waitFor(t, "every slot taken", func() bool { return scrape() != nil })
	idle[0].Close()
	idle = idle[1:]
	waitFor(t, "a slot freed", func() bool { return scrape() == nil })
}

func TestServeWatchesPolicyFile(t *testing.T) {
	f := newE2EFiles(t)
	sock := filepath.Join(f.dir, "proxy.sock")
	d := startDaemon(t, f,
		f.unixArgs(sock, "--admin", "127.0.0.1:0",
			"--watch-interval", "50ms")...)
	c := d.client(sock, "", nil)
	if st, _, _ := get(t, c, f.up.url("/blocked/x")); st != http.StatusOK {
		t.Fatalf("before the change: %d, want 200", st)
	}

	replaceFile(t, f.policy, f.policyText(denyBlocked))
	waitFor(t, "the new policy to deny /blocked", func() bool {
		st, _, reason := get(t, c, f.up.url("/blocked/x"))
		return st == http.StatusForbidden && reason == "denied_by_rule"
	})

	// An invalid change is rejected once, not at every check.
	replaceFile(t, f.policy, "version: 1\nrules:\n  - name: broken\n")
	waitFor(t, "a failed reload", func() bool {
		return d.metric(`tokrun_policy_reloads_total{result="failure"}`) == 1
	})
	if st, _, _ := get(t, c, f.up.url("/blocked/x")); st != http.StatusForbidden {
		t.Errorf("after a rejected change: %d, want 403 from the previous policy", st)
	}
	replaceFile(t, f.policy, f.policyText(""))
	waitFor(t, "a second successful reload", func() bool {
		return d.metric(`tokrun_policy_reloads_total{result="success"}`) == 2
	})
	if v := d.metric(`tokrun_policy_reloads_total{result="failure"}`); v != 1 {
		t.Errorf("failed reloads = %v, want 1: an unchanged bad file is not reloaded again", v)
	}
	if st, _, _ := get(t, c, f.up.url("/blocked/x")); st != http.StatusOK {
		t.Errorf("after the last change: %d, want 200", st)
	}
	d.signal(syscall.SIGINT)
	if code := d.exitCode(); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

// TestServeSecondSignal checks that a second signal cuts the drain short,
// and that a stale socket left by a crashed proxy is replaced.
func TestServeSecondSignal(t *testing.T) {
	f := newE2EFiles(t)
	sock := filepath.Join(f.dir, "proxy.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	d := startDaemon(t, f,
		f.unixArgs(sock, "--drain-timeout", "1m")...)
	errc := make(chan error, 1)
	go func() {
		resp, err := d.client(sock, "", nil).Get(f.up.url("/slow"))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		errc <- err
	}()
	<-f.up.slowSeen
	d.signal(syscall.SIGTERM)
	waitFor(t, "the drain to start", func() bool { return strings.Contains(d.stderr.String(), "msg=\"stopping") })
	d.signal(syscall.SIGINT)
	if code := d.exitCode(); code != 1 {
		t.Errorf("exit status %d after a second signal, want 1", code)
	}
	close(f.up.release)
	if err := <-errc; err == nil {
		t.Error("the request in flight completed, want it cut off")
	}
	if !strings.Contains(d.stderr.String(), `msg="second signal; stopping at once"`) {
		t.Errorf("stderr lacks the second-signal message:\n%s", d.stderr.String())
	}
}

// TestServeStartupErrors checks problems only a running system shows:
// addresses in use, a socket another process serves, a file in the way.
// Nothing is served and nothing is left behind.
func TestServeStartupErrors(t *testing.T) {
	f := newE2EFiles(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	liveSock := filepath.Join(f.dir, "live.sock")
	live, err := net.Listen("unix", liveSock)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	regular := filepath.Join(f.dir, "regular.sock")
	writeFile(t, regular, "not a socket")
	okSock := filepath.Join(f.dir, "ok.sock")

	var stdout, stderr syncbuf.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
	st := e.run([]string{"serve", "--policy", f.policy, "--key", f.key, "--state-dir", f.stateDir,
		"--listen", "unix:" + okSock, "--listen", "unix:" + liveSock, "--listen", "unix:" + regular,
		"--listen", "tcp:" + busy.Addr().String(), "--token-file", f.tokens,
		"--admin", busy.Addr().String(), "--audit", filepath.Join(f.dir, "audit.jsonl")})
	if st != exitError {
		t.Errorf("exit status %d, want %d", st, exitError)
	}
	want := fmt.Sprintf(`tokproxy: error: --listen unix:%s: another process is listening on this socket
tokproxy: error: --listen unix:%s: the path exists and is not a socket; remove it or choose another path
tokproxy: error: --listen tcp:%s: address already in use
tokproxy: error: --admin %[3]s: address already in use
`, liveSock, regular, busy.Addr())
	if got := stderr.String(); !strings.HasSuffix(got, want) {
		t.Errorf("stderr:\n%s\nwant it to end with:\n%s", got, want)
	}
	if stdout.String() != "" {
		t.Errorf("stdout: %q, want nothing", stdout.String())
	}
	for _, p := range []string{okSock, filepath.Join(f.dir, "audit.jsonl")} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	if b, _ := os.ReadFile(regular); string(b) != "not a socket" {
		t.Errorf("the regular file was changed: %q", b)
	}
	if c, err := net.Dial("unix", liveSock); err != nil {
		t.Errorf("the other process's socket was disturbed: %v", err)
	} else {
		c.Close()
	}
}

// The audit log follows its path: rotated (moved away, then SIGHUP, as
// logrotate does; with no watching, so that the signal alone does it) or
// removed (noticed at the next policy check), the file is opened again,
// and no record goes on into a file nobody reads.
func TestServeReopensAuditLog(t *testing.T) {
	for _, watch := range []string{"0", "50ms"} {
		f := newE2EFiles(t)
		sock := filepath.Join(f.dir, "proxy.sock")
		d := startDaemon(t, f,
			f.unixArgs(sock, "--admin", "127.0.0.1:0",
				"--audit", f.audit, "--watch-interval", watch)...)
		c := d.client(sock, "", nil)
		recorded := func(path string) func() bool {
			return func() bool {
				b, _ := os.ReadFile(f.audit)
				return strings.Contains(string(b), `"path":"`+path+`"`)
			}
		}
		if st, _, _ := get(t, c, f.up.url("/before")); st != http.StatusOK {
			t.Fatalf("before: %d", st)
		}
		waitFor(t, "the first record", recorded("/before"))

		if watch == "0" {
			// Rotated: moved away, then SIGHUP.
			if err := os.Rename(f.audit, f.audit+".1"); err != nil {
				t.Fatal(err)
			}
			d.signal(syscall.SIGHUP)
			waitFor(t, "the audit log reopened", func() bool { _, err := os.Stat(f.audit); return err == nil })
			if st, _, _ := get(t, c, f.up.url("/rotated")); st != http.StatusOK {
				t.Fatalf("after rotation: %d", st)
			}
			waitFor(t, "a record in the new file", recorded("/rotated"))
			if fi, err := os.Stat(f.audit); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("the new audit file: %v, %v", fi, err)
			}
			old, _ := os.ReadFile(f.audit + ".1")
			if !strings.Contains(string(old), `"path":"/before"`) || strings.Contains(string(old), `"path":"/rotated"`) {
				t.Fatalf("the rotated file:\n%s", old)
			}
		} else {
			// Removed: noticed at the next check, without a signal.
			if err := os.Remove(f.audit); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the audit log recreated", func() bool { _, err := os.Stat(f.audit); return err == nil })
			if st, _, _ := get(t, c, f.up.url("/removed")); st != http.StatusOK {
				t.Fatalf("after removal: %d", st)
			}
			waitFor(t, "a record in the recreated file", recorded("/removed"))
		}
		if v := d.metric("tokrun_audit_write_errors_total"); v != 0 {
			t.Errorf("audit write errors %v", v)
		}
		d.signal(syscall.SIGTERM)
		if code := d.exitCode(); code != exitOK {
			t.Fatalf("exit %d", code)
		}
		if !strings.Contains(d.stderr.String(), `msg="audit log reopened`) {
			t.Errorf("no log line for the reopening:\n%s", d.stderr.String())
		}
	}
}

// Allowed requests' audit records are held up to --audit-batch and
// written with the first record that may not wait (here a denial), in
// order; a SIGHUP (which may reopen the file) and a clean stop write
// what is held.
func TestServeAuditBatch(t *testing.T) {
	f := newE2EFiles(t)
	replaceFile(t, f.policy, f.policyText(denyBlocked))
	sock := filepath.Join(f.dir, "proxy.sock")
	d := startDaemon(t, f, f.unixArgs(sock, "--audit", f.audit, "--audit-batch", "50s")...)
	c := d.client(sock, "", nil)
	paths := func() []string {
		b, err := os.ReadFile(f.audit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for line := range strings.Lines(string(b)) {
			var r struct{ Method, Path, Decision string }
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("audit line %q: %v", line, err)
			}
			if r.Method != "CONNECT" { // as many as the client opened tunnels
				out = append(out, r.Decision+" "+r.Method+" "+r.Path)
			}
		}
		return out
	}
	if st, _, _ := get(t, c, f.up.url("/first")); st != http.StatusOK {
		t.Fatalf("allowed request: %d", st)
	}
	time.Sleep(300 * time.Millisecond) // the record is written just after the response, if at all
	if got := paths(); len(got) != 0 {
		t.Fatalf("allowed records written before the batch ended: %q", got)
	}
	if st, _, _ := get(t, c, f.up.url("/blocked/x")); st != http.StatusForbidden {
		t.Fatalf("denied request: %d", st)
	}
	// The denial's record is written before its response.
	want := []string{"allow GET /first", "deny GET /blocked/x"}
	if got := paths(); !slices.Equal(got, want) {
		t.Fatalf("after a denial, the audit log holds %q, want %q", got, want)
	}
	if st, _, _ := get(t, c, f.up.url("/held")); st != http.StatusOK {
		t.Fatalf("allowed request: %d", st)
	}
	// The record is held just after the response: SIGHUP until it is
	// written (with a window of 50s, nothing else writes it).
	want = append(want, "allow GET /held")
	waitFor(t, "the held record written at SIGHUP", func() bool {
		d.signal(syscall.SIGHUP)
		time.Sleep(20 * time.Millisecond)
		return slices.Equal(paths(), want)
	})
	if st, _, _ := get(t, c, f.up.url("/last")); st != http.StatusOK {
		t.Fatalf("allowed request: %d", st)
	}
	d.signal(syscall.SIGTERM)
	if code := d.exitCode(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, d.stderr.String())
	}
	if got, want := paths(), append(want, "allow GET /last"); !slices.Equal(got, want) {
		t.Fatalf("after a clean stop, the audit log holds %q, want %q", got, want)
	}
}

// An audit log whose path cannot be opened again (a directory put in its
// place) does not stop traffic: the proxy keeps writing where it did,
// says so and counts it once, and reopens the path once it can.
func TestServeAuditReopenFailure(t *testing.T) {
	f := newE2EFiles(t)
	sock := filepath.Join(f.dir, "proxy.sock")
	d := startDaemon(t, f,
		f.unixArgs(sock, "--admin", "127.0.0.1:0",
			"--audit", f.audit, "--watch-interval", "20ms", "--audit-batch", "0")...)
	c := d.client(sock, "", nil)
	// The file moved away and a directory in its place in one step: done
	// in two, the watcher could reopen the path between them.
	if err := os.Mkdir(f.audit+".1", 0o700); err != nil {
		t.Fatal(err)
	}
	exchangePaths(t, f.audit, f.audit+".1")
	waitFor(t, "the failure counted", func() bool { return d.metric("tokrun_audit_write_errors_total") == 1 })
	if st, _, _ := get(t, c, f.up.url("/while-failing")); st != http.StatusOK {
		t.Fatalf("a request while the audit log cannot be reopened: %d", st)
	}
	time.Sleep(200 * time.Millisecond) // ten checks
	if v := d.metric("tokrun_audit_write_errors_total"); v != 1 {
		t.Errorf("audit write errors %v after more checks, want 1 (counted once)", v)
	}
	if n := strings.Count(d.stderr.String(), "cannot be opened again"); n != 1 {
		t.Errorf("%d log lines for the failure, want 1", n)
	}
	waitFor(t, "the record in the file kept", func() bool {
		b, _ := os.ReadFile(f.audit + ".1")
		return strings.Contains(string(b), `"path":"/while-failing"`)
	})
	if err := os.Remove(f.audit); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the audit log reopened", func() bool { fi, err := os.Stat(f.audit); return err == nil && fi.Mode().IsRegular() })
	if st, _, _ := get(t, c, f.up.url("/after")); st != http.StatusOK {
		t.Fatalf("after: %d", st)
	}
	waitFor(t, "a record in the reopened file", func() bool {
		b, _ := os.ReadFile(f.audit)
		return strings.Contains(string(b), `"path":"/after"`)
	})
}
