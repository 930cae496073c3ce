package main

// The client compatibility matrix (README, "Compatibility matrix"): real
// clients inside tokrun against local HTTPS services, with the credential
// injected by the policy. Each test checks what the server saw and what
// the client printed. This file holds the shared pieces and the plain
// HTTPS clients; git, pip, Node.js and streaming have files of their own.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// seen is one request a recording server received.
type seen struct {
	method, uri, auth string
}

// recorder is an HTTPS server on 127.0.0.1 with a certificate of the
// world's CA that records every request it receives.
type recorder struct {
	srv  *httptest.Server
	port int

	mu   sync.Mutex
	reqs []seen
}

// recordingServer starts a recorder. With needSecret, requests without the
// injected secret get 401 and never reach h.
func (w *world) recordingServer(needSecret bool, h http.Handler) *recorder {
	w.t.Helper()
	rc := &recorder{}
	rc.srv = w.ca.server(w.t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, seen{r.Method, r.URL.RequestURI(), auth})
		rc.mu.Unlock()
		if needSecret && auth != "Bearer "+testSecret {
			http.Error(rw, "missing or wrong credential", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(rw, r)
	}))
	w.t.Cleanup(rc.srv.Close)
	rc.port = portOf(w.t, rc.srv.Listener.Addr())
	return rc
}

func (rc *recorder) url(path string) string {
	return "https://127.0.0.1:" + strconv.Itoa(rc.port) + path
}

func (rc *recorder) seen() []seen {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]seen(nil), rc.reqs...)
}

// usePolicy replaces the world's policy with text, in which SEALED is the
// test secret (sealed for 127.0.0.1, "Authorization: Bearer ...") and
// each pair of kv is a placeholder and its value.
func (w *world) usePolicy(text string, kv ...string) {
	w.t.Helper()
	writeFile(w.t, w.policy, strings.NewReplacer(append([]string{"SEALED", w.sealed}, kv...)...).Replace(text), 0o644)
}

// sandboxPath is the PATH inside the sandbox. /usr is the host's, so a
// tool found here on the host is the tool the sandbox runs.
const sandboxPath = "/usr/local/bin:/usr/bin:/bin"

// lookSandboxPath finds name in sandboxPath, as the sandbox's shell
// would (exec.LookPath would use the test's own PATH).
func lookSandboxPath(name string) (string, error) {
	for _, dir := range filepath.SplitList(sandboxPath) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s", name, sandboxPath)
}

// needHostCommand skips t unless name args runs successfully with the
// sandbox's PATH; why says what provides it.
func needHostCommand(t *testing.T, why, name string, args ...string) string {
	t.Helper()
	path, err := lookSandboxPath(name)
	if err != nil {
		t.Skipf("%s: %v", why, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = []string{"PATH=" + sandboxPath, "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("%s: %s %s failed (%v): %s", why, name, strings.Join(args, " "), err, lastLine(out))
	}
	return strings.TrimSpace(string(out))
}

// lastLine returns the last non-empty line of out.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// checkNoSecret fails t if the real secret reached the sandbox's output.
func checkNoSecret(t *testing.T, r result) {
	t.Helper()
	if strings.Contains(r.stdout+r.stderr, testSecret) {
		t.Fatalf("the real secret reached the sandbox:\n%s", r)
	}
}

// checkInjectedOnce fails t unless the world's API saw exactly one request,
// with the real secret.
func checkInjectedOnce(t *testing.T, w *world) {
	t.Helper()
	if auths := w.seenAuths(); len(auths) != 1 || auths[0] != "Bearer "+testSecret {
		t.Fatalf("API saw Authorization %q, want the injected secret once", auths)
	}
}

// curl sends the placeholder it was given; the API gets the real secret.
func TestClientCurl(t *testing.T) {
	w := newWorld(t)
	needHostCommand(t, "curl is needed (Debian package curl)", "curl", "--version")
	r := w.run("", "--", "sh", "-c",
		`curl -sS --fail-with-body -H "Authorization: Bearer $DEMO_API_KEY" `+w.apiURL("/v1/curl")+` && echo && echo "key $DEMO_API_KEY"`)
	if r.code != 0 {
		t.Fatalf("curl failed:\n%s", r)
	}
	checkNoSecret(t, r)
	for _, want := range []string{`"authorized":true`, `"path":"/v1/curl"`, "key tokrun_placeholder_"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("curl's output lacks %q:\n%s", want, r)
		}
	}
	checkInjectedOnce(t, w)
}

// Python requests, as SDKs built on it use it: REQUESTS_CA_BUNDLE and
// HTTPS_PROXY from the environment.
func TestClientPythonRequests(t *testing.T) {
	w := newWorld(t)
	needHostCommand(t, "Python requests is needed (Debian package python3-requests)", "python3", "-c", "import requests")
	w.script("agent.py", `
import os, requests
key = os.environ["DEMO_API_KEY"]
r = requests.post("`+w.apiURL("/v1/requests")+`", json={"q": 1}, headers={"Authorization": "Bearer " + key}, timeout=30)
body = r.json()
print("status", r.status_code, "authorized", body["authorized"], "method", body["method"])
print("key", key)
`)
	r := w.run("", "--", "python3", "agent.py")
	if r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	checkNoSecret(t, r)
	for _, want := range []string{"status 200 authorized True method POST", "key tokrun_placeholder_"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, r)
		}
	}
	checkInjectedOnce(t, w)
}

// goClient is a Go program using net/http. ProxyFromEnvironment honours
// HTTPS_PROXY for every host except localhost and loopback addresses,
// which it always dials directly; the test's API is on 127.0.0.1, so the
// program uses the proxy ProxyFromEnvironment names for a public host.
const goClient = `package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	public, _ := http.NewRequest("GET", "https://api.example.com/", nil)
	proxy, err := http.ProxyFromEnvironment(public)
	fmt.Println("proxy for a public host:", proxy, err)

	_, err = (&http.Client{Timeout: 10 * time.Second}).Get(os.Args[1])
	fmt.Println("loopback without the proxy fails:", err != nil)

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(proxy)
	req, _ := http.NewRequest("GET", os.Args[1], nil)
	req.Header.Set("Authorization", "Bearer "+os.Getenv("DEMO_API_KEY"))
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("status %d body %s", resp.StatusCode, body)
	fmt.Println("key", os.Getenv("DEMO_API_KEY"))
}
`

func TestClientGoNetHTTP(t *testing.T) {
	w := newWorld(t)
	src := filepath.Join(t.TempDir(), "main.go")
	writeFile(t, src, goClient, 0o644)
	build := exec.Command("go", "build", "-o", filepath.Join(w.project, "goclient"), src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the Go client: %v\n%s", err, out)
	}
	r := w.run("", "--", "./goclient", w.apiURL("/v1/go"))
	if r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	checkNoSecret(t, r)
	for _, want := range []string{
		"proxy for a public host: http://127.0.0.1:3128 <nil>",
		"loopback without the proxy fails: true",
		`status 200 body {"authorized":true,"method":"GET","path":"/v1/go"}`,
		"key tokrun_placeholder_",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, r)
		}
	}
	checkInjectedOnce(t, w)
}
