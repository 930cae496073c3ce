package main

import (
	"strings"
	"testing"
)

// The deny-all default's hint offers --allow only where --allow works:
// HTTPS to a public host, with the port when it is not 443. Plain http and
// private addresses need a policy rule.
func TestDeniedHint(t *testing.T) {
	tests := []struct {
		r    refused
		want string
	}{
		{refused{"https", "api.example.com", 443}, "the request to api.example.com was refused; allow it with --allow api.example.com, or write a policy"},
		{refused{"https", "api.example.com", 8443}, "the request to https://api.example.com:8443 was refused; allow it with --allow api.example.com:8443, or write a policy"},
		{refused{"https", "2001:4860::8888", 8443}, "allow it with --allow [2001:4860::8888]:8443, or write a policy"},
		{refused{"http", "example.com", 80}, "the request to http://example.com:80 was refused; --allow covers HTTPS only: write a policy with a rule for it (scheme: http)"},
		{refused{"https", "127.0.0.1", 18443}, "the request to https://127.0.0.1:18443 was refused; --allow never reaches a private address: write a policy with a rule for it that sets unsafe_allow_private_network: true"},
		{refused{"https", "10.1.2.3", 443}, "--allow never reaches a private address"},
	}
	for _, tt := range tests {
		got := tt.r.hint()
		if !strings.HasPrefix(got, "no policy (no --policy, no ./tokrun.yaml): ") || !strings.Contains(got, tt.want) {
			t.Errorf("%+v: hint %q, want it to hold %q", tt.r, got, tt.want)
		}
	}
}
