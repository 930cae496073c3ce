package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
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
	for file, want := range map[string]string{path + ".1": "one\n"} {
		if b, _ := os.ReadFile(file); string(b) != want {
			t.Errorf("%s holds %q, want %q", file, b, want)
		}
	}
}
