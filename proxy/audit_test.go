package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The audit line is what encoding/json writes for the record, byte for
// byte: a field value (a client-chosen path, say) can never break out of
// its string or add a field.
func FuzzAuditRecordJSON(f *testing.F) {
	f.Add("unix", "/v1/chat", "api", `quote" back\ <tag>&amp; `+"\n\r\t\b\f\x00\x1f\x7f", 12.345, int64(0))
	f.Add("", "", "", "\u2028\u2029 é \xff\xfe 日本", 0.0, int64(-1))
	f.Add("a", "b", "c", "d", 1e-7, int64(1<<62))
	f.Add("a", "b", "c", "d", 1e21, int64(7))
	f.Add("a", "b", "c", "d", 123456789.000001, int64(7))
	f.Fuzz(func(t *testing.T, client, path, rule, text string, dur float64, n int64) {
		if math.IsNaN(dur) || math.IsInf(dur, 0) {
			dur = 0 // durations are measured, never NaN or infinite; JSON has no form for them
		}
		for _, r := range []Record{
			{},
			{
				Time: time.Unix(n%(1<<34), n%1e9).UTC(), Client: client, Decision: "allow", Reason: text, Rule: rule,
				Method: text, Scheme: "https", Host: text, Port: int(n), Path: path, Secrets: []string{rule, text},
				Status: 200, BytesIn: n, BytesOut: -n, DurationMS: dur, Scrubbed: int(n), Tripwire: text, Error: text,
			},
			{Secrets: []string{}, DurationMS: -dur, Error: path},
		} {
			want, err := json.Marshal(r)
			if err != nil {
				// Times stay within 1970±544 years, which JSON can hold.
				t.Fatalf("encoding/json refused %+v: %v", r, err)
			}
			if got := r.appendJSON(nil); !bytes.Equal(got, want) {
				t.Fatalf("appendJSON:\n%s\nencoding/json:\n%s", got, want)
			}
		}
	})
}

func TestAuditLogWritesJSONLines(t *testing.T) {
	var buf bytes.Buffer
	a := NewAuditLog(&buf)
	recs := []Record{{Client: "a", Path: "/x"}, {Client: "b", Secrets: []string{"api"}, Error: "e"}}
	for _, r := range recs {
		if err := a.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	var want []byte
	for _, r := range recs {
		line, _ := json.Marshal(r)
		want = append(append(want, line...), '\n')
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("got\n%s\nwant\n%s", buf.Bytes(), want)
	}
}

// BenchmarkAuditRecord compares the record's encoder with encoding/json,
// on a typical allowed request.
func BenchmarkAuditRecord(b *testing.B) {
	r := Record{Time: time.Now().UTC(), Client: "bench", Decision: "allow", Reason: "allowed", Rule: "api", Method: "POST",
		Scheme: "https", Host: "api.openai.com", Port: 443, Path: "/v1/chat/completions", Secrets: []string{"openai"},
		Status: 200, BytesIn: 812, BytesOut: 10240, DurationMS: 812.125, Scrubbed: 1}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(r)
		}
	})
	b.Run("appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = r.appendJSON(buf[:0])
		}
	})
}

