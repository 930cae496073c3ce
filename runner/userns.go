package runner

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// usernsEnv marks the copy of tokrun that runs inside its own user
// namespace, so that it does not try again.
const usernsEnv = "TOKRUN_IN_USERNS"

// InUserns reports whether this process is the rootless copy of tokrun
// started by [ReexecInUserns].
func InUserns() bool { return os.Getenv(usernsEnv) == "1" }

// ReexecInUserns runs this program again, with the same arguments and
// stdio, as root of a new user namespace (mapped to the caller's user),
// which rootless gVisor needs. It forwards signals, waits, and returns the
// child's exit status. It returns an error when user namespaces are not
// available.
func ReexecInUserns() (int, error) {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
		Credential:                 &syscall.Credential{Uid: 0, Gid: 0},
		Pdeathsig:                  unix.SIGKILL,
	}
	cmd.Env = append(os.Environ(), usernsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGHUP, unix.SIGINT, unix.SIGQUIT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return ExitFailure, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return 128 + int(ws.Signal()), nil
				}
				return ee.ExitCode(), nil
			}
			if err != nil {
				return ExitFailure, err
			}
			return 0, nil
		}
	}
}
