package main

import (
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// dieWithParent makes cmd's process get SIGKILL when the test binary
// ends, so that a benchmark or test interrupted (Ctrl-C, -timeout) leaves
// no daemon or yardstick behind holding its port.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// exchangePaths swaps what paths a and b name, in one step, so that a
// watcher never sees either missing.
func exchangePaths(t *testing.T, a, b string) {
	t.Helper()
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
		t.Skipf("renameat2 RENAME_EXCHANGE: %v", err)
	}
}
