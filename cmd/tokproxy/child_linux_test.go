package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes cmd's process get SIGKILL when the test binary
// ends, so that a benchmark or test interrupted (Ctrl-C, -timeout) leaves
// no daemon or yardstick behind holding its port.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
