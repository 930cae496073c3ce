//go:build !linux

package main

import (
	"os/exec"
	"testing"
)

// dieWithParent does nothing where the parent's death cannot be signalled.
func dieWithParent(*exec.Cmd) {}

// exchangePaths cannot swap two paths in one step here.
func exchangePaths(t *testing.T, _, _ string) {
	t.Skip("no atomic exchange of two paths on this system")
}
