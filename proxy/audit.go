package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/tokrun/tokrun/internal/regfile"
)

// Record is one audit log entry: one per decision. Its JSON form is one
// line; field names are part of the documented interface.
type Record struct {
	Time       time.Time `json:"time"`
	Client     string    `json:"client"`
	Decision   string    `json:"decision"` // "allow" or "deny"
	Reason     string    `json:"reason"`
	Rule       string    `json:"rule,omitempty"`
	Method     string    `json:"method"`
	Scheme     string    `json:"scheme"`
	Host       string    `json:"host"`
	Port       int       `json:"port"`
	Path       string    `json:"path"`
	Secrets    []string  `json:"secrets,omitempty"` // injected, by name
	Status     int       `json:"status"`
	BytesIn    int64     `json:"bytes_in"`  // request body bytes read from the client
	BytesOut   int64     `json:"bytes_out"` // response body bytes written to the client
	DurationMS float64   `json:"duration_ms"`
	Scrubbed   int       `json:"scrubbed,omitempty"` // secret occurrences replaced in the response
	Tripwire   string    `json:"tripwire,omitempty"` // secret whose placeholder was caught
	Error      string    `json:"error,omitempty"`    // upstream failure, public detail only
}

// AuditLog writes records as JSON lines. It is safe for concurrent use.
//
// A batched log (NewBatchedAuditLog) holds the records of requests that
// were allowed and went well for a moment, and writes them together: one
// write for many requests instead of one each, which is most of what an
// audit record costs. Any other record (a denial, a tripwire, an upstream
// failure) is written at once, after the ones held before it, so records
// stay in order and those that matter most are never held. Close writes
// what is held; a process killed before it loses at most a batch window's
// allowed records.
type AuditLog struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte // records not written yet, as JSON lines
	held   int    // how many
	wait   time.Duration
	timer  *time.Timer // writes the held records; armed while there are some
	armed  bool
	report func(error) // receives the errors of writes no caller waits for
}

// auditBatchBytes is how much a batched log holds before it writes.
const auditBatchBytes = 32 << 10

// AuditWriteError is a failed write of Records records.
type AuditWriteError struct {
	Records int
	Err     error
}

func (e *AuditWriteError) Error() string {
	return "writing " + strconv.Itoa(e.Records) + " audit record(s): " + e.Err.Error()
}

func (e *AuditWriteError) Unwrap() error { return e.Err }

// LostRecords returns how many records a failed write of an AuditLog
// lost: an *AuditWriteError's Records, or 1 for another error.
func LostRecords(err error) int {
	var we *AuditWriteError
	if errors.As(err, &we) {
		return we.Records
	}
	return 1
}

// NewAuditLog returns an audit log writing each record to w at once.
func NewAuditLog(w io.Writer) *AuditLog { return &AuditLog{w: w} }

// NewBatchedAuditLog returns an audit log writing to w that holds the
// records of allowed requests up to wait (see AuditLog). A wait of 0 or
// less is NewAuditLog.
func NewBatchedAuditLog(w io.Writer, wait time.Duration) *AuditLog {
	a := &AuditLog{w: w, wait: max(wait, 0)}
	if a.wait > 0 {
		a.timer = time.AfterFunc(time.Hour, a.writeHeld)
		a.timer.Stop()
	}
	return a
}

// reportTo sends the errors of writes that no Write or Flush returns (a
// batch written when its window ended) to f.
func (a *AuditLog) reportTo(f func(error)) {
	a.mu.Lock()
	a.report = f
	a.mu.Unlock()
}

// Write appends one record: at once, or, in a batched log, with the
// records that come after it. An error (an *AuditWriteError) is for this
// record and those held with it; the record is never partially written
// by this process.
func (a *AuditLog) Write(r Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.buf = append(r.appendJSON(a.buf), '\n')
	a.held++
	if a.wait > 0 && r.routine() && len(a.buf) < auditBatchBytes {
		if !a.armed {
			a.armed = true
			a.timer.Reset(a.wait)
		}
		return nil
	}
	return a.flushLocked()
}

// routine reports whether the record may wait in a batch: an allowed
// request that went well.
func (r *Record) routine() bool {
	return r.Decision == "allow" && r.Tripwire == "" && r.Error == ""
}

// Flush writes the records held.
func (a *AuditLog) Flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.flushLocked()
}

// Close writes the records held; records written after it are written
// at once. It does not close the writer.
func (a *AuditLog) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.wait = 0
	return a.flushLocked()
}

// writeHeld writes the held records when their window ends.
func (a *AuditLog) writeHeld() {
	a.mu.Lock()
	a.armed = false
	err := a.flushLocked()
	report := a.report
	a.mu.Unlock()
	if err != nil && report != nil {
		report(err)
	}
}

