package policy

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// valid -> invalid -> valid: the last good policy serves throughout and
// the callback reports each outcome.
func TestStoreReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	type outcome struct {
		rules int
		err   string
	}
	var mu sync.Mutex
	var got []outcome
	onReload := func(p *Policy, err error) {
		mu.Lock()
		defer mu.Unlock()
		o := outcome{rules: len(p.Rules())}
		if err != nil {
			o.err = err.Error()
		}
		got = append(got, o)
	}
	allowed := func(s *Store, host string) bool {
		return s.Policy().Decide(Request{Scheme: "https", Host: host, Method: "GET", Path: "/"}).Allow
	}

	write("version: 1\nrules:\n  - {name: a, host: a.example.com}\n")
	s, err := NewStore(path, Options{}, onReload)
	if err != nil {
		t.Fatal(err)
	}
	if !allowed(s, "a.example.com") {
		t.Fatal("initial policy not serving")
	}

	// Concurrent deciders see a complete policy at every moment.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !allowed(s, "a.example.com") {
				t.Error("a.example.com denied during reloads")
				return
			}
		}
	}()

	write("version: 1\nrules:\n  - {name: a, host: a.example.com, methods: [PSOT]}\n")
	if err := s.Reload(); err == nil {
		t.Fatal("invalid policy reloaded")
	}
	if !allowed(s, "a.example.com") {
		t.Fatal("last good policy not serving after a failed reload")
	}

	write("version: 1\nrules:\n  - {name: a, host: a.example.com}\n  - {name: b, host: b.example.com}\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if !allowed(s, "b.example.com") || !allowed(s, "a.example.com") {
		t.Fatal("new policy not serving")
	}

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].rules != 1 || !strings.Contains(got[0].err, `policy.yaml:3: rules[0].methods[0]: unknown method "PSOT"`) ||
		got[1].rules != 2 || got[1].err != "" {
		t.Fatalf("callback outcomes %+v", got)
	}
}

func TestStoreFirstLoadMustSucceed(t *testing.T) {
	if _, err := NewStore(filepath.Join(t.TempDir(), "missing.yaml"), Options{}, nil); err == nil ||
		!strings.Contains(err.Error(), "missing.yaml: no such file or directory") {
		t.Fatalf("err = %v", err)
	}
}
