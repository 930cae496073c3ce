package proxy

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokrun/tokrun/policy"
)

// A listener served with RequireAuth answers 407 without a valid bearer
// token, for CONNECT and plain requests, and accepts a valid one.
func TestProxyAuthentication(t *testing.T) {
	h, ln, pool := authHarness(t, "agent-1", "good-token")
	clientWith := func(token string) *http.Client {
		hdr := http.Header{}
		if token != "" {
			hdr.Set("Proxy-Authorization", "Bearer "+token)
		}
		return &http.Client{Transport: &http.Transport{
			Proxy:              http.ProxyURL(&url.URL{Scheme: "http", Host: ln.Addr().String()}),
			ProxyConnectHeader: hdr,
			TLSClientConfig:    &tls.Config{RootCAs: pool},
		}}
	}
	for _, tok := range []string{"", "bad-token"} {
		_, err := clientWith(tok).Get("https://open.example.com/")
		if err == nil || !strings.Contains(err.Error(), "Proxy Authentication Required") {
			t.Errorf("token %q: err = %v", tok, err)
		}
	}
	status, body, _ := h.do(clientWith("good-token"), newRequest(t, "GET", "https://open.example.com/x", nil))
	if status != 200 || !strings.Contains(body, "path=/x") {
		t.Fatalf("good token: %d %q", status, body)
	}
	if !strings.Contains(h.audit.String(), `"client":"agent-1"`) || !strings.Contains(h.audit.String(), `"reason":"proxy_auth_required"`) {
		t.Fatalf("audit log lacks the client name or the 407:\n%s", h.audit.String())
	}
	if strings.Contains(h.audit.String(), "good-token") || strings.Contains(h.audit.String(), "bad-token") {
		t.Fatal("audit log contains a proxy token")
	}
}

// The proxy serves a Unix socket, the sandbox's path to it.
func TestUnixSocketListener(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	status, body, _ := h.do(h.unixClient(), newRequest(t, "GET", "https://api.example.com/v1/x", nil))
	if status != 200 || !strings.Contains(body, `auth="INJECTED"`) {
		t.Fatalf("%d %q", status, body)
	}
	if !strings.Contains(h.audit.String(), `"client":"unix"`) {
		t.Fatal("audit client for the unix socket")
	}
}

// A rule with scheme http reaches a plain-HTTP upstream; https-only hosts
// are refused over plain http.
func TestPlainHTTP(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(upstreamHandler))
	defer plain.Close()
	_, port, _ := net.SplitHostPort(plain.Listener.Addr().String())
	src := strings.Replace(basicPolicy, "deny:", fmt.Sprintf("  - name: plain\n    host: plain.example.com\n    scheme: http\n    port: %s\ndeny:", port), 1)
	h := newHarness(t, src, nil)
	status, body, _ := h.do(h.client(), newRequest(t, "GET", "http://plain.example.com:"+port+"/p?q=1", nil))
	if status != 200 || !strings.Contains(body, "path=/p?q=1") {
		t.Fatalf("plain: %d %q", status, body)
	}
	status, _, reason := h.do(h.client(), newRequest(t, "GET", "http://api.example.com/v1/x", nil))
	if status != 403 || reason != "scheme_not_allowed" {
		t.Fatalf("http to an https rule: %d %q", status, reason)
	}
}

