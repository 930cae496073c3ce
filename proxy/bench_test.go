package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/tokrun/tokrun/internal/loadtest"
)

var benchPolicy = strings.Replace(basicPolicy, "deny:", "  - name: any-example\n    host: \"*.example.com\"\ndeny:", 1)

var benchBody = make([]byte, 1024)

func benchUpstream(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(benchBody)
}

// directClient talks to the test upstream without the proxy, as
// api.example.com, over kept-alive TLS connections.
func (h *harness) directClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(h.upstream.Certificate())
	addr := h.upstream.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: 64,
	}}
}

// BenchmarkKeepAliveHTTPS compares kept-alive HTTPS requests (1 KiB
// responses) through the proxy, with a secret injected and the response
// scanned, against direct requests to the same upstream, measured in the
// same run and interleaved. It reports the throughput ratio
// (proxy/direct), the latency the proxy adds at p50 and p99, and the
// process CPU time the proxy adds per request. Two yardsticks run in the
// same process and rounds, their metrics prefixed with their names: plain
// goproxy intercepting every CONNECT (goproxy-) and a blind TCP relay, TLS
// end to end (relay-).
func BenchmarkKeepAliveHTTPS(b *testing.B) {
	h := newHarness(b, benchPolicy, http.HandlerFunc(benchUpstream))
	gp := h.plainGoproxy(b)
	relayLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { relayLn.Close() })
	go loadtest.Relay(relayLn, h.upstream.Listener.Addr().String()) //nolint:errcheck // ends when closed
	for _, c := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			direct, relayed := h.directClient(), h.directClient()
			relayed.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, relayLn.Addr().String())
			}
			// The first is the proxy; the others are yardsticks, whose
			// metrics carry their name.
			contenders := []struct {
				name   string
				client *http.Client
				cmp    loadtest.Comparison
				cpu    time.Duration
			}{{name: "", client: h.client()}, {name: "goproxy-", client: gp(c)}, {name: "relay-", client: relayed}}
			const warm = 50
			url := "https://api.example.com/v1/x"
			direct.Transport.(*http.Transport).MaxIdleConnsPerHost = c
			mustRun(b, direct, url, warm, c)
			for i := range contenders {
				contenders[i].client.Transport.(*http.Transport).MaxIdleConnsPerHost = c
				mustRun(b, contenders[i].client, url, warm, c)
			}
			n := 200 * c
			var dCPU time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Each round measures all, back to back, so that a burst
				// of load from elsewhere on a shared machine hits one round
				// rather than one side; the median round is reported.
				d := mustRun(b, direct, url, n, c)
				dCPU += d.CPU
				for j := range contenders {
					k := &contenders[(i+j)%len(contenders)]
					r := mustRun(b, k.client, url, n, c)
					k.cmp.Add(d, r)
					k.cpu += r.CPU
				}
			}
			b.StopTimer()
			for _, k := range contenders {
				if k.name == "" {
					reportComparison(b, &k.cmp, k.cpu-dCPU)
					continue
				}
				b.ReportMetric(k.cmp.Ratio(), k.name+"ratio")
				b.ReportMetric(float64(k.cmp.Added(0.5).Microseconds()), k.name+"added-p50-µs")
				b.ReportMetric(float64((k.cpu-dCPU).Microseconds())/float64(k.cmp.Requests), k.name+"cpu-µs/req")
				b.ReportMetric(contenders[0].cmp.Relative(&k.cmp), "vs-"+strings.TrimSuffix(k.name, "-"))
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkPostHTTPS is BenchmarkKeepAliveHTTPS with POST requests of
// 1 KiB: each takes a new upstream connection (a request with a body
// never shares its connection with the next), resumed from a TLS session
// ticket where the upstream allows it.
func BenchmarkPostHTTPS(b *testing.B) {
	h := newHarness(b, benchPolicy, http.HandlerFunc(benchUpstream))
	body := make([]byte, 1024)
	url := "https://api.example.com/v1/x"
	for _, c := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			direct, proxied := h.directClient(), h.client()
			var cmp loadtest.Comparison
			var extra time.Duration
			for _, cl := range []*http.Client{direct, proxied} {
				cl.Transport.(*http.Transport).MaxIdleConnsPerHost = c
				mustRunPost(b, cl, url, body, 50, c)
			}
			dials := h.dials.Load()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := mustRunPost(b, direct, url, body, 200*c, c)
				p := mustRunPost(b, proxied, url, body, 200*c, c)
				cmp.Add(d, p)
				extra += p.CPU - d.CPU
			}
			b.StopTimer()
			reportComparison(b, &cmp, extra)
			b.ReportMetric(float64(h.dials.Load()-dials)/float64(cmp.Requests), "upstream-dials/req")
		})
	}
}

