package match

import (
	"fmt"
	"slices"
)

// methods are the request methods a rule or binding may name. TRACE and
// TRACK are absent on purpose: they echo requests, headers included, and
// the proxy refuses them outright. CONNECT is decided by host, not named.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// Methods returns the request methods a rule or binding may name.
func Methods() []string { return slices.Clone(methods[:]) }

// ParseMethod checks that m is one of Methods (written in upper case).
func ParseMethod(m string) (string, error) {
	if slices.Contains(methods[:], m) {
		return m, nil
	}
	return "", fmt.Errorf("unknown method %q", m)
}
