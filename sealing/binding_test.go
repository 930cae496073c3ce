package sealing

import (
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
)

// A secret sealed for a wildcard over a cloud provider's domain is not
// permitted to hosts under the public suffixes below it.
func TestBindingWildcardStopsAtNestedPublicSuffix(t *testing.T) {
	k := mustKey(t, "nested-suffix")
	tok := mustSeal(t, k.Public(), Binding{Name: "aws", Hosts: []string{"*.amazonaws.com"}, Header: "X-Api-Key", Format: "{}"}, "ak-nested-0123456789")
	s, err := mustRing(t, k).Open(tok, "aws")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Permits("attacker.execute-api.us-east-1.amazonaws.com", "GET", "/", t0); !errors.Is(err, ErrHostNotBound) {
		t.Errorf("permitted to an API Gateway host anyone can own: %v", err)
	}
	if err := s.Permits("sts.amazonaws.com", "GET", "/", t0); err != nil {
		t.Errorf("not permitted to sts.amazonaws.com: %v", err)
	}
}

// TestCanonical: Canonical gives the binding as sealed (what sealctl
// shows the user before the secret is typed), and refuses one that leaves
// no room for a value, which Seal would only find after the value.
func TestCanonical(t *testing.T) {
	b := Binding{Name: "n", Hosts: []string{"API.Example.COM", "bücher.example"}, Header: "x-api-key", Format: "{}", Methods: []string{"GET"}}
	c, err := b.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Hosts, ","); got != "api.example.com,xn--bcher-kva.example" || c.Header != "X-Api-Key" || strings.Join(c.Methods, ",") != "GET" {
		t.Errorf("canonical binding %+v", c)
	}
	k := mustKey(t, "canonical")
	tok := mustSeal(t, k.Public(), b, "sk-canonical-0123")
	s, err := mustRing(t, k).Open(tok, "n")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Binding().Hosts, c.Hosts; !slices.Equal(got, want) {
		t.Errorf("sealed hosts %v, Canonical said %v", got, want)
	}

	// The largest binding that leaves room for the shortest value passes,
	// and a value that long seals; one more byte of path does not pass.
	long := func(n int) Binding {
		p := Binding{Name: "n", Hosts: []string{"example.com"}, Header: "X-Key", Format: "{}"}
		for n > 0 {
			l := min(n, 8000)
			p.Paths = append(p.Paths, "/"+strings.Repeat("a", l-1))
			n -= l
		}
		return p
	}
	lo, hi := 0, maxPayload
	for lo < hi { // the most bytes of paths Validate accepts
		mid := (lo + hi + 1) / 2
		if long(mid).Validate() == nil {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo < maxPayload/2 {
		t.Fatalf("only %d bytes of paths accepted", lo)
	}
	if _, err := Seal(rand.Reader, k.Public(), long(lo), strings.Repeat("v", MinValueSize), t0); err != nil {
		t.Errorf("a binding Validate passed does not seal the shortest value: %v", err)
	}
	err = long(lo + 1).Validate()
	if !errors.Is(err, ErrBinding) || !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "no room for the secret") {
		t.Errorf("Validate of a binding one byte too large: %v", err)
	}
}
