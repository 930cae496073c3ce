package policy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tokrun/tokrun/internal/match"
)

// allowFile is the File of every Problem about an Options.Allow entry.
const allowFile = "--allow"

// CheckAllow reports whether s can be an Options.Allow entry, so that a
// command can check its --allow flags before doing any work. The error is
// Errors with one Problem, written as Parse would report it:
//
//	--allow: "exa mple.com": not a valid host name or IP address
func CheckAllow(s string) error {
	if _, err := parseAllow(s); err != nil {
		return Errors{{File: allowFile, Msg: err.Error()}}
	}
	return nil
}

// parseAllow turns one --allow entry, "HOST" or "HOST:PORT", into an
// unnamed allow rule: https to that port (443 if none), any method, any
// path, nothing injected, no private network. HOST is a host name, an
// IPv4 address, an IPv6 address in brackets or a "*.suffix" wildcard,
// accepted exactly as a rule's host is.
func parseAllow(s string) (*Rule, error) {
	if s == "" {
		return nil, errors.New("empty value; give a host, a host:port or a *.suffix wildcard")
	}
	if strings.Contains(s, "://") || strings.Contains(s, "/") {
		return nil, fmt.Errorf("%q: give a host or host:port, not a URL or path", s)
	}
	host, port := s, 443
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, ok := parsePort(p)
		if !ok {
			return nil, fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, p)
		}
		host, port = h, n
		if strings.HasPrefix(s, "[") {
			host = "[" + h + "]" // so that only an IPv6 literal passes
		}
	} else if !strings.HasPrefix(s, "[") && strings.Contains(s, ":") {
		if a, err := netip.ParseAddr(s); err == nil && a.Is6() {
			return nil, fmt.Errorf("%q: write an IPv6 address in brackets, as [%s] or [%s]:443", s, s, s)
		}
		return nil, fmt.Errorf("%q: not a valid host name or IP address, with an optional :port", s)
	}
	hp, err := match.ParseHostPattern(host)
	if err != nil {
		if strings.Contains(host, "*") {
			detail := strings.TrimPrefix(err.Error(), match.ErrHost.Error()+": ")
			detail = strings.TrimPrefix(detail, strconv.Quote(host)+": ")
			return nil, fmt.Errorf("%q: %s", s, detail)
		}
		return nil, fmt.Errorf("%q: not a valid host name or IP address", s)
	}
	return &Rule{Host: hp.String(), Scheme: "https", Port: port, host: hp}, nil
}

// parsePort parses a decimal port from 1 to 65535, digits only.
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 1 && n <= 65535
}

// allowRules parses opts.Allow. Bad entries are reported as problems of
// the file "--allow".
func allowRules(entries []string) ([]*Rule, Errors) {
	var rules []*Rule
	var problems Errors
	for _, s := range entries {
		r, err := parseAllow(s)
		if err != nil {
			problems = append(problems, Problem{File: allowFile, Msg: err.Error()})
			continue
		}
		rules = append(rules, r)
	}
	return rules, problems
}

// nameAllowRules names the --allow rules "allow-1", "allow-2", ...,
// skipping any name the policy file already uses.
func nameAllowRules(rules []*Rule, taken map[string]int) {
	n := 0
	for _, r := range rules {
		for {
			n++
			name := "allow-" + strconv.Itoa(n)
			if taken[name] == 0 {
				r.Name = name
				break
			}
		}
	}
}
