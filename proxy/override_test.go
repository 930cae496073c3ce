package proxy

import "testing"

// A path-override header's value is checked as the path a server would
// take from it; what is not a path is passed to the policy as it is, to
// be refused.
func TestOverridePath(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/x":                        "/v1/x",
		"/v1/x?a=/admin":               "/v1/x",
		"/v1/ok#/../../admin":          "/v1/ok#/../../admin",
		"https://api.example.com/v1/y": "/v1/y",
		"https://api.example.com":      "/",
		"https://h/v1/z?q#f":           "/v1/z",
		"http:admin/x":                 "http:admin/x",
		"mailto:x":                     "mailto:x",
		"admin":                        "admin",
		"//evil/admin":                 "//evil/admin",
	} {
		if got := overridePath(in); got != want {
			t.Errorf("overridePath(%q) = %q, want %q", in, got, want)
		}
	}
}
