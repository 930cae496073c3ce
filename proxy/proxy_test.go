package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

const basicPolicy = `
version: 1
secrets:
  api:
    sealed: SEALED
rules:
  - name: api
    host: api.example.com
    methods: [GET, POST]
    paths: ["/v1/**"]
    inject: [api]
  - name: open
    host: open.example.com
  - name: rebind
    host: rebind.example.com
deny:
  - name: no-admin
    host: api.example.com
    paths: ["/v1/admin/**"]
`

func TestInjectsSecretIntoAllowedRequest(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	req := newRequest(t, "GET", "https://api.example.com/v1/models?x=1", nil)
	req.Header.Set("Authorization", "Bearer client-supplied")
	status, body, _ := h.do(h.client(), req)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	want := `method=GET host=api.example.com path=/v1/models?x=1 auth="INJECTED"`
	if !strings.HasPrefix(body, want) {
		t.Fatalf("upstream saw %q, want prefix %q", body, want)
	}
	h.checkNoSecret()
	var rec Record
	if err := json.Unmarshal([]byte(h.waitAudit(t, `"method":"GET"`)), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Decision != "allow" || rec.Rule != "api" || rec.Host != "api.example.com" || rec.Path != "/v1/models" ||
		len(rec.Secrets) != 1 || rec.Secrets[0] != "api" || rec.Status != 200 || rec.BytesOut == 0 {
		t.Fatalf("audit record %+v", rec)
	}
	if got := testutil.ToFloat64(h.metrics.Injections.WithLabelValues("api", "api")); got != 1 {
		t.Fatalf("injections metric %v", got)
	}
}

// The headers a client's Connection names are removed, and then the
// secret is injected: naming the injected header cannot remove it.
func TestConnectionHeaderCannotRemoveInjectedHeader(t *testing.T) {
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamHandler(w, r)
		fmt.Fprintf(w, "foo=%q keepalive=%q\n", r.Header.Get("X-Foo"), r.Header.Get("Keep-Alive"))
	}))
	req := newRequest(t, "GET", "https://api.example.com/v1/x", nil)
	req.Header.Set("Connection", "Authorization, X-Foo")
	req.Header.Set("X-Foo", "named in Connection")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
	status, body, _ := h.do(h.client(), req)
	if status != 200 || !strings.Contains(body, `auth="INJECTED"`) || !strings.Contains(body, `conn=""`) ||
		!strings.Contains(body, `foo="" keepalive=""`) {
		t.Fatalf("status %d, upstream saw %q", status, body)
	}
}

func TestDenials(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	c := h.client()
	tests := []struct {
		method, url string
		status      int
		reason      string
	}{
		{"DELETE", "https://api.example.com/v1/x", 403, "method_not_allowed"},
		{"GET", "https://api.example.com/v2/x", 403, "path_not_allowed"},
		{"GET", "https://api.example.com/v1/../admin", 403, "path_not_allowed"},
		{"GET", "https://api.example.com/v1/%2e%2e/admin", 403, "path_not_allowed"},
		{"GET", "https://api.example.com/v1%2Fadmin", 400, "invalid_path"},
		{"GET", "https://api.example.com/v1/admin/users", 403, "denied_by_rule"},
		{"TRACE", "https://api.example.com/v1/x", 403, "method_not_allowed"},
		{"GET", "https://rebind.example.com/", 403, "private_address"},
	}
	for _, tt := range tests {
		req := newRequest(t, tt.method, tt.url, nil)
		status, body, reason := h.do(c, req)
		if status != tt.status || reason != tt.reason || !strings.HasPrefix(body, "tokproxy: "+tt.reason+": ") {
			t.Errorf("%s %s: status %d reason %q body %q", tt.method, tt.url, status, reason, body)
		}
	}
	h.checkNoSecret()
}

// A denied host gets 403 on CONNECT, before any tunnel or upstream dial.
func TestConnectDeniedBeforeTunnel(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	conn, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "CONNECT evil.example.net:443 HTTP/1.1\r\nHost: evil.example.net:443\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || resp.Header.Get("X-Tokrun-Reason") != "host_not_allowed" ||
		!strings.Contains(string(body), "add a rule with host: evil.example.net") {
		t.Fatalf("status %d headers %v body %q", resp.StatusCode, resp.Header, body)
	}
	if h.dials.Load() != 0 {
		t.Fatal("denied CONNECT dialled upstream")
	}
}

// Inside a tunnel to api.example.com, a request whose Host or SNI names
// another host is refused with 421 and the other host is never contacted.
func TestHostMismatchInsideTunnel(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	pool := x509.NewCertPool()
	pool.AddCert(h.ca.Certificate())
	for _, tt := range []struct{ sni, host, target string }{
		{"api.example.com", "open.example.com", "/v1/x"},
		{"open.example.com", "api.example.com", "/v1/x"},
		{"api.example.com", "api.example.com:8443", "/v1/x"},
		{"api.example.com", "api.example.com", "https://open.example.com/v1/x"}, // absolute form
		{"bad..host", "api.example.com", "/v1/x"},                               // an SNI that is no host name matches nothing
	} {
		conn, err := net.Dial("tcp", h.proxyURL.Host)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		tc := tls.Client(conn, &tls.Config{ServerName: tt.sni, RootCAs: pool, InsecureSkipVerify: tt.sni != "api.example.com"})
		io.WriteString(tc, "GET "+tt.target+" HTTP/1.1\r\nHost: "+tt.host+"\r\n\r\n")
		resp, err = http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 421 || resp.Header.Get("X-Tokrun-Reason") != "host_mismatch" {
			t.Errorf("sni %s host %s: status %d", tt.sni, tt.host, resp.StatusCode)
		}
		conn.Close()
	}
	if h.dials.Load() != 0 {
		t.Fatalf("mismatched requests dialled upstream %d times", h.dials.Load())
	}
}

func TestUpstreamDownGives502(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	h.upstream.Close()
	status, body, reason := h.do(h.client(), newRequest(t, "GET", "https://open.example.com/", nil))
	if status != 502 || reason != "upstream_unreachable" || strings.Contains(body, "127.0.0.1") {
		t.Fatalf("status %d reason %q body %q", status, reason, body)
	}
}

// A CONNECT target with user information is refused, not silently
// trimmed.
func TestConnectWithUserinfoRefused(t *testing.T) {
	h := newHarness(t, basicPolicy, nil)
	conn, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "CONNECT u:p@open.example.com:443 HTTP/1.1\r\nHost: open.example.com:443\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || resp.Header.Get("X-Tokrun-Reason") != "bad_request" {
		t.Fatalf("status %d reason %q", resp.StatusCode, resp.Header.Get("X-Tokrun-Reason"))
	}
}
