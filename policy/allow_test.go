package policy

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckAllow(t *testing.T) {
	tests := []struct {
		in   string
		host string // "" when the entry is refused
		port int
		err  string
	}{
		{"api.github.com", "api.github.com", 443, ""},
		{"API.GitHub.com.", "api.github.com", 443, ""},
		{"api.github.com:8443", "api.github.com", 8443, ""},
		{"*.pythonhosted.org", "*.pythonhosted.org", 443, ""},
		{"*.githubusercontent.com", "", 0, `public suffix "githubusercontent.com"`},
		{"*.example.com:444", "*.example.com", 444, ""},
		{"bücher.example", "xn--bcher-kva.example", 443, ""},
		{"192.0.2.1", "192.0.2.1", 443, ""},
		{"192.0.2.1:9000", "192.0.2.1", 9000, ""},
		{"[2001:db8::1]", "2001:db8::1", 443, ""},
		{"[2001:DB8:0::1]:8443", "2001:db8::1", 8443, ""},
		{"[::ffff:192.0.2.1]", "192.0.2.1", 443, ""},

		{"", "", 0, `--allow: empty value; give a host, a host:port or a *.suffix wildcard`},
		{"exa mple.com", "", 0, `--allow: "exa mple.com": not a valid host name or IP address`},
		{"2001:db8::1", "", 0, `--allow: "2001:db8::1": write an IPv6 address in brackets, as [2001:db8::1] or [2001:db8::1]:443`},
		{"example.com:0", "", 0, `--allow: "example.com:0": port "0" is not a number from 1 to 65535`},
		{"example.com:65536", "", 0, `port "65536" is not a number from 1 to 65535`},
		{"example.com:+443", "", 0, `port "+443" is not a number`},
		{"example.com:", "", 0, `port "" is not a number`},
		{"example.com:https", "", 0, `port "https" is not a number`},
		{"a:b:c", "", 0, `--allow: "a:b:c": not a valid host name or IP address, with an optional :port`},
		{"[example.com]:443", "", 0, `--allow: "[example.com]:443": not a valid host name or IP address`},
		{"[::1", "", 0, `not a valid host name or IP address`},
		{":443", "", 0, `--allow: ":443": not a valid host name or IP address`},
		{"https://api.github.com", "", 0, `--allow: "https://api.github.com": give a host or host:port, not a URL or path`},
		{"api.github.com/repos", "", 0, `not a URL or path`},
		{"127.1", "", 0, `--allow: "127.1": not a valid host name or IP address`},
		{"*.com", "", 0, `--allow: "*.com": a wildcard over the public suffix "com" would match unrelated owners`},
		{"a.*.example.com", "", 0, `--allow: "a.*.example.com": a wildcard is only allowed as a leading "*."`},
		{"[fe80::1%eth0]", "", 0, `not a valid host name or IP address`},
	}
	for _, tt := range tests {
		err := CheckAllow(tt.in)
		r, perr := parseAllow(tt.in)
		if tt.host == "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("CheckAllow(%q) = %v, want %q", tt.in, err, tt.err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("CheckAllow(%q): error does not wrap ErrInvalid", tt.in)
			}
			continue
		}
		if err != nil || perr != nil {
			t.Errorf("CheckAllow(%q) = %v", tt.in, err)
			continue
		}
		if r.Host != tt.host || r.Port != tt.port || r.Scheme != "https" || len(r.Methods) != 0 || len(r.Paths) != 0 || len(r.Inject) != 0 || r.AllowPrivate {
			t.Errorf("parseAllow(%q) = %+v", tt.in, r)
		}
	}
}

