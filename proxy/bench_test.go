package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

// run sends n GET requests with c workers and returns per-request
// latencies and the process CPU time used.
func runLoad(b *testing.B, client *http.Client, url string, n, c int) ([]time.Duration, time.Duration, time.Duration) {
	b.Helper()
	lat := make([]time.Duration, n)
	var next sync.Mutex
	i := 0
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= n {
					return
				}
				t0 := time.Now()
				resp, err := client.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				lat[k] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(start), cpuTime() - cpu0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkKeepAliveHTTPS compares kept-alive HTTPS requests (1 KiB
// responses) through the proxy, with a secret injected and the response
// scanned, against direct requests to the same upstream, measured in the
// same run and interleaved. It reports the throughput ratio
// (proxy/direct), the latency the proxy adds at p50 and p99, and the
// process CPU time the proxy adds per request.
func BenchmarkKeepAliveHTTPS(b *testing.B) {
	h := newHarness(b, benchPolicy, http.HandlerFunc(benchUpstream))
	for _, c := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			direct, proxied := h.directClient(), h.client()
			direct.Transport.(*http.Transport).MaxIdleConnsPerHost = c
			proxied.Transport.(*http.Transport).MaxIdleConnsPerHost = c
			const warm = 50
			runLoad(b, direct, "https://api.example.com/v1/x", warm, c)
			runLoad(b, proxied, "https://api.example.com/v1/x", warm, c)
			n := 200 * c
			var dLat, pLat []time.Duration
			var dWall, pWall, dCPU, pCPU time.Duration
			var ratios []float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Each round measures both, back to back, so that a burst
				// of load from elsewhere on a shared machine hits one round
				// rather than one side; the median round is reported.
				l, dw, cpu := runLoad(b, direct, "https://api.example.com/v1/x", n, c)
				dLat, dWall, dCPU = append(dLat, l...), dWall+dw, dCPU+cpu
				l, pw, cpu := runLoad(b, proxied, "https://api.example.com/v1/x", n, c)
				pLat, pWall, pCPU = append(pLat, l...), pWall+pw, pCPU+cpu
				ratios = append(ratios, dw.Seconds()/pw.Seconds())
			}
			b.StopTimer()
			slices.Sort(ratios)
			reqs := float64(n * b.N)
			b.ReportMetric(reqs/dWall.Seconds(), "direct-req/s")
			b.ReportMetric(reqs/pWall.Seconds(), "proxy-req/s")
			b.ReportMetric(ratios[len(ratios)/2], "ratio")
			b.ReportMetric(float64((percentile(pLat, 0.5) - percentile(dLat, 0.5)).Microseconds()), "added-p50-µs")
			b.ReportMetric(float64((percentile(pLat, 0.99) - percentile(dLat, 0.99)).Microseconds()), "added-p99-µs")
			b.ReportMetric(float64((pCPU-dCPU).Microseconds())/reqs, "proxy-cpu-µs/req")
			b.ReportMetric(0, "ns/op")
		})
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
		t0 := time.Now()
		runLoad(b, c, host, 1, 1)
		direct += time.Since(t0)
		c.CloseIdleConnections()
		c = h.client()
		t0 = time.Now()
		runLoad(b, c, host, 1, 1)
		proxied += time.Since(t0)
		c.CloseIdleConnections()
	}
	b.ReportMetric(float64(direct.Microseconds())/float64(b.N), "direct-µs")
	b.ReportMetric(float64(proxied.Microseconds())/float64(b.N), "proxy-µs")
	b.ReportMetric(0, "ns/op")
}
