package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tokrun/tokrun/internal/cli"
)

// env is everything a command may touch outside its arguments. Tests build
// one with a fixed clock and their own streams.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// now returns the current time. If nil, time.Now is used.
	now func() time.Time
	// rand is the source of key and sealing randomness. If nil,
	// crypto/rand.Reader is used.
	rand io.Reader
}

// run is main without os.Exit: it runs sealctl with args and returns the
// exit status, 0 on success and 1 on any error.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	return e.run(args)
}

func (e *env) run(args []string) int {
	root := newRootCmd(e)
	cmd, err := cli.Execute(root, args)
	if err == nil {
		return 0
	}
	e.report(cmd, args, err)
	return 1
}

func (e *env) clock() time.Time {
	if e.now != nil {
		return e.now()
	}
	return time.Now()
}

func (e *env) random() io.Reader {
	if e.rand != nil {
		return e.rand
	}
	return rand.Reader
}

const rootLong = `sealctl creates tokrun keys and seals secrets to them.

A sealed secret is a printable token (tokrun.sealed.v1.<key id>.<data>) that
holds a secret value together with its binding: the hosts it may be sent to,
the header it goes in and, optionally, methods, paths and an expiry. Only the
holder of the private key (the tokrun proxy) can open it, and nobody can
change the binding without it, so a token is safe to commit, paste into
config files or show to the code you run.

A typical workflow:

  1. On the machine that runs the proxy, create a key:
       sealctl keygen -o ~/.config/tokrun/key.txt
     It prints the public key (tokrunpub1...). Keep key.txt private.

  2. Anywhere, seal a secret to that public key. The value is read from
     stdin (or a no-echo prompt), never from the command line:
       sealctl seal --to tokrunpub1... --name openai \
         --host api.openai.com --header Authorization --format 'Bearer {}' \
         < openai-key.txt > openai.sealed

  3. Check what a token holds, without its value:
       sealctl inspect -i ~/.config/tokrun/key.txt - < openai.sealed

Output: stdout carries only the result (a key, a token, a report); messages
go to stderr as "sealctl: error: ...", "sealctl: hint: ..." and
"sealctl: warning: ...". Exit status: 0 on success, 1 on any error, 130 if
interrupted at the secret prompt.`

func newRootCmd(e *env) *cobra.Command {
	root := cli.Root("sealctl", "Create tokrun keys and seal secrets to them", rootLong, e.stdin, e.stdout, e.stderr)
	root.AddCommand(newKeygenCmd(e), newPubkeyCmd(e), newSealCmd(e), newInspectCmd(e))
	return root
}

// report prints err in the sealctl grammar to stderr.
func (e *env) report(cmd *cobra.Command, args []string, err error) {
	cli.Report(e.stderr, "sealctl", cmd, args, err)
}

func (e *env) warnf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "sealctl: warning: "+format+"\n", args...)
}

// terminalFD returns the file descriptor of f if it is a terminal.
func terminalFD(f any) (int, bool) {
	file, ok := f.(interface{ Fd() uintptr })
	if !ok {
		return 0, false
	}
	fd := int(file.Fd())
	return fd, term.IsTerminal(fd)
}

// noArgs rejects positional arguments without echoing them: they could be
// a secret typed on the command line by mistake.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return cli.Usagef("%s takes no arguments (got %d)", cmd.Name(), len(args))
	}
	return nil
}

// readAllLimit reads r to the end, failing once it exceeds limit bytes.
func readAllLimit(r io.Reader, limit int64, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than the limit of %d bytes", what, limit)
	}
	return data, nil
}

// regularFileMode returns the mode of f if it is a regular file (a shell
// redirect), so that its permissions can be checked.
func regularFileMode(f any) (os.FileMode, bool) {
	file, ok := f.(*os.File)
	if !ok {
		return 0, false
	}
	st, err := file.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0, false
	}
	return st.Mode(), true
}
