package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokrun/tokrun/internal/syncbuf"

	"github.com/tokrun/tokrun/sealing"
)

// The end-to-end tests run the real daemon: the "tokproxy" command that
// testscript.Main puts in $PATH is this test binary, which runs tokproxy
// with the fixed test clock of testProgram. Every
// address is on loopback; the upstream is an httptest TLS server that the
// daemon trusts through --upstream-ca.

// e2eSecret is the sealed value; every output the client or an operator
// sees is checked for it.
const e2eSecret = "sk-e2e-SECRET-5f1d2c3b4a69788796a5b4c3"

// upstream is the test API. /slow blocks until release is closed.
type upstream struct {
	srv      *httptest.Server
	port     int
	caFile   string
	mu       sync.Mutex
	auth     []string // Authorization headers received
	slowSeen chan struct{}
	release  chan struct{}
}

func newUpstream(t *testing.T, dir string) *upstream {
	t.Helper()
	u := &upstream{slowSeen: make(chan struct{}, 10), release: make(chan struct{})}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.auth = append(u.auth, r.Header.Get("Authorization"))
		u.mu.Unlock()
		if r.URL.Path == "/slow" {
			u.slowSeen <- struct{}{}
			select {
			case <-u.release:
			case <-time.After(20 * time.Second):
			}
		}
		fmt.Fprintf(w, "hello from upstream: %s %s\n", r.Method, r.URL.Path)
	}))
	u.srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.srv.Listener = ln
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	u.port = ln.Addr().(*net.TCPAddr).Port
	u.caFile = filepath.Join(dir, "upstream-ca.pem")
	writeFile(t, u.caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.srv.Certificate().Raw})))
	return u
}

func (u *upstream) url(path string) string {
	return fmt.Sprintf("https://127.0.0.1:%d%s", u.port, path)
}

func (u *upstream) authSeen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.auth...)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes path atomically, so that a watcher never reads it
// half-written.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// e2eFiles are the daemon's inputs.
type e2eFiles struct {
	dir, policy, key, tokens, stateDir, audit string
	token                                     string // the client token
	sealed                                    string
	up                                        *upstream
}

func newE2EFiles(t *testing.T) *e2eFiles {
	t.Helper()
	dir := t.TempDir()
	f := &e2eFiles{
		dir:      dir,
		policy:   filepath.Join(dir, "policy.yaml"),
		key:      filepath.Join(dir, "key.txt"),
		tokens:   filepath.Join(dir, "tokens.txt"),
		stateDir: filepath.Join(dir, "state"),
		audit:    filepath.Join(dir, "audit.jsonl"),
	}
	f.up = newUpstream(t, dir)
	key, err := os.ReadFile("../../testdata/sealing/key.txt")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.key, string(key))
	keys, err := sealing.LoadKeyFile(f.key, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.sealed, err = sealing.Seal(rand.Reader, keys.PublicKeys()[0], sealing.Binding{
		Name: "api", Hosts: []string{"127.0.0.1"}, Header: "Authorization", Format: "Bearer {}",
	}, e2eSecret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, f.policy, f.policyText(""))

	// The token file, through the token command.
	var stdout, stderr strings.Builder
	if st := run([]string{"token", "e2e", "--append", f.tokens}, nil, &stdout, &stderr); st != exitOK {
		t.Fatalf("tokproxy token: status %d: %s", st, stderr.String())
	}
	f.token = strings.TrimSpace(stdout.String())
	return f
}

// policyText is a policy allowing the upstream with the secret injected,
// plus extra (rules or deny rules, at the end).
func (f *e2eFiles) policyText(extra string) string {
	return fmt.Sprintf(`version: 1
secrets:
  api:
    sealed: %q
rules:
  - name: local-api
    host: 127.0.0.1
    port: %d
    unsafe_allow_private_network: true
    inject: [api]
%s`, f.sealed, f.up.port, extra)
}

// unixArgs are tokproxy serve's arguments for the files' policy, key,
// state and upstream CA, listening on the Unix socket sock, then extra.
func (f *e2eFiles) unixArgs(sock string, extra ...string) []string {
	return append([]string{"--policy", f.policy, "--key", f.key, "--listen", "unix:" + sock,
		"--state-dir", f.stateDir, "--upstream-ca", f.up.caFile}, extra...)
}

const denyBlocked = `deny:
  - name: no-blocked
    host: 127.0.0.1
    paths: ["/blocked/**"]
`

// daemonProc is a running tokproxy serve.
type daemonProc struct {
	t         *testing.T
	cmd       *exec.Cmd
	stdout    syncbuf.Buffer
	stderr    syncbuf.Buffer
	done      chan struct{}
	waitErr   error
	tcpAddr   string
	adminAddr string
	files     *e2eFiles
}

var (
	tcpLogRE   = regexp.MustCompile(`msg=serving listen=tcp:(\S+)`)
	adminLogRE = regexp.MustCompile(`msg="admin serving" listen=(\S+)`)
)

