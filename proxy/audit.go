package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

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
type AuditLog struct {
	mu sync.Mutex
	w  io.Writer
}

// NewAuditLog returns an audit log writing to w.
func NewAuditLog(w io.Writer) *AuditLog { return &AuditLog{w: w} }

// Write appends one record. Write errors are returned to the caller, who
// may count them; the record is never partially written by this process.
func (a *AuditLog) Write(r Record) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err = a.w.Write(line)
	return err
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
	f, err = regfile.Open(path, os.O_WRONLY|os.O_APPEND, 0)
	return f, false, err
}
