package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/tokrun/tokrun/internal/syncbuf"

	"github.com/tokrun/tokrun/internal/loadtest"
	"github.com/tokrun/tokrun/sealing"
)

// BenchmarkDaemon compares kept-alive HTTPS through a real tokproxy
// process (built without the race detector, audit log to a file) with
// direct requests to the same upstream, in interleaved rounds, at
// concurrency 1 and 8. The upstream and the clients run in the benchmark
// process; the proxy runs in its own, as it would be deployed.
func BenchmarkDaemon(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "tokproxy")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building tokproxy: %v\n%s", err, out)
	}
	body := make([]byte, 1024)
	var upConns atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(body)
	}))
	up.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			upConns.Add(1)
		}
	}
	up.StartTLS()
	defer up.Close()
	_, upPort, _ := net.SplitHostPort(up.Listener.Addr().String())

	keys, err := sealing.LoadKeyFile("../../testdata/sealing/key.txt", nil)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := sealing.Seal(rand.Reader, keys.PublicKeys()[0], sealing.Binding{Name: "api", Hosts: []string{"127.0.0.1"},
		Header: "Authorization", Format: "Bearer {}"}, "sk-bench-0123456789abcdef", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	token := "bench-token"
	sum := sha256.Sum256([]byte(token))
	files := map[string]string{
		"policy.yaml":  fmt.Sprintf("version: 1\nsecrets:\n  api:\n    sealed: %s\nrules:\n  - name: api\n    host: 127.0.0.1\n    port: %s\n    paths: [\"/v1/**\"]\n    inject: [api]\n    unsafe_allow_private_network: true\n", tok, upPort),
		"tokens.txt":   "bench " + hex.EncodeToString(sum[:]) + "\n",
		"upstream.pem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw})),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	tp := startTokproxy(b, bin, dir, "tokproxy", strings.Fields(os.Getenv("TOKRUN_BENCH_ENV")))
	proxyAddr, caPEM := tp.addr, tp.ca
	proxyRoots, upRoots := x509.NewCertPool(), x509.NewCertPool()
	proxyRoots.AppendCertsFromPEM(caPEM)
	upRoots.AddCert(up.Certificate())
	gpRoots := x509.NewCertPool()
	gpRoots.AddCert(goproxy.GoproxyCa.Leaf)
	target := up.URL + "/v1/x"

	// A baseline, if asked for: another tokproxy binary (an earlier build)
	// or the same one with other environment variables, measured in the
	// same rounds: the way to compare two versions on a noisy machine.
	var base child
	baseRoots := x509.NewCertPool()
	if bb, env := os.Getenv("TOKRUN_BENCH_BASELINE"), os.Getenv("TOKRUN_BENCH_BASELINE_ENV"); bb != "" || env != "" {
		if bb == "" {
			bb = bin
		}
		bt := startTokproxy(b, bb, dir, "baseline", strings.Fields(env))
		base = child{addr: bt.addr, pid: bt.pid}
		baseRoots.AppendCertsFromPEM(bt.ca)
	}

	// Yardsticks, each a process of its own (this test binary, re-executed):
	// plain goproxy intercepting every CONNECT (the reference); the
	// least an intercepting proxy can do; and a blind TCP relay with TLS
	// end to end, the ceiling for any proxy in its own process.
	gpAddr := startChild(b, "TOKRUN_BENCH_GOPROXY="+freeLoopback(b)+","+filepath.Join(dir, "upstream.pem"))
	minAddr := startChild(b, "TOKRUN_BENCH_MINIMAL="+freeLoopback(b)+","+up.Listener.Addr().String())
	relayAddr := startChild(b, "TOKRUN_BENCH_RELAY="+freeLoopback(b)+","+up.Listener.Addr().String())

	for _, c := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			through := func(proxy string, roots *x509.CertPool, hdr http.Header) *http.Client {
				return &http.Client{Transport: &http.Transport{
					Proxy:               http.ProxyURL(&url.URL{Scheme: "http", Host: proxy}),
					ProxyConnectHeader:  hdr,
					TLSClientConfig:     &tls.Config{RootCAs: roots},
					MaxIdleConnsPerHost: c,
				}}
			}
			direct := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: upRoots}, MaxIdleConnsPerHost: c}}
			relayed := &http.Client{Transport: &http.Transport{
				TLSClientConfig:     &tls.Config{RootCAs: upRoots},
				MaxIdleConnsPerHost: c,
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, relayAddr.addr)
				},
			}}
			// The first is tokproxy; the others' metrics carry their name.
			auth := http.Header{"Proxy-Authorization": {"Bearer " + token}}
			contenders := []*contender{
				{name: "", client: through(proxyAddr, proxyRoots, auth), pid: tp.pid},
				{name: "goproxy-", client: through(gpAddr.addr, gpRoots, nil), pid: gpAddr.pid},
				{name: "minimal-", client: through(minAddr.addr, upRoots, nil), pid: minAddr.pid},
				{name: "relay-", client: relayed, pid: relayAddr.pid},
				// tokproxy again, through its Unix socket, as tokrun and
				// sandboxes on the same host reach it.
				{name: "unix-", client: throughUnix(tp.sock, proxyRoots, c), pid: tp.pid},
			}
			if base.pid != 0 {
				contenders = append(contenders, &contender{name: "baseline-", client: through(base.addr, baseRoots, auth), pid: base.pid})
			}
			run := func(cl *http.Client, n int) loadtest.Result {
				r, err := loadtest.Run(cl, target, n, c)
				if err != nil {
					b.Fatal(err)
				}
				return r
			}
			run(direct, 50)
			for _, k := range contenders {
				run(k.client, 50)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := run(direct, 200*c)
				// Each round starts with the next contender, so that none
				// is always the one furthest from its direct run.
				for j := range contenders {
					k := contenders[(i+j)%len(contenders)]
					cpu0 := processCPU(k.pid)
					k.cmp.Add(d, run(k.client, 200*c))
					k.cpu += processCPU(k.pid) - cpu0
				}
			}
			b.StopTimer()
			for _, k := range contenders {
				b.ReportMetric(k.cmp.Ratio(), k.name+"ratio")
				b.ReportMetric(float64(k.cmp.Added(0.5).Microseconds()), k.name+"added-p50-µs")
				name := k.name
				if name == "" {
					name = "proxy-"
				}
				b.ReportMetric(float64(k.cpu.Microseconds())/float64(k.cmp.Requests), name+"cpu-µs/req")
				if k != contenders[0] {
					// tokproxy's throughput over this one's, round by round.
					b.ReportMetric(contenders[0].cmp.Relative(&k.cmp), "vs-"+strings.TrimSuffix(k.name, "-"))
				}
			}
			cmp := &contenders[0].cmp
			dr, pr := cmp.Throughput()
			b.ReportMetric(dr, "direct-req/s")
			b.ReportMetric(pr, "proxy-req/s")
			b.ReportMetric(float64(cmp.Added(0.99).Microseconds()), "added-p99-µs")
			b.ReportMetric(float64(upConns.Load()), "upstream-conns")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// throughUnix returns a client whose proxy is the Unix socket sock.
