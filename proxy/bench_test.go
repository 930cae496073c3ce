package proxy

import (
	"context"
	"log"
	"net/http/httptest"
	"net/url"

	"github.com/elazarl/goproxy"

	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

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
// process CPU time the proxy adds per request. Plain goproxy intercepting
// every CONNECT, in the same process and the same rounds, is the
// yardstick (metrics prefixed goproxy-).
func BenchmarkKeepAliveHTTPS(b *testing.B) {
	h := newHarness(b, benchPolicy, http.HandlerFunc(benchUpstream))
	gp := h.plainGoproxy(b)
	for _, c := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			direct, proxied, plain := h.directClient(), h.client(), gp(c)
			direct.Transport.(*http.Transport).MaxIdleConnsPerHost = c
			proxied.Transport.(*http.Transport).MaxIdleConnsPerHost = c
			const warm = 50
			url := "https://api.example.com/v1/x"
			for _, cl := range []*http.Client{direct, proxied, plain} {
				mustRun(b, cl, url, warm, c)
			}
			n := 200 * c
			var cmp, gcmp loadtest.Comparison
			var dCPU, pCPU, gCPU time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Each round measures all, back to back, so that a burst
				// of load from elsewhere on a shared machine hits one round
				// rather than one side; the median round is reported.
				d, p, g := mustRun(b, direct, url, n, c), mustRun(b, proxied, url, n, c), mustRun(b, plain, url, n, c)
				cmp.Add(d, p)
				gcmp.Add(d, g)
				dCPU, pCPU, gCPU = dCPU+d.CPU, pCPU+p.CPU, gCPU+g.CPU
			}
			b.StopTimer()
			reportComparison(b, &cmp, pCPU-dCPU)
			b.ReportMetric(gcmp.Ratio(), "goproxy-ratio")
			b.ReportMetric(float64(gcmp.Added(0.5).Microseconds()), "goproxy-added-p50-µs")
			b.ReportMetric(float64((gCPU-dCPU).Microseconds())/float64(gcmp.Requests), "goproxy-cpu-µs/req")
			b.ReportMetric(0, "ns/op")
		})
	}
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
