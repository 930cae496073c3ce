package sealing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

const (
	payloadVersion = 1
	// maxPayload bounds the decrypted payload.
	maxPayload = 16 << 10
	// minPayload is the size of the smallest conceivable payload, used to
	// reject truncated ciphertexts before trying to open them.
	minPayload = len(`{"v":1}`)
)

// payload is the version 1 wire form, sealed inside the ciphertext.
type payload struct {
	V        int        `json:"v"`
	Name     string     `json:"name"`
	Value    string     `json:"value"`
	Hosts    []string   `json:"hosts"`
	Header   string     `json:"header"`
	Format   string     `json:"format"`
	Methods  []string   `json:"methods,omitempty"`
	Paths    []string   `json:"paths,omitempty"`
	NotAfter *time.Time `json:"not_after,omitempty"`
	SealedAt time.Time  `json:"sealed_at"`
}

var (
	requiredFields = []string{"v", "name", "value", "hosts", "header", "format", "sealed_at"}
	optionalFields = []string{"methods", "paths", "not_after"}
)

func encodePayload(b Binding, value string) ([]byte, error) {
	p := payload{
		V: payloadVersion, Name: b.Name, Value: value, Hosts: b.Hosts,
		Header: b.Header, Format: b.Format, Methods: b.Methods, Paths: b.Paths,
		SealedAt: b.SealedAt,
	}
	if !b.NotAfter.IsZero() {
		p.NotAfter = &b.NotAfter
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("%w: encoding payload: %v", ErrPayload, err)
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(out) > maxPayload {
		return nil, fmt.Errorf("%w: payload is %d bytes, limit %d", ErrTooLarge, len(out), maxPayload)
	}
	return out, nil
}

// decodePayload parses a version 1 payload strictly: exactly one JSON
// object, every key spelled exactly as specified (encoding/json alone
// would match keys case-insensitively), no key twice, no null values, no
// unknown keys, every required key present, nothing after the object.
// Errors never quote the payload: it holds the secret.
func decodePayload(data []byte) (Binding, string, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrPayload}, args...)...)
	}
	if len(data) > maxPayload {
		return Binding{}, "", fmt.Errorf("%w: payload is %d bytes, limit %d", ErrTooLarge, len(data), maxPayload)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Binding{}, "", bad("not a JSON object")
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Binding{}, "", bad("syntax error")
		}
		key, _ := tok.(string)
		if !isField(key) {
			return Binding{}, "", bad("unknown field %q", truncate(key))
		}
		if _, dup := fields[key]; dup {
			return Binding{}, "", bad("duplicate field %q", key)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Binding{}, "", bad("field %q: syntax error", key)
		}
		if string(raw) == "null" {
			return Binding{}, "", bad("field %q: null is not allowed", key)
		}
		fields[key] = raw
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return Binding{}, "", bad("syntax error")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Binding{}, "", bad("data after the JSON object")
	}
	for _, f := range requiredFields {
		if _, ok := fields[f]; !ok {
			return Binding{}, "", bad("missing required field %q", f)
		}
	}
	var p payload
	targets := map[string]any{
		"v": &p.V, "name": &p.Name, "value": &p.Value, "hosts": &p.Hosts,
		"header": &p.Header, "format": &p.Format, "methods": &p.Methods,
		"paths": &p.Paths, "not_after": &p.NotAfter, "sealed_at": &p.SealedAt,
	}
	for key, raw := range fields {
		if err := json.Unmarshal(raw, targets[key]); err != nil {
			return Binding{}, "", bad("field %q: wrong type or format", key)
		}
	}
	if p.V != payloadVersion {
		return Binding{}, "", bad("unsupported payload version %d", p.V)
	}
	b := Binding{
		Name: p.Name, Hosts: p.Hosts, Header: p.Header, Format: p.Format,
		Methods: p.Methods, Paths: p.Paths, SealedAt: p.SealedAt,
	}
	if p.NotAfter != nil {
		b.NotAfter = *p.NotAfter
	}
	return b, p.Value, nil
}

func isField(k string) bool {
	for _, f := range requiredFields {
		if f == k {
			return true
		}
	}
	for _, f := range optionalFields {
		if f == k {
			return true
		}
	}
	return false
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