// An AuditFile reopens its path only when the path names another file or
// none; when it cannot, it keeps writing where it did and says so.
func TestAuditFileReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, created, err := OpenAuditFileAt(path)
	if err != nil || !created {
		t.Fatalf("open: %v, created %v", err, created)
	}
	defer a.Close()
	io.WriteString(a, "one\n")
	if reopened, err := a.Reopen(); reopened || err != nil {
		t.Fatalf("Reopen of the same file: %v, %v", reopened, err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if reopened, err := a.Reopen(); !reopened || err != nil {
		t.Fatalf("Reopen after a move: %v, %v", reopened, err)
	}
	io.WriteString(a, "two\n")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil { // cannot be opened as a file
		t.Fatal(err)
	}
	if reopened, err := a.Reopen(); reopened || err == nil {
		t.Fatalf("Reopen of a directory: %v, %v", reopened, err)
	}
	if _, err := io.WriteString(a, "three\n"); err != nil {
		t.Fatalf("the kept file: %v", err)
	}
	// A symbolic link planted at the path is not followed: records would
	// go to its target.
	victim := filepath.Join(filepath.Dir(path), "victim")
	if err := os.WriteFile(victim, []byte("victim\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if reopened, err := a.Reopen(); reopened || err == nil || !strings.Contains(err.Error(), "is a symbolic link") {
		t.Fatalf("Reopen of a symbolic link: %v, %v", reopened, err)
	}
	io.WriteString(a, "four\n")
	for file, want := range map[string]string{path + ".1": "one\n", victim: "victim\n"} {
		if b, _ := os.ReadFile(file); string(b) != want {
			t.Errorf("%s holds %q, want %q", file, b, want)
		}
	}
	// Once closed, a Reopen (one that was blocked while the daemon
	// stopped) opens nothing and leaves no file behind.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if reopened, err := a.Reopen(); reopened || err != nil {
		t.Fatalf("Reopen after Close: %v, %v", reopened, err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reopen after Close created the file: %v", err)
	}
}

// writeLog records each Write it is given, for the batched audit log's
// tests; it fails every write while failing is set.
type writeLog struct {
	mu      sync.Mutex
	writes  []string
	failing bool
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failing {
		return 0, io.ErrClosedPipe
	}
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func (w *writeLog) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes)
}

// lines returns the JSON lines of records, as a batch of them is written.
func lines(recs ...Record) string {
	var b []byte
	for _, r := range recs {
		b = append(r.appendJSON(b), '\n')
	}
	return string(b)
}

// A batched audit log holds allowed requests' records and writes them in
// one write, in order, with the first record that may not wait (a
// denial, a tripwire, an error), when the batch grows large, when its
// window ends, or at Flush and Close; after Close, each record is written
// at once.
func TestBatchedAuditLog(t *testing.T) {
	allow := func(path string) Record { return Record{Decision: "allow", Path: path} }
	t.Run("held until a record that may not wait", func(t *testing.T) {
		for _, urgent := range []Record{
			{Decision: "deny", Path: "/deny"},
			{Decision: "allow", Path: "/trip", Tripwire: "api"},
			{Decision: "allow", Path: "/err", Error: "upstream unreachable"},
		} {
			w := &writeLog{}
			a := NewBatchedAuditLog(w, time.Hour)
			for _, r := range []Record{allow("/a"), allow("/b")} {
				if err := a.Write(r); err != nil {
					t.Fatal(err)
				}
			}
			if got := w.got(); len(got) != 0 {
				t.Fatalf("written before anything asked for it: %q", got)
			}
			if err := a.Write(urgent); err != nil {
				t.Fatal(err)
			}
			if got, want := w.got(), []string{lines(allow("/a"), allow("/b"), urgent)}; !slices.Equal(got, want) {
				t.Fatalf("%s: writes %q, want %q", urgent.Path, got, want)
			}
		}
	})
	t.Run("flush, close, then at once", func(t *testing.T) {
		w := &writeLog{}
		a := NewBatchedAuditLog(w, time.Hour)
		a.Write(allow("/a"))
		if err := a.Flush(); err != nil {
			t.Fatal(err)
		}
		a.Write(allow("/b"))
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		a.Write(allow("/c"))
		if got := w.got(); len(got) != 3 {
			t.Fatalf("a record after Close held: %q", got)
		}
		if err := a.Flush(); err != nil { // nothing held: no empty write
			t.Fatal(err)
		}
		if got, want := w.got(), []string{lines(allow("/a")), lines(allow("/b")), lines(allow("/c"))}; !slices.Equal(got, want) {
			t.Fatalf("writes %q, want %q", got, want)
		}
	})
	t.Run("a full batch is written", func(t *testing.T) {
		w := &writeLog{}
		a := NewBatchedAuditLog(w, time.Hour)
		r := allow("/" + strings.Repeat("x", 1000))
		n := 0
		for ; len(w.got()) == 0; n++ {
			if n > 2*auditBatchBytes/1000 {
				t.Fatalf("%d records of 1 KB held", n)
			}
			a.Write(r)
		}
		if got := w.got(); len(got) != 1 || strings.Count(got[0], "\n") != n || len(got[0]) < auditBatchBytes {
			t.Fatalf("%d records, then %d writes, the first of %d bytes", n, len(got), len(got[0]))
		}
	})
	t.Run("written when the window ends", func(t *testing.T) {
		w := &writeLog{}
		a := NewBatchedAuditLog(w, 5*time.Millisecond)
		a.reportTo(func(err error) { t.Errorf("reported %v", err) })
		for _, p := range []string{"/a", "/b"} {
			a.Write(allow(p))
			waitUntil(t, "the held record written", func() bool { return strings.Contains(strings.Join(w.got(), ""), `"path":"`+p+`"`) })
		}
		if got, want := w.got(), []string{lines(allow("/a")), lines(allow("/b"))}; !slices.Equal(got, want) {
			t.Fatalf("writes %q, want %q", got, want)
		}
	})
	t.Run("failures count every record lost", func(t *testing.T) {
		w := &writeLog{failing: true}
		a := NewBatchedAuditLog(w, time.Hour)
		a.Write(allow("/a"))
		a.Write(allow("/b"))
		err := a.Write(Record{Decision: "deny"})
		if n := LostRecords(err); n != 3 || !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("Write: %v, %d records lost, want 3", err, n)
		}
		// A batch no caller waits for goes to the report function.
		reported := make(chan error, 1)
		a = NewBatchedAuditLog(w, time.Millisecond)
		a.reportTo(func(err error) { reported <- err })
		a.Write(allow("/c"))
		if err := <-reported; LostRecords(err) != 1 {
			t.Fatalf("reported %v", err)
		}
		if LostRecords(io.ErrClosedPipe) != 1 {
			t.Fatal("another error loses its one record")
		}
	})
}

