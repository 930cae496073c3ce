package match

import "testing"

// Query components are decoded as PHP and Express decode them: an
// invalid escape stays as it is.
func TestLenientUnescape(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "_method": "_method", "%5Fmethod": "_method", "%5f%6D": "_m", "a+b": "a b", "%41%2": "A%2",
		"%": "%", "%4": "%4", "%zz": "%zz", "%%41": "%A", "x%00y": "x\x00y",
	} {
		if got := LenientUnescape(in); got != want {
			t.Errorf("LenientUnescape(%q) = %q, want %q", in, got, want)
		}
	}
}
