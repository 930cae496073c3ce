package main

import (
	"path/filepath"
	"runtime/debug"
	"testing"
)

// tokproxy is built with profile-guided optimisation from default.pgo,
// which go build and go test pick up by themselves: this test binary is
// built from the same main package by the same rule.
func TestBuiltWithProfile(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build information")
	}
	for _, s := range bi.Settings {
		if s.Key == "-pgo" {
			if filepath.Base(s.Value) != "default.pgo" {
				t.Fatalf("built with -pgo=%s, want default.pgo", s.Value)
			}
			return
		}
	}
	t.Fatal("built without profile-guided optimisation: is cmd/tokproxy/default.pgo missing?")
}
