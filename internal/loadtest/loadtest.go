// Package loadtest drives HTTP load for benchmarks that compare a path
// through the proxy with a direct baseline in the same run.
package loadtest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Result is one load run.
type Result struct {
	Latencies []time.Duration // per request
	Wall      time.Duration   // elapsed time of the run
	CPU       time.Duration   // user+system CPU time of this process during the run
}

// Run sends n GET requests to url with c concurrent workers. Every
// response must have status 200; its body is read and discarded.
func Run(client *http.Client, url string, n, c int) (Result, error) {
	return run(n, c, func() error { return get(client, url) })
}

// RunPost is Run with POST requests carrying body.
func RunPost(client *http.Client, url string, body []byte, n, c int) (Result, error) {
	return run(n, c, func() error {
		resp, err := client.Post(url, "application/octet-stream", bytes.NewReader(body))
		return finish(resp, err, url)
	})
}

func run(n, c int, do func() error) (Result, error) {
	lat := make([]time.Duration, n)
	var mu sync.Mutex
	next := 0
	var firstErr error
	cpu0 := CPUTime()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				k := next
				next++
				stop := firstErr != nil
				mu.Unlock()
				if k >= n || stop {
					return
				}
				t0 := time.Now()
				err := do()
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				lat[k] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	return Result{Latencies: lat, Wall: time.Since(start), CPU: CPUTime() - cpu0}, firstErr
}

func get(client *http.Client, url string) error {
	resp, err := client.Get(url)
	return finish(resp, err, url)
}

// finish reads and closes a response, which must have status 200.
func finish(resp *http.Response, err error, url string) error {
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", resp.Request.Method, url, resp.Status)
	}
	return nil
}

// CPUTime returns the user and system CPU time used by this process.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Percentile returns the p-th (0..1) latency of d.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// Comparison accumulates interleaved rounds of a baseline and a
// candidate.
type Comparison struct {
	base, cand         []time.Duration
	baseWall, candWall time.Duration
	ratios             []float64
	Requests           int
}

// Add records one round: the baseline run, then the candidate run.
func (c *Comparison) Add(base, cand Result) {
	c.base = append(c.base, base.Latencies...)
	c.cand = append(c.cand, cand.Latencies...)
	c.baseWall += base.Wall
	c.candWall += cand.Wall
	c.ratios = append(c.ratios, base.Wall.Seconds()/cand.Wall.Seconds())
	c.Requests += len(base.Latencies)
}

// Ratio returns the median round's throughput of the candidate relative
// to the baseline (1 = as fast).
func (c *Comparison) Ratio() float64 {
	r := slices.Clone(c.ratios)
	slices.Sort(r)
	return r[len(r)/2]
}

// Relative returns the median, over the rounds both measured, of this
// candidate's ratio over other's: how two candidates compare when a
// round's load from elsewhere falls on both (1 = as fast).
func (c *Comparison) Relative(other *Comparison) float64 {
	n := min(len(c.ratios), len(other.ratios))
	if n == 0 {
		return 0
	}
	r := make([]float64, n)
	for i := range r {
		r[i] = c.ratios[i] / other.ratios[i]
	}
	slices.Sort(r)
	return r[n/2]
}

// Added returns how much the candidate adds to the p-th latency.
func (c *Comparison) Added(p float64) time.Duration {
	return Percentile(c.cand, p) - Percentile(c.base, p)
}

// Throughput returns requests per second of the baseline and candidate.
func (c *Comparison) Throughput() (base, cand float64) {
	return float64(c.Requests) / c.baseWall.Seconds(), float64(c.Requests) / c.candWall.Seconds()
}
