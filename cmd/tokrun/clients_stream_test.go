package main

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// wsPolicy reaches one WebSocket server by two paths: one through a rule
// without secrets, one through a rule that injects a secret.
const wsPolicy = `version: 1
secrets:
  demo:
    sealed: SEALED
    env: DEMO_API_KEY
rules:
  - name: ws-open
    host: 127.0.0.1
    port: WSPORT
    paths: ["/ws"]
    unsafe_allow_private_network: true
  - name: ws-secret
    host: 127.0.0.1
    port: WSPORT
    paths: ["/ws-secret"]
    inject: [demo]
    unsafe_allow_private_network: true
`

// wsClient talks to both paths with websocket-client, which takes the
// proxy from HTTPS_PROXY, except that, like Go's net/http, it never
// proxies localhost or 127.0.0.1 unless given a proxy and a no-proxy list
// of its own (tokrun refuses NO_PROXY). Public hosts need neither.
const wsClient = `
import os, urllib.parse, websocket
proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
loopback = dict(http_proxy_host=proxy.hostname, http_proxy_port=proxy.port, proxy_type="http", http_no_proxy=["none.invalid"])
for path in ["/ws", "/ws-secret"]:
    try:
        ws = websocket.create_connection("URL" + path, timeout=30, **loopback)
        ws.send("hello over " + path)
        print(path, "got:", ws.recv())
        ws.close()
    except Exception as e:
        print(path, "failed:", type(e).__name__, e)
`

// A WebSocket through a rule without secrets works both ways; on a rule
// that injects a secret the proxy refuses the upgrade (frames after the
// switch cannot be scanned for the secret), before the server sees it.
func TestClientWebSocket(t *testing.T) {
	w := newWorld(t)
	needHostCommand(t, "websocket-client is needed (Debian package python3-websocket)", "python3", "-c", "import websocket")
	srv := w.recordingServer(false, websocket.Server{Handler: func(ws *websocket.Conn) {
		var msg string
		if websocket.Message.Receive(ws, &msg) == nil {
			websocket.Message.Send(ws, strings.ToUpper(msg))
		}
	}})
	w.usePolicy(wsPolicy, "WSPORT", strconv.Itoa(srv.port))
	w.script("ws.py", strings.ReplaceAll(wsClient, "URL", "wss://127.0.0.1:"+strconv.Itoa(srv.port)))
	r := w.run("", "--", "python3", "ws.py")
	if r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	for _, want := range []string{"/ws got: HELLO OVER /WS\n", "/ws-secret failed: WebSocketBadStatusException Handshake status 403"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, r)
		}
	}
	got := srv.seen()
	if len(got) != 1 || got[0].uri != "/ws" || got[0].auth != "" {
		t.Fatalf("the server saw %q, want one upgrade on /ws without credentials", got)
	}
}

// ssePolicy is an API whose event streams need the injected secret.
const ssePolicy = `version: 1
secrets:
  demo:
    sealed: SEALED
    env: DEMO_API_KEY
rules:
  - name: api
    host: 127.0.0.1
    port: SSEPORT
    paths: ["/v1/**"]
    inject: [demo]
    unsafe_allow_private_network: true
`

// sseClient reads the stream with curl -N and acknowledges the first
// event with a second request while the stream is still open.
const sseClient = `
auth="Authorization: Bearer $DEMO_API_KEY"
curl -sSN --fail-with-body -H "$auth" URL/v1/events | while IFS= read -r line; do
  [ -n "$line" ] || continue
  echo "event $line"
  if [ "$line" = "data: one" ]; then curl -sS --fail-with-body -H "$auth" URL/v1/ack; echo; fi
done
`

