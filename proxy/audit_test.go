package proxy

import (
	"bytes"
	"encoding/json"
	"math"
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