func throughUnix(sock string, roots *x509.CertPool, conc int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyURL(&url.URL{Scheme: "http", Host: "tokproxy"}),
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		MaxIdleConnsPerHost: conc,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
}

// benchDaemon is a tokproxy process started for the benchmark.
type benchDaemon struct {
	addr string // its TCP listener
	sock string // its Unix socket
	pid  int
	ca   []byte // its CA certificate, PEM
}

// startTokproxy starts bin serve with the policy, tokens and upstream CA
// in dir, its state in dir/state-NAME, its audit log in dir/state-NAME.jsonl (or
// TOKRUN_BENCH_AUDIT), and env added to a minimal environment; it stops
// the process when the benchmark ends (printing its log and an audit
// summary if TOKRUN_BENCH_LOGS is set).
func startTokproxy(b *testing.B, bin, dir, name string, env []string) benchDaemon {
	addr := freeLoopback(b)
	state := filepath.Join(dir, "state-"+name)
	auditPath := state + ".jsonl"
	if p := os.Getenv("TOKRUN_BENCH_AUDIT"); p != "" {
		auditPath = p
	}
	cmd := exec.Command(bin, "serve", "--policy", filepath.Join(dir, "policy.yaml"), "--key", "../../testdata/sealing/key.txt",
		"--listen", "tcp:"+addr, "--listen", "unix:"+state+".sock", "--token-file", filepath.Join(dir, "tokens.txt"), "--state-dir", state,
		"--upstream-ca", filepath.Join(dir, "upstream.pem"), "--audit", auditPath, "--watch-interval", "0")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	dieWithParent(cmd)
	var logs syncbuf.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if os.Getenv("TOKRUN_BENCH_LOGS") != "" {
			audit, _ := os.ReadFile(auditPath)
			b.Logf("%s log:\n%.3000s\naudit: %d records, %d CONNECT", name, logs.String(), strings.Count(string(audit), "\n"), strings.Count(string(audit), `"CONNECT"`))
		}
	})
	// The daemon binds its listeners before it creates its CA.
	waitListening(b, addr)
	caPath := filepath.Join(state, "ca.pem")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ca, err := os.ReadFile(caPath)
		if err == nil && x509.NewCertPool().AppendCertsFromPEM(ca) { // whole, not being written
			return benchDaemon{addr: addr, sock: state + ".sock", pid: cmd.Process.Pid, ca: ca}
		}
		if time.Now().After(deadline) {
			b.Fatalf("tokproxy wrote no CA at %s: %v", caPath, err)
		}
	}
}

