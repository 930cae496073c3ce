package sealing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The value must not reach any printed form, log line, JSON document or
// error, whatever path a careless caller takes.
func TestSecretValueNeverLeaks(t *testing.T) {
	const value = "sk-live-SENTINEL-0123456789"
	k := mustKey(t, "leak")
	b := openaiBinding()
	b.NotAfter = t0.Add(time.Hour)
	s, err := mustRing(t, k).Open(mustSeal(t, k.Public(), b, value), "openai")
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, *s))
	}
	type holder struct {
		Exported   *Secret
		unexported *Secret
		byValue    Secret
	}
	h := holder{s, s, *s}
	outs = append(outs, fmt.Sprintf("%+v", h), fmt.Sprintf("%#v", h), fmt.Sprint([]*Secret{s}), fmt.Sprint(map[string]Secret{"k": *s}))
	for _, v := range []any{s, *s, h, []*Secret{s}, map[string]*Secret{"k": s}} {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(j))
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("opened", "secret", s, "byvalue", *s, "binding", s.Binding())
	slog.New(slog.NewTextHandler(&logs, nil)).Info("opened", "secret", s, "holder", h)
	outs = append(outs, logs.String(), fmt.Sprintf("%+v", s.Binding()))
	for _, e := range []error{
		s.Permits("evil.example", "GET", "/v1/x", t0),
		s.Permits("api.openai.com", "DELETE", "/v1/x", t0),
		s.Permits("api.openai.com", "GET", "/admin", t0),
		s.Permits("api.openai.com", "GET", "/v1/x", t0.Add(2*time.Hour)),
	} {
		if e == nil {
			t.Fatal("expected a permit error")
		}
		outs = append(outs, e.Error())
	}
	encodings := []string{value, strings.ToUpper(fmt.Sprintf("%x", value)), fmt.Sprintf("%x", value), "SENTINEL"}
	for _, o := range outs {
		if containsAny(o, encodings...) {
			t.Errorf("value leaked: %s", o)
		}
	}
	if !strings.Contains(logs.String(), s.Fingerprint()) || !strings.Contains(fmt.Sprint(s), "openai") {
		t.Error("redacted forms should still name the secret and its fingerprint")
	}
}

// Errors from sealing bad values never quote the value.
func TestSealErrorsNeverQuoteValue(t *testing.T) {
	pub := mustKey(t, "seal errors").Public()
	for _, v := range []string{"SENTINEL\r\nX: y", " SENTINEL", "SENTINEL\x00", strings.Repeat("SENTINEL", MaxValueSize)} {
		_, err := Seal(nil, pub, openaiBinding(), v, t0)
		if err == nil {
			t.Fatalf("bad value accepted")
		}
		if strings.Contains(err.Error(), "SENTINEL") {
			t.Fatalf("error quotes the value: %v", err)
		}
	}
	_, err := Seal(failingReader{}, pub, openaiBinding(), "SENTINEL", t0)
	if err == nil || !strings.Contains(err.Error(), "sealing:") || strings.Contains(err.Error(), "SENTINEL") {
		t.Fatalf("failing rand: err = %v", err)
	}
}

func TestZeroValuesDoNotPanic(t *testing.T) {
	var s Secret
	var k PrivateKey
	_ = fmt.Sprint(s, &s, k, &k)
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info("zero", "s", s, "k", k)
	if k.Reveal() != "" || !k.Equal(&PrivateKey{}) {
		t.Fatal("zero private key")
	}
	if _, err := json.Marshal(k); !errors.Is(err, ErrKey) {
		t.Fatalf("json of zero key: %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }
