package proxy

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCALeafVerifies(t *testing.T) {
	ca, err := NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	for _, host := range []string{"api.example.com", "127.0.0.1", "::1"} {
		leaf, err := ca.Leaf(host)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
		if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: pool}); err == nil {
			t.Errorf("%s leaf verifies for another host", host)
		}
	}
}

// Concurrent requests for one host generate one certificate; the cache is
// bounded.
func TestCALeafCache(t *testing.T) {
	ca, err := NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var hits, misses atomic.Int32
	ca.OnLeaf = func(hit bool) {
		if hit {
			hits.Add(1)
		} else {
			misses.Add(1)
		}
	}
	var wg sync.WaitGroup
	certs := make([][]byte, 16)
	for i := range certs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := ca.Leaf("same.example.com")
			if err != nil {
				t.Error(err)
				return
			}
			certs[i] = c.Certificate[0]
		}()
	}
	wg.Wait()
	for _, c := range certs[1:] {
		if string(c) != string(certs[0]) {
			t.Fatal("concurrent calls generated different certificates")
		}
	}
	if misses.Load() != 1 || hits.Load() != 15 {
		t.Fatalf("misses %d hits %d", misses.Load(), hits.Load())
	}
	ca.SetCacheSize(2)
	for _, h := range []string{"a.example", "b.example", "c.example"} {
		if _, err := ca.Leaf(h); err != nil {
			t.Fatal(err)
		}
	}
	if ca.lru.Len() != 2 || ca.entries["a.example"] != nil {
		t.Fatalf("cache not bounded: %d entries", ca.lru.Len())
	}
}

func TestLoadOrCreateCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	ca1, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "ca-key.pem"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, %v", st.Mode(), err)
	}
	ca2, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ca1.Certificate().Equal(ca2.Certificate()) {
		t.Fatal("second start generated a new CA")
	}
	// A key group or others can read is refused (whoever reads it can
	// intercept every client); so is a directory they can write (they
	// could replace the CA), whether the CA exists yet or not.
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(filepath.Join(dir, "ca-key.pem"), mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateCA(dir); err == nil {
			t.Errorf("CA key of mode %04o accepted", mode)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "ca-key.pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	if err := os.Mkdir(fresh, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, fresh} {
		for _, mode := range []os.FileMode{0o770, 0o702} {
			if err := os.Chmod(d, mode); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadOrCreateCA(d); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
				t.Errorf("state directory of mode %04o accepted: %v", mode, err)
			}
		}
		os.Chmod(d, 0o700)
	}
	if _, err := os.Stat(filepath.Join(fresh, "ca-key.pem")); err == nil {
		t.Error("a CA was created in a directory others can write")
	}
}
