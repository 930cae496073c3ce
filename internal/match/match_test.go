package match

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		in, want string // want "" means an error
	}{
		{"api.openai.com", "api.openai.com"},
		{"API.OpenAI.COM", "api.openai.com"},
		{"api.openai.com.", "api.openai.com"},
		{"api.openai.com..", ""},
		{"bücher.example", "xn--bcher-kva.example"},
		{"BÜCHER.example", "xn--bcher-kva.example"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"127.0.0.1", "127.0.0.1"},
		{"::1", "::1"},
		{"[::1]", "::1"},
		{"[2001:DB8::0:1]", "2001:db8::1"},
		{"::ffff:127.0.0.1", "127.0.0.1"},
		{"[::1", ""},
		{"[127.0.0.1]", ""},
		{"fe80::1%eth0", ""},
		{"example.com:443", ""},
		{"127.1", ""},
		{"2130706433", ""},
		{"0x7f.0.0.1", ""}, // inet_aton reads this as 127.0.0.1
		{"1.2.3.04", ""},
		{"", ""},
		{"-bad.example", ""},
		{"sp ace.example", ""},
		{"a..b", ""},
		{"_acme.example.com", "_acme.example.com"},
		{strings.Repeat("a", 64) + ".com", ""},
		{"*.example.com", ""},
	}
	for _, tt := range tests {
		got, err := NormalizeHost(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("NormalizeHost(%q) = %q, want error", tt.in, got)
			} else if !errors.Is(err, ErrHost) {
				t.Errorf("NormalizeHost(%q) error %v is not ErrHost", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeHost(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	// A URL pasted where a host goes is named for what it is.
	for _, in := range []string{"https://api.openai.com/", "http://api.openai.com:8080/v1"} {
		if _, err := NormalizeHost(in); err == nil || !strings.Contains(err.Error(), "is a URL; give the host name alone") {
			t.Errorf("NormalizeHost(%q) error %v", in, err)
		}
	}
}

func TestHostPattern(t *testing.T) {
	tests := []struct {
		pattern string
		host    string
		want    bool
	}{
		{"api.openai.com", "api.openai.com", true},
		{"API.OPENAI.COM.", "api.openai.com", true},
		{"api.openai.com", "api.openai.com.evil.net", false},
		{"api.openai.com", "xapi.openai.com", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "evilexample.com", false},
		{"*.example.com", "example.com.evil.net", false},
		{"*.example.com", "a.example.com.evil.net", false},
		{"*.bücher.example", "www.xn--bcher-kva.example", true},
		{"::1", "::1", true},
		{"[::1]", "::1", true},
		{"127.0.0.1", "127.0.0.2", false},
	}
	for _, tt := range tests {
		p, err := ParseHostPattern(tt.pattern)
		if err != nil {
			t.Fatalf("ParseHostPattern(%q): %v", tt.pattern, err)
		}
		if got := p.Match(tt.host); got != tt.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tt.pattern, tt.host, got, tt.want)
		}
	}
	var zero HostPattern
	if zero.Match("") || zero.Match("example.com") {
		t.Error("zero HostPattern matched")
	}
}

func TestHostPatternErrors(t *testing.T) {
	for _, s := range []string{"*.com", "*.co.uk", "*", "*.", "a.*.example.com", "*.*.example.com", "**.example.com", "*.127.0.0.1", "example.com:80", ""} {
		if p, err := ParseHostPattern(s); err == nil {
			t.Errorf("ParseHostPattern(%q) = %v, want error", s, p)
		}
	}
}

func TestHostPatternOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "*.example.com", true},
		{"*.example.com", "api.example.com", true},
		{"*.example.com", "*.a.example.com", true},
		{"*.a.example.com", "*.example.com", true},
		{"*.example.com", "*.example.org", false},
		{"example.com", "*.example.com", false},
		{"*.xample.com", "*.example.com", false},
	}
	for _, tt := range tests {
		a, _ := ParseHostPattern(tt.a)
		b, _ := ParseHostPattern(tt.b)
		if got := a.Overlaps(b); got != tt.want {
			t.Errorf("%q.Overlaps(%q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		in, want string // want "" means an error
	}{
		{"", "/"},
		{"/", "/"},
		{"/v1/chat", "/v1/chat"},
		{"/v1/chat/", "/v1/chat/"},
		{"//admin", "/admin"},
		{"/v1//chat", "/v1/chat"},
		{"/v1/../admin", "/admin"},
		{"/v1/%2e%2e/admin", "/admin"},
		{"/v1/%2E%2E/admin", "/admin"},
		{"/v1/.%2e/admin", "/admin"},
		{"/v1/./chat", "/v1/chat"},
		{"/v1/chat/.", "/v1/chat/"},
		{"/v1/chat/..", "/v1/"},
		{"/../../etc/passwd", "/etc/passwd"},
		{"/%7Euser", "/~user"},
		{"/a%20b", "/a%20b"},
		{"/a%3fb", "/a%3Fb"},
		{"/a b", "/a%20b"},
		{"/caf\xc3\xa9", "/caf%C3%A9"},
		{"/a%252e%252e/b", "/a%252e%252e/b"},
		{"/v1/%2fadmin", ""},
		{"/v1/%2Fadmin", ""},
		{"/v1/%5cadmin", ""},
		{"/v1\\..\\admin", ""},
		{"/v1/%00", ""},
		{"/v1/admin%0A", ""},
		{"/v1/admin%0d", ""},
		{"/v1/admin%09", ""},
		{"/v1/%1Fx", ""},
		{"/v1/%7f", ""},
		{"/v1/%7e%80", "/v1/~%80"},
		{"/v1/..;/admin", ""},
		{"/v1/.;x/admin", ""},
		{"/v1/a;b", "/v1/a;b"},
		{"/%", ""},
		{"/%4", ""},
		{"/%zz", ""},
		{"v1", ""},
		{"/" + strings.Repeat("a", maxPathLen), ""},
	}
	for _, tt := range tests {
		got, err := NormalizePath(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("NormalizePath(%q) = %q, want error", tt.in, got)
			} else if !errors.Is(err, ErrPath) {
				t.Errorf("NormalizePath(%q) error %v is not ErrPath", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestPathGlob(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"/v1/**", "/v1", true},
		{"/v1/**", "/v1/", true},
		{"/v1/**", "/v1/chat/completions", true},
		{"/v1/**", "/v2/chat", false},
		{"/v1/**", "/v1x/chat", false},
		{"/v1/**", "/admin", false},
		{"/v1/*", "/v1/chat", true},
		{"/v1/*", "/v1/chat/completions", false},
		{"/v1/*", "/v1", false},
		{"/repos/*/issues", "/repos/tokrun/issues", true},
		{"/repos/*/issues", "/repos/a/b/issues", false},
		{"/repos/**/issues", "/repos/a/b/issues", true},
		{"/repos/**/issues", "/repos/issues", true},
		{"/files/*.json", "/files/a.json", true},
		{"/files/*.json", "/files/a.json.exe", false},
		{"/files/a*b*c", "/files/aXXbYYc", true},
		{"/files/a*b*c", "/files/aXXbYY", false},
		{"/exact", "/exact", true},
		{"/exact", "/exact/", false},
		{"/**", "/anything/at/all", true},
		{"/", "/", true},
		{"/", "/x", false},
	}
	for _, tt := range tests {
		g, err := ParsePathGlob(tt.pattern)
		if err != nil {
			t.Fatalf("ParsePathGlob(%q): %v", tt.pattern, err)
		}
		if got := g.Match(tt.path); got != tt.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}

func TestPathGlobErrors(t *testing.T) {
	for _, s := range []string{"", "v1/**", "/v1/**x", "/v1//a", "/v1/../a", "/a%2fb", "/%7e"} {
		if g, err := ParsePathGlob(s); err == nil {
			t.Errorf("ParsePathGlob(%q) = %v, want error", s, g)
		}
	}
}

func TestParseMethod(t *testing.T) {
	for _, m := range Methods() {
		if _, err := ParseMethod(m); err != nil {
			t.Errorf("ParseMethod(%q): %v", m, err)
		}
	}
	for _, m := range []string{"PSOT", "get", "TRACE", "TRACK", "CONNECT", ""} {
		if _, err := ParseMethod(m); err == nil {
			t.Errorf("ParseMethod(%q) succeeded", m)
		}
	}
}

// Patterns with several "**" stay cheap on long paths: at most
// len(pattern)*len(path) segment comparisons (a naive recursive matcher
// needs minutes for this one).
func TestPathGlobManyDoubleStarsIsBounded(t *testing.T) {
	g, err := ParsePathGlob("/**/a/**/a/**/a/**/b")
	if err != nil {
		t.Fatal(err)
	}
	path := strings.Split(strings.Repeat("a/", 2000)+"c", "/")
	calls := 0
	counting := func(p, s string) bool { calls++; return matchSegment(p, s) }
	if matchSegs(g.segs, path, counting) {
		t.Fatal("matched")
	}
	if limit := len(g.segs) * len(path); calls > limit {
		t.Fatalf("%d segment comparisons, more than %d", calls, limit)
	}
	if !g.Match("/x/a/y/a/a/z/b") || g.Match("/a/a/b/c") {
		t.Fatal("wrong result")
	}
}