func mustRunPost(b *testing.B, c *http.Client, url string, body []byte, n, conc int) loadtest.Result {
	b.Helper()
	r, err := loadtest.RunPost(c, url, body, n, conc)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// plainGoproxy starts goproxy intercepting every CONNECT, with a pooled
// transport to the test upstream (64 idle connections per host), and
// returns a constructor of clients that use it.
func (h *harness) plainGoproxy(b *testing.B) func(conc int) *http.Client {
	up := h.directClient().Transport.(*http.Transport)
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = log.New(io.Discard, "", 0)
	gp.Tr = up
	gp.OnRequest().HandleConnect(goproxy.AlwaysMitm)
	srv := httptest.NewServer(gp)
	b.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	roots := x509.NewCertPool()
	roots.AddCert(goproxy.GoproxyCa.Leaf)
	return func(conc int) *http.Client {
		return &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyURL(u),
			TLSClientConfig:     &tls.Config{RootCAs: roots},
			MaxIdleConnsPerHost: conc,
		}}
	}
}

// BenchmarkFirstConnection measures the cost of the first request to a
// host never seen before (new client connection, CONNECT, a new leaf
// certificate, new upstream connection) against a first direct request.
func BenchmarkFirstConnection(b *testing.B) {
	h := newHarness(b, benchPolicy, http.HandlerFunc(benchUpstream))
	var direct, proxied time.Duration
	for i := 0; i < b.N; i++ {
		host := fmt.Sprintf("https://h%d-%d.example.com/", i, time.Now().UnixNano())
		c := h.directClient()
		direct += mustRun(b, c, host, 1, 1).Wall
		c.CloseIdleConnections()
		c = h.client()
		proxied += mustRun(b, c, host, 1, 1).Wall
		c.CloseIdleConnections()
	}
	b.ReportMetric(float64(direct.Microseconds())/float64(b.N), "direct-µs")
	b.ReportMetric(float64(proxied.Microseconds())/float64(b.N), "proxy-µs")
	b.ReportMetric(0, "ns/op")
}