func (a *AuditLog) flushLocked() error {
	if a.armed {
		a.timer.Stop()
		a.armed = false
	}
	if a.held == 0 {
		return nil
	}
	n, err := a.w.Write(a.buf)
	lost := a.held
	if err != nil {
		// The lines written whole before the failure are not lost; a line
		// cut short is ended before the next write, so that it does not
		// run into the next record.
		lost -= bytes.Count(a.buf[:n], []byte{'\n'})
	}
	torn := err != nil && n > 0 && a.buf[n-1] != '\n'
	a.buf, a.held = a.buf[:0], 0
	if cap(a.buf) > 2*auditBatchBytes {
		a.buf = nil // do not keep the buffer of an outsized record
	}
	if torn {
		a.buf = append(a.buf, '\n')
	}
	if err != nil {
		return &AuditWriteError{Records: lost, Err: err}
	}
	return nil
}

// appendJSON appends the record as encoding/json would marshal it, byte
// for byte, without reflection (it runs once per request).
func (r *Record) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = appendJSONField(b, `","client":`, r.Client)
	b = appendJSONField(b, `,"decision":`, r.Decision)
	b = appendJSONField(b, `,"reason":`, r.Reason)
	if r.Rule != "" {
		b = appendJSONField(b, `,"rule":`, r.Rule)
	}
	b = appendJSONField(b, `,"method":`, r.Method)
	b = appendJSONField(b, `,"scheme":`, r.Scheme)
	b = appendJSONField(b, `,"host":`, r.Host)
	b = strconv.AppendInt(append(b, `,"port":`...), int64(r.Port), 10)
	b = appendJSONField(b, `,"path":`, r.Path)
	if len(r.Secrets) > 0 {
		b = append(b, `,"secrets":[`...)
		for i, name := range r.Secrets {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, name)
		}
		b = append(b, ']')
	}
	b = strconv.AppendInt(append(b, `,"status":`...), int64(r.Status), 10)
	b = strconv.AppendInt(append(b, `,"bytes_in":`...), r.BytesIn, 10)
	b = strconv.AppendInt(append(b, `,"bytes_out":`...), r.BytesOut, 10)
	b = appendJSONFloat(append(b, `,"duration_ms":`...), r.DurationMS)
	if r.Scrubbed != 0 {
		b = strconv.AppendInt(append(b, `,"scrubbed":`...), int64(r.Scrubbed), 10)
	}
	if r.Tripwire != "" {
		b = appendJSONField(b, `,"tripwire":`, r.Tripwire)
	}
	if r.Error != "" {
		b = appendJSONField(b, `,"error":`, r.Error)
	}
	return append(b, '}')
}

func appendJSONField(b []byte, key, value string) []byte {
	return appendJSONString(append(b, key...), value)
}

// appendJSONString quotes s as encoding/json does: HTML-sensitive
// characters, control characters, U+2028 and U+2029 escaped, invalid
// UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(append(b, s[start:]...), '"')
}

// appendJSONFloat formats f as encoding/json does (ES6 number form).
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}

// OpenAuditFile opens an audit log file for appending, creating it with
// mode 0600 if needed; created reports whether it did. FIFOs, devices and
// other files that are not regular are refused without blocking.
func OpenAuditFile(path string) (f *os.File, created bool, err error) {
	f, err = regfile.Open(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, false, err
	}
	// Not through a symbolic link: one planted at the path (when the log
	// is rotated, say) would have records appended to any file the
	// daemon can write.
	f, err = regfile.Open(path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, false, fmt.Errorf("%s is a symbolic link; give the audit log's real path", path)
	}
	return f, false, err
}

// AuditFile is an audit log file that follows its path: Reopen opens the
// path again when it no longer names the open file (logrotate moved it
// away, someone removed or replaced it), so that records do not go on
// into a file nobody will read. It is safe for concurrent use.
type AuditFile struct {
	path     string
	reopenMu sync.Mutex   // one Reopen at a time
	mu       sync.RWMutex // held to write to f (read) and to replace it
	f        *os.File
	closed   bool // set by Close, under mu
}

// OpenAuditFileAt opens path as OpenAuditFile does, as an AuditFile.
func OpenAuditFileAt(path string) (a *AuditFile, created bool, err error) {
	f, created, err := OpenAuditFile(path)
	if err != nil {
		return nil, false, err
	}
	return &AuditFile{path: path, f: f}, created, nil
}

func (a *AuditFile) Write(p []byte) (int, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.f.Write(p)
}

// Reopen opens the path again if it no longer names the open file, and
// reports whether it did. On failure the open file is kept (its records
// may be lost: the caller should say so).
func (a *AuditFile) Reopen() (bool, error) {
	a.reopenMu.Lock()
	defer a.reopenMu.Unlock()
	a.mu.RLock()
	cur, closed := a.f, a.closed
	a.mu.RUnlock()
	if closed {
		return false, nil
	}
	if fi, err := os.Stat(a.path); err == nil {
		if ci, err := cur.Stat(); err == nil && os.SameFile(fi, ci) {
			return false, nil
		}
	}
	f, _, err := OpenAuditFile(a.path)
	if err != nil {
		return false, err
	}
	a.mu.Lock()
	if a.closed { // closed while the path was opened again
		a.mu.Unlock()
		f.Close()
		return false, nil
	}
	a.f = f
	a.mu.Unlock()
	cur.Sync() //nolint:errcheck // best effort for a file that was moved away
	cur.Close()
	return true, nil
}

// Close syncs and closes the file.
func (a *AuditFile) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if err := a.f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		a.f.Close()
		return err
	}
	return a.f.Close()
}
