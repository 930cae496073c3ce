package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tokrun/tokrun/internal/cli"
	"github.com/tokrun/tokrun/runner"
)

// env is everything a command may touch outside its arguments.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(e)
	cmd, err := cli.Execute(root, args)
	if err == nil {
		return 0
	}
	var code exitStatus
	if errors.As(err, &code) {
		return int(code)
	}
	e.report(cmd, args, err)
	return runner.ExitFailure
}

// exitStatus ends tokrun with a status after the command ran; nothing more
// is reported.
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// report prints err in tokrun's grammar. An invalid policy prints one
// error line per problem, as file:line: field: message.
func (e *env) report(cmd *cobra.Command, args []string, err error) {
	cli.Report(e.stderr, "tokrun", cmd, args, err)

}

func (e *env) warnf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "tokrun: warning: "+format+"\n", args...)
}

func (e *env) hintf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "tokrun: hint: "+format+"\n", args...)
}

func (e *env) notef(format string, args ...any) {
	fmt.Fprintf(e.stderr, "tokrun: "+format+"\n", args...)
}

func newRootCmd(e *env) *cobra.Command {
	root := cli.Root("tokrun [flags] -- CMD [ARGS...]", "Run a command in a gVisor sandbox whose only way out is a credential-injecting proxy", rootLong, e.stdin, e.stdout, e.stderr)
	o := &runOptions{}
	o.register(root)
	root.Args = cobra.ArbitraryArgs
	root.Flags().SetInterspersed(false)
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cli.Usagef("no command to run; put it after --, as in: tokrun -- python3 agent.py")
		}
		return e.runCommand(o, args)
	}
	root.AddCommand(newDoctorCmd(e))
	return root
}