func mustRun(b *testing.B, c *http.Client, url string, n, conc int) loadtest.Result {
	b.Helper()
	r, err := loadtest.Run(c, url, n, conc)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// reportComparison reports a proxy-versus-direct comparison; extraCPU is
// the process CPU time the proxied runs took beyond the direct ones.
func reportComparison(b *testing.B, cmp *loadtest.Comparison, extraCPU time.Duration) {
	d, p := cmp.Throughput()
	b.ReportMetric(d, "direct-req/s")
	b.ReportMetric(p, "proxy-req/s")
	b.ReportMetric(cmp.Ratio(), "ratio")
	b.ReportMetric(float64(cmp.Added(0.5).Microseconds()), "added-p50-µs")
	b.ReportMetric(float64(cmp.Added(0.99).Microseconds()), "added-p99-µs")
	b.ReportMetric(float64(extraCPU.Microseconds())/float64(cmp.Requests), "proxy-cpu-µs/req")
	b.ReportMetric(0, "ns/op")
}

// resettableBody is a response body a benchmark serves again each round.
type resettableBody struct{ bytes.Reader }

func (*resettableBody) Close() error { return nil }

// BenchmarkScrubSmallResponse measures what the proxy does with a 1 KiB
// upstream response that has a Content-Length and typical API headers,
// from the parsed response to the bytes written to the client inside a
// tunnel: with a secret injected (the response is scrubbed) and without
// (it is only audited), the difference being the cost of scrubbing.
func BenchmarkScrubSmallResponse(b *testing.B) {
	h := newHarness(b, basicPolicy, nil, func(_ *harness, c *Config) { c.Audit = nil })
	ix := h.srv.secrets(h.srv.cfg.Policy())
	body := []byte(strings.Repeat(`{"id":"chatcmpl-9f8e7d6c","object":"chat.completion","model":"gpt-4o-mini","usage":{"prompt_tokens":12}}`+"\n", 10)[:1024])
	header := http.Header{
		"Content-Type":                   {"application/json; charset=utf-8"},
		"Date":                           {"Tue, 10 Jun 2025 12:00:00 GMT"},
		"Server":                         {"cloudflare"},
		"X-Request-Id":                   {"req_4b1f0c1e8a9d4f2e9c7b6a5d4c3b2a10"},
		"Openai-Processing-Ms":           {"412"},
		"X-Ratelimit-Remaining-Requests": {"9999"},
		"X-Ratelimit-Reset-Tokens":       {"6ms"},
		"Cache-Control":                  {"no-cache, must-revalidate"},
		"Strict-Transport-Security":      {"max-age=31536000; includeSubDomains; preload"},
		"Cf-Ray":                         {"8f1e2d3c4b5a6978-AMS"},
		"Alt-Svc":                        {`h3=":443"; ma=86400`},
	}
	for _, secrets := range [][]string{nil, {"api"}} {
		b.Run(fmt.Sprintf("secrets=%d", len(secrets)), func(b *testing.B) {
			benchRespond(b, h, ix, header, body, true, secrets)
		})
	}
}

// BenchmarkScrubResponseSizes compares, at several sizes, a body read
// whole (it has a Content-Length) with one streamed (it has none): what
// maxWholeBody is chosen by.
func BenchmarkScrubResponseSizes(b *testing.B) {
	h := newHarness(b, basicPolicy, nil, func(_ *harness, c *Config) { c.Audit = nil })
	ix := h.srv.secrets(h.srv.cfg.Policy())
	line := `{"id":"chatcmpl-9f8e7d6c","object":"chat.completion","model":"gpt-4o-mini","usage":{"prompt_tokens":12}}` + "\n"
	header := http.Header{"Content-Type": {"application/json"}, "Date": {"Tue, 10 Jun 2025 12:00:00 GMT"}}
	for _, size := range []int{1 << 10, 4 << 10, 16 << 10, 32 << 10, 64 << 10} {
		body := []byte(strings.Repeat(line, size/len(line)+1)[:size])
		for _, whole := range []bool{true, false} {
			name := map[bool]string{true: "whole", false: "streamed"}[whole]
			b.Run(fmt.Sprintf("size=%dKiB/%s", size>>10, name), func(b *testing.B) {
				benchRespond(b, h, ix, header, body, whole, []string{"api"})
			})
		}
	}
}

// benchRespond runs respond and writeResponse on a response with the
// given header and body, which has a Content-Length if known is set.
func benchRespond(b *testing.B, h *harness, ix *secretIndex, header http.Header, body []byte, known bool, secrets []string) {
	length, cl := []string{strconv.Itoa(len(body))}, int64(len(body))
	if !known {
		length, cl = nil, -1
	}
	req := newRequest(b, "GET", "https://api.example.com/v1/chat", nil)
	c := &tunnelConn{s: h.srv, bw: bufio.NewWriterSize(io.Discard, 4<<10)}
	rb := &resettableBody{}
	in := &countingReader{r: http.NoBody}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		header["Content-Length"] = length
		if length == nil {
			delete(header, "Content-Length")
		}
		rb.Reset(body)
		resp := &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: header, ContentLength: cl, Body: rb}
		rec := Record{Rule: "api", Reason: "allowed", Method: "GET", Scheme: "https", Host: "api.example.com", Port: 443, Path: "/v1/chat", Secrets: secrets}
		if !c.writeResponse(req, h.srv.respond(req, resp, ix, rec, in, nil, nil, time.Time{})) {
			b.Fatal("the connection cannot be kept")
		}
	}
}