// Server-sent events reach the client one by one through a rule that
// injects a secret (and so scrubs responses): the server sends its
// second event only after the client acknowledged the first, so a proxy
// that held the stream back would end in the server's timeout.
func TestClientServerSentEvents(t *testing.T) {
	w := newWorld(t)
	needHostCommand(t, "curl is needed (Debian package curl)", "curl", "--version")
	ack := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/events", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(rw, "data: one\n\n")
		rw.(http.Flusher).Flush()
		select {
		case <-ack:
			io.WriteString(rw, "data: two\n\n")
		case <-time.After(15 * time.Second):
			io.WriteString(rw, "data: timeout\n\n")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("GET /v1/ack", func(rw http.ResponseWriter, r *http.Request) {
		select {
		case ack <- struct{}{}:
		default:
		}
		io.WriteString(rw, "acknowledged")
	})
	srv := w.recordingServer(true, mux)
	w.usePolicy(ssePolicy, "SSEPORT", strconv.Itoa(srv.port))
	r := w.run("", "--", "sh", "-c", strings.ReplaceAll(sseClient, "URL", srv.url("")))
	if r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	checkNoSecret(t, r)
	if want := "event data: one\nacknowledged\nevent data: two\n"; r.stdout != want {
		t.Fatalf("stdout = %q, want %q\n%s", r.stdout, want, r)
	}
	var got []string
	for _, s := range srv.seen() {
		if s.auth != "Bearer "+testSecret {
			t.Errorf("the server got %s %s without the injected secret", s.method, s.uri)
		}
		got = append(got, s.uri)
	}
	if strings.Join(got, " ") != "/v1/events /v1/ack" {
		t.Errorf("the server saw %q, want /v1/events then /v1/ack", got)
	}
}

// wsTripPolicy reaches a WebSocket server on localhost, a host outside the
// demo secret's binding (127.0.0.1).
const wsTripPolicy = `version: 1
secrets:
  demo:
    sealed: SEALED
    env: DEMO_API_KEY
rules:
  - name: ws-elsewhere
    host: localhost
    port: WSPORT
    paths: ["/ws"]
    unsafe_allow_private_network: true
`

// A command that sends its placeholder in a WebSocket message to a host
// outside the secret's binding sets off the tripwire: the message never
// reaches the server, and with --on-tripwire kill the run ends (124).
func TestClientWebSocketTripwire(t *testing.T) {
	w := newWorld(t)
	needHostCommand(t, "websocket-client is needed (Debian package python3-websocket)", "python3", "-c", "import websocket")
	var mu sync.Mutex
	var got []string
	srv := w.recordingServer(false, websocket.Server{Handler: func(ws *websocket.Conn) {
		for {
			var msg string
			if websocket.Message.Receive(ws, &msg) != nil {
				return
			}
			mu.Lock()
			got = append(got, msg)
			mu.Unlock()
			websocket.Message.Send(ws, "ok")
		}
	}})
	w.usePolicy(wsTripPolicy, "WSPORT", strconv.Itoa(srv.port))
	w.script("ws.py", `
import os, time, urllib.parse, websocket
proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
ws = websocket.create_connection("wss://localhost:`+strconv.Itoa(srv.port)+`/ws", timeout=30,
    http_proxy_host=proxy.hostname, http_proxy_port=proxy.port, proxy_type="http", http_no_proxy=["none.invalid"])
ws.send("hello")
print("got:", ws.recv(), flush=True)
try:
    ws.send("key=" + os.environ["DEMO_API_KEY"])
    print("after the placeholder:", ws.recv(), flush=True)
except Exception as e:
    print("closed:", type(e).__name__, flush=True)
time.sleep(60)
print("STILL RUNNING")
`)
	r := w.run("", "--on-tripwire", "kill", "--", "python3", "ws.py")
	if r.code != 124 || strings.Contains(r.stdout, "STILL RUNNING") || !strings.Contains(r.stdout, "got: ok") {
		t.Fatalf("want the first message answered, then exit 124, got\n%s", r)
	}
	if !strings.Contains(r.stderr, "tripwire") {
		t.Errorf("stderr does not say the tripwire ended the run:\n%s", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "hello" {
		t.Fatalf("the server received %q, want only the first message", got)
	}
}
