package runsc

import (
	"strings"
	"testing"
)

func TestIsReexec(t *testing.T) {
	for args, want := range map[string]bool{
		"runsc-sandbox --root=/x boot":    true,
		"runsc-gofer --root=/x gofer":     true,
		"/proc/self/exe umount --sync-fd": true,
		"/usr/local/bin/runsc boot":       true,
		"tokrun -- python3":               false,
		"/usr/bin/tokrun doctor":          false,
		"/.tokrun/tokrun-init -- sh":      false,
		"":                                false,
	} {
		if got := IsReexec(strings.Fields(args)); got != want {
			t.Errorf("IsReexec(%q) = %v, want %v", args, got, want)
		}
	}
}