// Reloading the policy while requests are in flight fails none of them.
func TestPolicyReloadUnderLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	var store *policy.Store
	var sealed string
	write := func(extra string) {
		if err := writeFile(path, strings.ReplaceAll(basicPolicy, "SEALED", sealed)+extra); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, basicPolicy, nil, func(h *harness, c *Config) {
		sealed = h.sealed
		write("")
		var err error
		if store, err = policy.NewStore(path, policy.Options{Keys: testKeys(t)}, nil); err != nil {
			t.Fatal(err)
		}
		c.Policy = store.Policy
	})
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	stop := make(chan struct{})
	var served atomic.Int64
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := h.client()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("https://api.example.com/v1/x")
				if err != nil {
					errs <- err.Error()
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- resp.Status
					return
				}
				served.Add(1)
			}
		}()
	}
	for i := 0; i < 20; i++ {
		// A request is served between every two reloads, so that
		// requests run across all of them, however slow the machine.
		for want, deadline := served.Load()+1, time.Now().Add(10*time.Second); served.Load() < want && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		if i%2 == 0 {
			write(fmt.Sprintf("  - name: extra-%d\n    host: extra.example.com\n", i))
		} else {
			write("  - name: broken\n    host: [\n")
		}
		store.Reload() //nolint:errcheck // failures are part of the test
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("request failed during reloads: %s", e)
	}
	// Every request served was decided and counted (as was each client's
	// CONNECT).
	if got := testutil.ToFloat64(h.metrics.Decisions.WithLabelValues("allow", "api", "allowed")); served.Load() < 20 || got < float64(served.Load()) {
		t.Fatalf("decisions metric %v, %d requests served", got, served.Load())
	}
}

// Basic proxy authentication with the token as password works too, for
// clients that take credentials from HTTPS_PROXY=http://name:token@host.
func TestProxyBasicAuthentication(t *testing.T) {
	h, ln, pool := authHarness(t, "agent-2", "basic-token")
	for _, tt := range []struct {
		user *url.Userinfo
		ok   bool
	}{
		{url.UserPassword("agent", "basic-token"), true},
		{url.UserPassword("agent", "wrong"), false},
		{url.User("basic-token"), false},
	} {
		c := &http.Client{Transport: &http.Transport{
			Proxy:           http.ProxyURL(&url.URL{Scheme: "http", Host: ln.Addr().String(), User: tt.user}),
			TLSClientConfig: &tls.Config{RootCAs: pool},
		}}
		resp, err := c.Get("https://open.example.com/x")
		if tt.ok != (err == nil) {
			t.Errorf("%v: err = %v", tt.user, err)
		}
		if err == nil {
			resp.Body.Close()
		}
	}
	// Only Bearer and Basic carry a token; another scheme with Basic's
	// encoding is no credential.
	for header, want := range map[string]int{
		"Bearer basic-token": 200,
		"bearer basic-token": 200,
		"Basic " + base64.StdEncoding.EncodeToString([]byte("a:basic-token")):  200,
		"Digest " + base64.StdEncoding.EncodeToString([]byte("a:basic-token")): 407,
		"Token basic-token": 407,
		"basic-token":       407,
	} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "CONNECT open.example.com:443 HTTP/1.1\r\nHost: open.example.com:443\r\nProxy-Authorization: %s\r\n\r\n", header)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
		if err != nil || resp.StatusCode != want {
			t.Errorf("Proxy-Authorization %.12s...: %v %v, want %d", header, resp, err, want)
		}
	}
	if strings.Contains(h.audit.String(), "basic-token") {
		t.Fatal("audit log contains a token")
	}
	if !strings.Contains(h.audit.String(), `"reason":"proxy_auth_required","method":"CONNECT","scheme":"https","host":"open.example.com","port":443`) {
		t.Fatalf("407 audit record lacks the target:\n%s", h.audit.String())
	}
}

// authHarness starts a harness with one client token and an extra
// listener that requires it; it returns the listener and a pool trusting
// the proxy's CA.
func authHarness(t *testing.T, name, token string) (*harness, net.Listener, *x509.CertPool) {
	t.Helper()
	h := newHarness(t, basicPolicy, nil, func(_ *harness, c *Config) {
		c.Tokens = []Token{{Name: name, SHA256: sha256.Sum256([]byte(token))}}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.srv.Serve(ln, ServeOptions{RequireAuth: true})
	pool := x509.NewCertPool()
	pool.AddCert(h.ca.Certificate())
	return h, ln, pool
}

// Every request on a listener that requires a token is authenticated and
// audited, "OPTIONS *" (which net/http would answer itself) included.
func TestOptionsStarNeedsAuthentication(t *testing.T) {
	h, ln, _ := authHarness(t, "agent", "tok-123")
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(conn, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Fatalf("OPTIONS * without a token: %d", resp.StatusCode)
	}
	h.waitAudit(t, `"reason":"proxy_auth_required","method":"OPTIONS"`)
}