// contender is one way to the upstream, compared with direct requests.
type contender struct {
	name   string // metric prefix
	client *http.Client
	pid    int // the process whose CPU time is counted
	cmp    loadtest.Comparison
	cpu    time.Duration
}

// child is a yardstick process and the address it listens on.
type child struct {
	addr string
	pid  int
}

// startChild re-executes this test binary with env ("NAME=LISTEN,..."),
// waits until it listens on LISTEN, and kills it when the benchmark ends.
func startChild(b *testing.B, env string) child {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = []string{env}
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	_, args, _ := strings.Cut(env, "=")
	addr, _, _ := strings.Cut(args, ",")
	waitListening(b, addr)
	return child{addr: addr, pid: cmd.Process.Pid}
}

// processCPU returns the user+system CPU time of process pid, from
// /proc/PID/stat (in clock ticks of 10 ms on Linux; enough over a round
// of hundreds of requests).
func processCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// relayMain copies bytes between each connection to listen and a new
// connection to target ("LISTEN,TARGET"), until killed.
func relayMain(addrs string) {
	listen, target, _ := strings.Cut(addrs, ",")
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, loadtest.Relay(ln, target))
	os.Exit(1)
}

// goproxyMain runs plain goproxy with MITM of every CONNECT, its
// built-in CA and otherwise default settings, on "LISTEN,UPSTREAM-CA-FILE",
// until killed: the reference the issue measured tokproxy against.
func goproxyMain(args string) {
	listen, caFile, _ := strings.Cut(args, ",")
	pem, err := os.ReadFile(caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = log.New(io.Discard, "", 0)
	gp.Tr = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: 64}
	gp.OnRequest().HandleConnect(goproxy.AlwaysMitm)
	fmt.Fprintln(os.Stderr, http.ListenAndServe(listen, gp))
	os.Exit(1)
}

func freeLoopback(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitListening waits until something listens on addr.
func waitListening(b *testing.B, addr string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			// A dial from the port it dials connects to itself (TCP
			// simultaneous open) while nothing listens there yet.
			self := c.LocalAddr().String() == c.RemoteAddr().String()
			c.Close()
			if !self {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("nothing listens on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// minimalMain runs the least an intercepting proxy process can do, on
// "LISTEN,UPSTREAM": answer CONNECT, terminate TLS (with the upstream
// test server's own certificate), and relay each request and response,
// parsed and written again, over one upstream connection per tunnel, with
// no policy, limits, audit or scrubbing. It bounds what any MITM process
// can reach on this machine.
func minimalMain(args string) {
	listen, upAddr, _ := strings.Cut(args, ",")
	tmp := httptest.NewUnstartedServer(http.NotFoundHandler())
	tmp.StartTLS()
	cert := tmp.TLS.Certificates[0]
	roots := x509.NewCertPool()
	roots.AddCert(tmp.Certificate())
	tmp.Close()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go minimalTunnel(c, cert, roots, upAddr)
	}
}

func minimalTunnel(c net.Conn, cert tls.Certificate, roots *x509.CertPool, upAddr string) {
	defer c.Close()
	if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
		return
	}
	io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
	tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
	u, err := tls.Dial("tcp", upAddr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		return
	}
	defer u.Close()
	cbr, cbw := bufio.NewReader(tc), bufio.NewWriter(tc)
	ubr, ubw := bufio.NewReader(u), bufio.NewWriter(u)
	for {
		req, err := http.ReadRequest(cbr)
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer x")
		if err := req.Write(ubw); err != nil || ubw.Flush() != nil {
			return
		}
		resp, err := http.ReadResponse(ubr, req)
		if err != nil {
			return
		}
		if err := resp.Write(cbw); err != nil || cbw.Flush() != nil {
			return
		}
	}
}
