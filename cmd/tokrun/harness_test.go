package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokrun/tokrun/runner"
	"github.com/tokrun/tokrun/sealing"
)

// testSecret is the real credential of the end-to-end tests. It must never
// reach the sandbox.
const testSecret = "sk-live-e2e-0123456789abcdef-REAL"

// world is one end-to-end setup: a local HTTPS "API" with its own test
// CA, a key, a policy with a sealed secret bound to the API, a project
// directory and a state directory.
type world struct {
	t         *testing.T
	api       *httptest.Server
	apiPort   int
	other     *httptest.Server // a second server the secret is not bound to
	otherPort int
	caFile    string
	keyFile   string
	project   string
	stateDir  string
	policy    string
	ca        *testCA // issues the certificates of the world's servers
	sealed    string  // testSecret sealed for 127.0.0.1 as "Authorization: Bearer ..."

	mu        sync.Mutex
	auths     []string // Authorization headers the API received
	otherHits []string
}

const worldPolicy = `version: 1
secrets:
  demo:
    sealed: SEALED
    env: DEMO_API_KEY
rules:
  - name: api
    host: 127.0.0.1
    port: APIPORT
    paths: ["/v1/**"]
    inject: [demo]
    unsafe_allow_private_network: true
  - name: other
    host: localhost
    port: OTHERPORT
    unsafe_allow_private_network: true
  # The same loopback API under a name, without the private-network
  # allowance: the proxy's address guard must refuse it.
  - name: guarded
    host: localhost
    port: APIPORT
  - name: guarded-ip
    host: 127.0.0.2
    port: APIPORT
`

func newWorld(t *testing.T) *world {
	t.Helper()
	needSandbox(t)
	w := &world{t: t, project: t.TempDir(), stateDir: stateDir(t)}
	ca := newTestCA(t)
	w.ca = ca
	w.api = ca.server(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.auths = append(w.auths, r.Header.Get("Authorization"))
		w.mu.Unlock()
		ok := r.Header.Get("Authorization") == "Bearer "+testSecret
		rw.Header().Set("Content-Type", "application/json")
		if !ok {
			rw.WriteHeader(http.StatusUnauthorized)
		}
		json.NewEncoder(rw).Encode(map[string]any{"authorized": ok, "path": r.URL.Path, "method": r.Method})
	}))
	t.Cleanup(w.api.Close)
	w.other = ca.server(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.otherHits = append(w.otherHits, r.URL.String())
		w.mu.Unlock()
		rw.Write([]byte("other\n"))
	}))
	t.Cleanup(w.other.Close)
	w.apiPort = portOf(t, w.api.Listener.Addr())
	w.otherPort = portOf(t, w.other.Listener.Addr())

	cfg := t.TempDir()
	w.caFile = filepath.Join(cfg, "upstream-ca.pem")
	writeFile(t, w.caFile, string(ca.certPEM), 0o644)
	key, err := os.ReadFile("../../testdata/sealing/key.txt")
	if err != nil {
		t.Fatal(err)
	}
	w.keyFile = filepath.Join(cfg, "key.txt")
	writeFile(t, w.keyFile, string(key), 0o600)
	keys, err := sealing.LoadKeyFile(w.keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealing.Seal(rand.Reader, keys.PublicKeys()[0], sealing.Binding{
		Name: "demo", Hosts: []string{"127.0.0.1"}, Header: "Authorization", Format: "Bearer {}",
	}, testSecret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	w.sealed = sealed
	text := strings.NewReplacer("SEALED", sealed, "APIPORT", strconv.Itoa(w.apiPort), "OTHERPORT", strconv.Itoa(w.otherPort)).Replace(worldPolicy)
	w.policy = filepath.Join(cfg, "policy.yaml")
	writeFile(t, w.policy, text, 0o644)
	return w
}

func portOf(t *testing.T, a net.Addr) int {
	t.Helper()
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// result is one finished tokrun.
type result struct {
	stdout, stderr string
	code           int
}

// run runs tokrun with the world's key, policy, CA and state directory,
// then args, in the project directory.
func (w *world) run(stdin string, args ...string) result {
	w.t.Helper()
	base := []string{"--key", w.keyFile, "--policy", w.policy, "--upstream-ca", w.caFile, "--state-dir", w.stateDir}
	return w.runRaw(stdin, append(base, args...)...)
}

// runRaw runs tokrun with exactly args.
func (w *world) runRaw(stdin string, args ...string) result {
	w.t.Helper()
	cmd := exec.Command(tokrunBin, args...)
	cmd.Dir = w.project
	// The host environment holds a real-looking key that must not pass.
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "OPENAI_API_KEY=sk-host-env-must-not-leak-42", "XDG_CONFIG_HOME=" + filepath.Dir(w.keyFile)}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		w.t.Fatalf("running tokrun: %v", err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// script writes a Python program into the project directory.
func (w *world) script(name, src string) string {
	w.t.Helper()
	writeFile(w.t, filepath.Join(w.project, name), src, 0o644)
	return name
}

func (w *world) apiURL(path string) string {
	return "https://127.0.0.1:" + strconv.Itoa(w.apiPort) + path
}

func (w *world) otherURL(path string) string {
	return "https://localhost:" + strconv.Itoa(w.otherPort) + path
}

func (w *world) seenAuths() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.auths...)
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// stateDir returns a state directory removed, mounts and all, after t.
func stateDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "tokrun-state-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeState(t, dir) })
	return dir
}

func removeState(t testing.TB, dir string) {
	if err := runner.RemoveState(dir); err != nil {
		t.Errorf("removing the state directory: %v", err)
	}
}

// testCA is the local APIs' own CA, as a real API's would be.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tokrun e2e test API CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// server starts an HTTPS server on 127.0.0.1 with a certificate for
// localhost and 127.0.0.1 issued by the CA.
func (ca *testCA) server(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	return srv
}
