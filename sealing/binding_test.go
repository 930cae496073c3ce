package sealing

import (
	"errors"
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