// --allow rules follow the file's rules, avoid its names, and decide
// exactly like file rules: the file's deny rules and injecting rules come
// first, and nothing is injected under them.
func TestAllowRulesDecide(t *testing.T) {
	opts := testOptions(t)
	opts.Allow = []string{"api.github.com", "*.example.org:8443", "[2001:db8::1]", "api.openai.com"}
	src := "version: 1\nrules:\n  - {name: allow-1, host: pypi.org}\n  - {name: allow-3, host: a.example.net}\n" +
		"deny:\n  - {name: allow-4, host: api.github.com, paths: [\"/admin/**\"]}\n"
	p, err := Parse("allow.yaml", []byte(src), opts)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range p.Rules() {
		names = append(names, r.Name+"="+r.Host)
	}
	if got := strings.Join(names, " "); got != "allow-1=pypi.org allow-3=a.example.net allow-2=api.github.com allow-5=*.example.org allow-6=2001:db8::1 allow-7=api.openai.com" {
		t.Fatalf("rules %s", got)
	}
	if r := p.Rule("allow-5"); r.Line != 0 || r.Port != 8443 || r.Scheme != "https" {
		t.Fatalf("allow-5 = %+v", r)
	}

	q := mustLoad(t, filepath.Join(policyDir, "good", "full.yaml"))
	fopts := testOptions(t)
	fopts.Allow = opts.Allow
	full, err := Load(filepath.Join(policyDir, "good", "full.yaml"), fopts)
	if err != nil {
		t.Fatal(err)
	}
	if full.Hash() == q.Hash() {
		t.Error("--allow does not change the hash")
	}
	for _, tt := range []struct {
		p                    *Policy
		method, scheme, host string
		port                 int
		path                 string
		allow                bool
		reason               Reason
		rule, inject         string
	}{
		{p, "DELETE", "https", "API.GitHub.com.", 0, "/repos/x", true, Allowed, "allow-2", ""},
		{p, "GET", "https", "api.github.com", 443, "/admin/users", false, DeniedByRule, "allow-4", ""},
		{p, "GET", "http", "api.github.com", 80, "/", false, SchemeNotAllowed, "", ""},
		{p, "GET", "https", "api.github.com", 8443, "/", false, PortNotAllowed, "", ""},
		{p, "GET", "https", "raw.example.org", 8443, "/", true, Allowed, "allow-5", ""},
		{p, "GET", "https", "example.org", 8443, "/", false, HostNotAllowed, "", ""},
		{p, "GET", "https", "raw.example.org", 443, "/", false, PortNotAllowed, "", ""},
		{p, "GET", "https", "2001:db8:0::1", 0, "/", true, Allowed, "allow-6", ""},
		{p, "TRACE", "https", "api.github.com", 0, "/", false, MethodNotAllowed, "", ""},
		{p, "GET", "https", "api.github.com", 0, "/a%2fb", false, InvalidPath, "", ""},
		{p, "GET", "https", "api.github.com.evil.net", 0, "/", false, HostNotAllowed, "", ""},
		// The file's injecting rule matches first; where it does not,
		// --allow lets the request through without the secret; the file's
		// deny rules still win.
		{full, "POST", "https", "api.openai.com", 0, "/v1/chat", true, Allowed, "openai-chat", "openai"},
		{full, "DELETE", "https", "api.openai.com", 0, "/v1/chat", true, Allowed, "allow-4", ""},
		{full, "GET", "https", "api.openai.com", 0, "/v1/files/x", false, DeniedByRule, "no-files", ""},
		{q, "DELETE", "https", "api.openai.com", 0, "/v1/chat", false, MethodNotAllowed, "", ""},
	} {
		d := tt.p.Decide(Request{Scheme: tt.scheme, Host: tt.host, Port: tt.port, Method: tt.method, Path: tt.path})
		var inj []string
		for _, i := range d.Inject {
			inj = append(inj, i.Name)
		}
		if d.Allow != tt.allow || d.Reason != tt.reason || d.Rule != tt.rule || strings.Join(inj, ",") != tt.inject {
			t.Errorf("%s %s://%s:%d%s: %+v", tt.method, tt.scheme, tt.host, tt.port, tt.path, d)
		}
		h := tt.p.DecideHost(Request{Scheme: tt.scheme, Host: tt.host, Port: tt.port, Method: "CONNECT"})
		if tt.allow && !h.Allow {
			t.Errorf("CONNECT %s:%d: %+v", tt.host, tt.port, h)
		}
	}
	for _, host := range []string{"api.github.com", "x.example.org"} {
		port := 443
		if strings.HasSuffix(host, ".org") {
			port = 8443
		}
		if d := p.DecideHost(Request{Scheme: "https", Host: host, Port: port}); !d.Allow || !strings.HasPrefix(d.Rule, "allow-") {
			t.Errorf("CONNECT %s: %+v", host, d)
		}
	}
}

// Without a policy file, "version: 1" and --allow make a policy that
// denies everything but the --allow hosts; without --allow, a file
// still needs rules.
func TestAllowWithoutPolicyFile(t *testing.T) {
	p, err := Parse("(no policy)", []byte("version: 1\n"), Options{Allow: []string{"api.github.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules()) != 1 || len(p.DenyRules()) != 0 || len(p.Secrets()) != 0 {
		t.Fatalf("rules %v", p.Rules())
	}
	if d := p.Decide(Request{Scheme: "https", Host: "api.github.com", Method: "GET", Path: "/"}); !d.Allow || d.Rule != "allow-1" {
		t.Errorf("allowed host: %+v", d)
	}
	if d := p.Decide(Request{Scheme: "https", Host: "example.com", Method: "GET", Path: "/"}); d.Allow || d.Reason != HostNotAllowed {
		t.Errorf("other host: %+v", d)
	}
	if _, err := Parse("(no policy)", []byte("version: 1\n"), Options{}); err == nil || err.Error() != `(no policy):1: missing required field "rules"` {
		t.Errorf("no rules and no --allow: %v", err)
	}
}

// Bad --allow entries are reported after the file's own problems, and
// also when the file cannot be read as YAML at all.
func TestAllowProblems(t *testing.T) {
	opts := Options{Allow: []string{"ok.example.com", "exa mple.com", "x.example.com:99999"}}
	for _, tt := range []struct{ src, want string }{
		{"version: 1\nrules:\n  - {name: a, host: a.example.com}\n",
			"--allow: \"exa mple.com\": not a valid host name or IP address\n--allow: \"x.example.com:99999\": port \"99999\" is not a number from 1 to 65535"},
		{"version: 1\nrules:\n  - {name: a, hots: a.example.com}\n",
			"f.yaml:3: rules[0].hots: unknown field \"hots\" (known fields: name, host, port, scheme, methods, paths, inject, unsafe_allow_private_network)\n" +
				"f.yaml:3: rules[0]: missing required field \"host\"\n" +
				"--allow: \"exa mple.com\": not a valid host name or IP address\n--allow: \"x.example.com:99999\": port \"99999\" is not a number from 1 to 65535"},
		{"version: [\n",
			"f.yaml:1: YAML syntax: did not find expected node content\n" +
				"--allow: \"exa mple.com\": not a valid host name or IP address\n--allow: \"x.example.com:99999\": port \"99999\" is not a number from 1 to 65535"},
	} {
		_, err := Parse("f.yaml", []byte(tt.src), opts)
		if err == nil || err.Error() != tt.want {
			t.Errorf("got\n%v\nwant\n%s", err, tt.want)
		}
	}
}
