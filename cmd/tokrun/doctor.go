package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokrun/tokrun/runner"
)

const doctorLong = `Check whether this machine can run tokrun's sandboxes.

doctor looks at the privileges tokrun has (root, or unprivileged user
namespaces for rootless runs), seccomp (gVisor's systrap platform needs it),
cgroups and the state directory, then runs "tokrun -- /bin/true" for real,
in an empty directory, without a policy. Each check prints "ok", "warn"
(works, with less) or "FAIL" with what it found.

Exit status: 0 when tokrun can run here, 1 when a required check failed.

Examples:
  tokrun doctor
  tokrun doctor --state-dir /tmp/tokrun-state`

func newDoctorCmd(e *env) *cobra.Command {
	var stateDir string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check what this machine supports and run a test sandbox",
		Long:  doctorLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			checks := append(runner.Doctor(stateDir), smokeTest(stateDir))
			failed := false
			for _, c := range checks {
				status := "ok  "
				if !c.OK {
					status = "FAIL"
					if !c.Required {
						status = "warn"
					}
				}
				fmt.Fprintf(e.stdout, "%s  %-16s %s\n", status, c.Name, c.Detail)
				if !c.OK && c.Required {
					failed = true
				}
			}
			if failed {
				fmt.Fprintln(e.stdout, "tokrun cannot run sandboxes here; see the FAIL lines above")
				return exitStatus(1)
			}
			fmt.Fprintln(e.stdout, "tokrun can run sandboxes here")
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "state `DIR` to use (default $XDG_RUNTIME_DIR/tokrun, /run/tokrun for root or ~/.cache/tokrun)")
	return cmd
}

// smokeTest runs this tokrun binary on /bin/true, as a user would.
func smokeTest(stateDir string) runner.Check {
	c := runner.Check{Name: "sandbox", Required: true}
	exe, err := os.Executable()
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	dir, err := os.MkdirTemp("", "tokrun-doctor-")
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	defer os.RemoveAll(dir)
	args := []string{"--no-tty"}
	if stateDir != "" {
		args = append(args, "--state-dir", stateDir)
	}
	cmd := exec.Command(exe, append(args, "--", "/bin/true")...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		c.Detail = fmt.Sprintf("tokrun -- /bin/true failed (%v): %s", err, strings.TrimSpace(out.String()))
		return c
	}
	c.OK = true
	c.Detail = fmt.Sprintf("ran /bin/true in a gVisor sandbox in %v", time.Since(start).Round(time.Millisecond))
	return c
}