// shortWriter writes the first n bytes it is given, then fails once.
type shortWriter struct {
	bytes.Buffer
	n int
}

func (w *shortWriter) Write(p []byte) (int, error) {
	if w.n >= 0 && len(p) > w.n {
		k, _ := w.Buffer.Write(p[:w.n])
		w.n = -1
		return k, io.ErrShortWrite
	}
	return w.Buffer.Write(p)
}

// A write cut short loses only the records not written whole, and the
// line it cut is ended before the next record.
func TestAuditLogShortWrite(t *testing.T) {
	rec := func(p string) Record { return Record{Decision: "allow", Path: p} }
	one := len(lines(rec("/1")))
	w := &shortWriter{n: one + one/2} // the first record and half the second
	a := NewBatchedAuditLog(w, time.Hour)
	a.Write(rec("/1"))
	a.Write(rec("/2"))
	a.Write(rec("/3"))
	err := a.Flush()
	if n := LostRecords(err); n != 2 || !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("Flush: %v, %d lost, want 2", err, n)
	}
	if err := a.Write(Record{Decision: "deny", Path: "/4"}); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n")
	if len(got) != 3 || got[0]+"\n" != lines(rec("/1")) || got[2]+"\n" != lines(Record{Decision: "deny", Path: "/4"}) {
		t.Fatalf("the log holds %q", w.String())
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Reopens at once open the path once and close the old file once.
func TestAuditFileConcurrentReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, _, err := OpenAuditFileAt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var reopened atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := a.Reopen(); err != nil {
				t.Error(err)
			} else if ok {
				reopened.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := reopened.Load(); n != 1 {
		t.Fatalf("%d Reopens opened the path, want 1", n)
	}
	if _, err := io.WriteString(a, "after\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "after\n" {
		t.Fatalf("the reopened file holds %q", b)
	}
}
