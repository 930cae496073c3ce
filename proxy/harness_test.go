package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokrun/tokrun/internal/syncbuf"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokrun/tokrun/policy"
	"github.com/tokrun/tokrun/sealing"
)

// testSecret is the value sealed for the test upstream. Tests scan every
// output for it.
const testSecret = "sk-test-SECRET-0123456789abcdef"

// fakePublic is what the test resolver answers for *.example.com; the test
// dialer redirects it to the loopback upstream, so no traffic leaves the
// machine while the address guard sees a public address.
var fakePublic = netip.MustParseAddr("100.128.0.7")

type harness struct {
	t        testing.TB
	upstream *httptest.Server
	srv      *Server
	ca       *CA
	proxyURL *url.URL
	audit    *syncbuf.Buffer
	logs     *syncbuf.Buffer
	reg      *prometheus.Registry
	metrics  *Metrics
	dials    atomic.Int32
	sealed   string
}

// upstreamHandler is the default test API: it reports what it received,
// with the injected secret shown as INJECTED so that the report itself
// does not echo the secret.
func upstreamHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	auth := r.Header.Get("Authorization")
	if auth == "Bearer "+testSecret {
		auth = "INJECTED"
	}
	fmt.Fprintf(w, "method=%s host=%s path=%s auth=%q conn=%q\n", r.Method, r.Host, r.URL.RequestURI(), auth, r.Header.Get("Connection"))
}

// newHarness starts an upstream TLS server (as *.example.com), a proxy
// with policyText (where SEALED stands for a token sealed for
// api.example.com, header Authorization, format "Bearer {}"), and returns
// them wired together.
func newHarness(t testing.TB, policyText string, handler http.Handler, opts ...func(*harness, *Config)) *harness {
	t.Helper()
	if handler == nil {
		handler = http.HandlerFunc(upstreamHandler)
	}
	h := &harness{t: t, audit: &syncbuf.Buffer{}, logs: &syncbuf.Buffer{}, reg: prometheus.NewRegistry()}
	h.upstream = httptest.NewUnstartedServer(handler)
	h.upstream.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.upstream.Listener = ln
	h.upstream.StartTLS()
	t.Cleanup(h.upstream.Close)

	keys, err := sealing.LoadKeyFile("../testdata/sealing/key.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.sealed, err = sealing.Seal(rand.Reader, keys.PublicKeys()[0], sealing.Binding{
		Name: "api", Hosts: []string{"api.example.com"}, Header: "Authorization", Format: "Bearer {}",
	}, testSecret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse("test.yaml", []byte(strings.ReplaceAll(policyText, "SEALED", h.sealed)), policy.Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	h.ca, err = NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(h.upstream.Certificate())
	upAddr := h.upstream.Listener.Addr().String()
	_, upPort, _ := net.SplitHostPort(upAddr)
	h.metrics = NewMetrics(h.reg)
	h.metrics.PolicyLoaded(pol)
	cfg := Config{
		Policy:        func() *policy.Policy { return pol },
		CA:            h.ca,
		UpstreamRoots: roots,
		Audit:         NewAuditLog(h.audit),
		Metrics:       h.metrics,
		Logger:        slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Dialer: &GuardedDialer{
			Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
				switch {
				case host == "rebind.example.com":
					return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
				case strings.HasSuffix(host, ".example.com"):
					return []netip.Addr{fakePublic}, nil
				}
				return nil, fmt.Errorf("test resolver: no such host %s", host)
			},
			Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, port, _ := net.SplitHostPort(addr)
				h.dials.Add(1)
				switch {
				case host == fakePublic.String() && port == "443", host == "127.0.0.1" && port == upPort:
					return (&net.Dialer{}).DialContext(ctx, network, upAddr)
				case host == fakePublic.String():
					return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+port)
				}
				return nil, errors.New("test dialer: refusing " + addr)
			},
		},
	}
	for _, o := range opts {
		o(h, &cfg)
	}
	h.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.srv.Serve(pln, ServeOptions{})
	t.Cleanup(func() { h.srv.Close() })
	h.proxyURL = &url.URL{Scheme: "http", Host: pln.Addr().String()}
	return h
}

// client returns an HTTP client that uses the proxy and trusts its CA.
func (h *harness) client() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(h.ca.Certificate())
	return &http.Client{
		Transport: &http.Transport{
			Proxy:           http.ProxyURL(h.proxyURL),
			TLSClientConfig: &tls.Config{RootCAs: pool},
		},
		Timeout: 20 * time.Second,
	}
}

// unixClient serves the proxy on a Unix socket too, and returns a client
// that uses it (its client name is "unix").
func (h *harness) unixClient() *http.Client {
	h.t.Helper()
	sock := filepath.Join(h.t.TempDir(), "proxy.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		h.t.Fatal(err)
	}
	go h.srv.Serve(ln, ServeOptions{})
	pool := x509.NewCertPool()
	pool.AddCert(h.ca.Certificate())
	return &http.Client{
		Transport: &http.Transport{
			Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: "proxy.invalid"}),
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			},
			TLSClientConfig: &tls.Config{RootCAs: pool},
		},
		Timeout: 20 * time.Second,
	}
}

// get performs a request through the proxy and returns status, body and
// the reason header.
func (h *harness) do(c *http.Client, req *http.Request) (int, string, string) {
	h.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header.Get("X-Tokrun-Reason")
}

func newRequest(t testing.TB, method, u string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// checkNoSecret fails if the secret appears in the audit log or logs, in
// any case.
func (h *harness) checkNoSecret() {
	h.t.Helper()
	for name, s := range map[string]string{"audit": h.audit.String(), "logs": h.logs.String()} {
		if strings.Contains(strings.ToLower(s), strings.ToLower(testSecret)) {
			h.t.Errorf("secret appears in %s", name)
		}
	}
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o600)
}

func testKeys(t testing.TB) *sealing.KeyRing {
	t.Helper()
	keys, err := sealing.LoadKeyFile("../testdata/sealing/key.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// waitAudit returns the first audit line containing want, waiting for it:
// an allowed request's record is written when its response body is
// finished, which may be just after the client has read it.
func (h *harness) waitAudit(t *testing.T, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, l := range strings.Split(h.audit.String(), "\n") {
			if strings.Contains(l, want) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit record contains %s:\n%s", want, h.audit.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
