package proxy

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// patternReader yields n deterministic bytes without holding them.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := int64(len(b))
	if n > p.left {
		n = p.left
	}
	for i := range b[:n] {
		b[i] = byte(i * 7)
	}
	p.left -= n
	return int(n), nil
}

// 100 MB up and 100 MB down through an intercepted tunnel arrive intact
// while the heap of the whole test process (client, proxy and upstream)
// stays far below the transfer size.
func TestLargeTransfersKeepMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MB; skipped with -short")
	}
	const size = 100 << 20
	h := newHarness(t, basicPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			sum := sha256.New()
			n, _ := io.Copy(sum, r.Body)
			fmt.Fprintf(w, "%d %x", n, sum.Sum(nil))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.Copy(w, &patternReader{left: size})
	}))
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	c := h.client()

	want := sha256.New()
	io.Copy(want, &patternReader{left: size})
	req := newRequest(t, "POST", "https://open.example.com/upload", &patternReader{left: size})
	req.ContentLength = size
	status, body, _ := h.do(c, req)
	if wantBody := fmt.Sprintf("%d %x", size, want.Sum(nil)); status != 200 || body != wantBody {
		t.Fatalf("upload: status %d body %q", status, body)
	}

	resp, err := c.Do(newRequest(t, "GET", "https://open.example.com/download", nil))
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || fmt.Sprintf("%x", got.Sum(nil)) != fmt.Sprintf("%x", want.Sum(nil)) {
		t.Fatalf("download: %d bytes, err %v", n, err)
	}
	close(stop)
	<-done
	grown := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use grew by at most %d KiB during 200 MB of transfers", grown>>10)
	if grown > 48<<20 {
		t.Fatalf("heap grew by %d MiB while moving 200 MB: bodies are being buffered", grown>>20)
	}
}
