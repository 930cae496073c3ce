package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tokrun/tokrun/runner"
)

const doctorLong = `Check whether this machine can run tokrun's sandboxes.

doctor looks at the privileges tokrun has (root, or unprivileged user
namespaces for rootless runs), seccomp (gVisor's systrap platform needs it),
cgroups, the state directory, and then runs /bin/true in a real sandbox.
Each check prints "ok" or "FAIL" with what it found.

Exit status: 0 when tokrun can run here, 1 when a required check failed.

Example:
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
			failed := false
			for _, c := range runner.Doctor(stateDir) {
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
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "state `DIR` to check (default $XDG_RUNTIME_DIR/tokrun or /run/tokrun)")
	return cmd
}
