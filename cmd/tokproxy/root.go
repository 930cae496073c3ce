package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokrun/tokrun/internal/cli"
)

// Exit statuses. They are part of the command-line contract.
const (
	exitOK     = 0
	exitError  = 1 // any error: bad usage, an invalid policy, a key that does not load
	exitDenied = 3 // policy explain: the policy denies the request
)

// env is everything a command may touch outside its arguments. Tests build
// one with a fixed clock and their own streams.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// now is the clock for secret expiry. If nil, time.Now is used.
	now func() time.Time
}

// run is main without os.Exit: it runs tokproxy with args and returns the
// exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	return e.run(args)
}

func (e *env) run(args []string) int {
	root := newRootCmd(e)
	cmd, err := cli.Execute(root, args)
	if err == nil {
		return exitOK
	}
	var code exitStatus
	if errors.As(err, &code) {
		return int(code)
	}
	e.report(cmd, args, err)
	return exitError
}

const rootLong = `tokproxy is the tokrun proxy: a sidecar daemon that lets untrusted code
call real APIs without ever holding their credentials.

The code in the sandbox sends its HTTP and HTTPS requests through the
proxy. For each request the proxy decides, from one policy file, whether the
destination (scheme, host, port, method and path) is allowed; everything not
allowed is denied. An allowed request gets the secrets its rule names
injected as headers. Secrets are sealed to the proxy's key (see sealctl):
only the proxy, which holds the private key file, can open them, and each
is bound inside its ciphertext to the hosts, header, methods and paths it
may ever be sent to, so editing the policy can narrow where a secret goes
but never widen it.

Before deploying a policy, validate it and try requests against it:

  tokproxy policy check policy.yaml --key key.txt
  tokproxy policy explain policy.yaml --key key.txt POST https://api.openai.com/v1/chat/completions

Output: stdout carries only the result (a summary, a decision); messages go
to stderr as "tokproxy: error: ...", "tokproxy: hint: ..." and
"tokproxy: warning: ...". Secret values are never printed; a secret shows as
its name and fingerprint (fp:...).

Exit status: 0 on success, 1 on any error; "policy explain" exits 3 when
the policy denies the request.`

// newRootCmd builds the command tree. Each subcommand lives in its own
// file and is added here.
func newRootCmd(e *env) *cobra.Command {
	root := cli.Root("tokproxy", "Proxy that injects sealed secrets into the requests a policy allows", rootLong, e.stdin, e.stdout, e.stderr)
	root.AddCommand(newPolicyCmd(e), newServeCmd(e), newTokenCmd(e))
	return root
}

// exitStatus ends tokproxy with a status other than 0 after the command
// has printed its result; nothing more is reported.
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// report prints err in the tokproxy grammar to stderr. An invalid policy
// prints one error line per problem, each as file:line: field: message.
func (e *env) report(cmd *cobra.Command, args []string, err error) {
	cli.Report(e.stderr, "tokproxy", cmd, args, err)

}

func (e *env) errorf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "tokproxy: error: "+format+"\n", args...)
}

func (e *env) warnf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "tokproxy: warning: "+format+"\n", args...)
}