// startDaemon runs tokproxy serve with args and waits until it serves.
func startDaemon(t *testing.T, f *e2eFiles, args ...string) *daemonProc {
	t.Helper()
	bin, err := exec.LookPath("tokproxy")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{t: t, files: f, done: make(chan struct{})}
	d.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	d.cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stderr
	dieWithParent(d.cmd)
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("tokproxy stderr:\n%s", d.stderr.String())
		}
	})
	waitFor(t, "the daemon to serve", func() bool {
		select {
		case <-d.done:
			t.Fatalf("tokproxy serve exited early: %v\n%s", d.waitErr, d.stderr.String())
		default:
		}
		return strings.Contains(d.stderr.String(), `msg="policy loaded"`)
	})
	if m := tcpLogRE.FindStringSubmatch(d.stderr.String()); m != nil {
		d.tcpAddr = m[1]
	}
	if m := adminLogRE.FindStringSubmatch(d.stderr.String()); m != nil {
		d.adminAddr = m[1]
	}
	return d
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemonProc) signal(sig os.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
}

// exitCode waits for the process to end and returns its exit status.
func (d *daemonProc) exitCode() int {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.t.Fatal("tokproxy serve did not exit")
	}
	var ee *exec.ExitError
	if errors.As(d.waitErr, &ee) {
		return ee.ExitCode()
	}
	if d.waitErr != nil {
		d.t.Fatal(d.waitErr)
	}
	return 0
}

// adminGet fetches an admin path and returns status and body.
func (d *daemonProc) adminGet(path string) (int, string) {
	d.t.Helper()
	resp, err := http.Get("http://" + d.adminAddr + path)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of the series with exactly this name and
// labels (as Prometheus writes them, sorted) or -1 if absent.
func (d *daemonProc) metric(series string) float64 {
	d.t.Helper()
	_, body := d.adminGet("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				d.t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return -1
}

// sumMetric returns the sum of every series of a metric.
func (d *daemonProc) sumMetric(name string) float64 {
	d.t.Helper()
	_, body := d.adminGet("/metrics")
	var sum float64
	for _, m := range regexp.MustCompile(`(?m)^`+name+`\{[^}]*\} (\S+)$`).FindAllStringSubmatch(body, -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			d.t.Fatal(err)
		}
		sum += v
	}
	return sum
}

// caPool is the daemon's interception CA, which clients trust.
func (f *e2eFiles) caPool(t *testing.T) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(f.stateDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca.pem holds no certificate")
	}
	return pool
}

// connectResult records the proxy's answer to a refused CONNECT.
type connectResult struct {
	mu     sync.Mutex
	status int
	reason string
}

// client is an HTTP client through the daemon: over the Unix socket if
// socket is set, else over TCP with token (if not empty).
func (d *daemonProc) client(socket, token string, cr *connectResult) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: d.files.caPool(d.t)},
		DisableKeepAlives: true,
		OnProxyConnectResponse: func(_ context.Context, _ *url.URL, _ *http.Request, resp *http.Response) error {
			if cr != nil {
				cr.mu.Lock()
				cr.status, cr.reason = resp.StatusCode, resp.Header.Get("X-Tokrun-Reason")
				cr.mu.Unlock()
			}
			return nil
		},
	}
	if socket != "" {
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: "tokproxy.sock"})
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}
	} else {
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: d.tcpAddr})
		if token != "" {
			tr.ProxyConnectHeader = http.Header{"Proxy-Authorization": {"Bearer " + token}}
		}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// get returns status, body and X-Tokrun-Reason, or fails the test.
func get(t *testing.T, c *http.Client, u string) (int, string, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header.Get("X-Tokrun-Reason")
}

// noProxyEnv is the environment of client tools, without any proxy
// bypass list that could send them around the proxy.
func noProxyEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "no_proxy", "http_proxy", "https_proxy", "all_proxy":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// pythonClient fetches argv[1] through $HTTPS_PROXY with urllib,
// trusting the CA in argv[2], with the bearer token argv[3] if not empty
// (urllib moves a Proxy-Authorization header to the CONNECT request).
const pythonClient = `
import ssl, sys, urllib.request, urllib.error
url, cafile, token = sys.argv[1:4]
ctx = ssl.create_default_context(cafile=cafile)
opener = urllib.request.build_opener(urllib.request.ProxyHandler(), urllib.request.HTTPSHandler(context=ctx))
req = urllib.request.Request(url)
if token:
    req.add_header("Proxy-Authorization", "Bearer " + token)
try:
    with opener.open(req, timeout=30) as r:
        print(r.status, r.read().decode(), end="")
except urllib.error.HTTPError as e:
    print(e.code, e.headers.get("X-Tokrun-Reason"))
except urllib.error.URLError as e:
    print("error", e.reason)
`
