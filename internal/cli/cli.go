// Package cli holds the error grammar shared by tokrun's commands:
//
//	PROG: error: what went wrong
//	PROG: hint: what to do about it
//
// on stderr, with a usage hint ("run 'PROG CMD --help'") after errors in
// the command line itself. Errors never echo what the user typed where it
// could be a secret.
package cli

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// Error is an error with advice for the user.
type Error struct {
	Err   error
	Hints []string
	Usage bool // the command line cannot be run as written: add a usage hint
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// WithHints attaches advice to err.
func WithHints(err error, hints ...string) error {
	return &Error{Err: err, Hints: hints}
}

// Usagef reports a command line that cannot be run as written.
func Usagef(format string, args ...any) error {
	return &Error{Err: fmt.Errorf(format, args...), Usage: true}
}

// FlagError turns pflag's errors into usage errors; install it with
// cobra.Command.SetFlagErrorFunc. pflag quotes a whole unknown shorthand
// cluster ("in -xVALUE"), which could hold a secret typed by mistake, so
// that part is dropped.
func FlagError(_ *cobra.Command, err error) error {
	msg := err.Error()
	if strings.HasPrefix(msg, "unknown shorthand flag") {
		msg, _, _ = strings.Cut(msg, " in -")
		err = errors.New(msg)
	}
	return &Error{Err: err, Usage: true}
}

// Suggest returns a hint naming the subcommand of cmd closest to name, if
// any is close.
func Suggest(cmd *cobra.Command, name string) []string {
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, set where cobra suggests
	}
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		return []string{fmt.Sprintf("did you mean '%s %s'?", cmd.CommandPath(), s[0])}
	}
	return nil
}

// Lines is an error made of several problems, each reported on an error
// line of its own (policy.Errors: one line per problem, as
// file:line: field: message).
type Lines interface {
	error
	Lines() []string
}

// Report prints err to w in the grammar of prog: one error line, or one
// per problem of an error that implements Lines. Errors that are not an
// *Error come from cobra itself and are usage errors.
func Report(w io.Writer, prog string, cmd *cobra.Command, args []string, err error) {
	var ce *Error
	if !errors.As(err, &ce) {
		ce = &Error{Err: err, Usage: true}
	}
	ls := []string{ce.Err.Error()}
	var many Lines
	if errors.As(ce.Err, &many) && len(many.Lines()) > 0 {
		ls = many.Lines()
	}
	hints := ce.Hints
	if m := unknownCommandRE.FindStringSubmatch(ls[0]); m != nil {
		// cobra quotes the word; it is echoed only when it looks like a
		// mistyped command, not like something pasted there (a secret).
		if s := Suggest(cmd, m[1]); len(s) > 0 {
			hints = append(hints, s...)
		} else {
			ls[0] = "unknown command for " + m[2]
		}
	}
	for _, l := range ls {
		fmt.Fprintf(w, "%s: error: %s\n", prog, l)
	}
	for _, h := range hints {
		fmt.Fprintf(w, "%s: hint: %s\n", prog, h)
	}
	if ce.Usage {
		fmt.Fprintf(w, "%s: hint: run '%s --help'\n", prog, cmd.CommandPath())
	}
}

var unknownCommandRE = regexp.MustCompile(`^unknown command "(.*)" for ("[^"]*")$`)

// Root returns a root command wired for the grammar: cobra's own error and
// usage printing off (Report prints instead), suggestions in hints, flag
// errors as usage errors, and the given streams.
func Root(use, short, long string, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:                        use,
		Short:                      short,
		Long:                       long,
		SilenceErrors:              true,
		SilenceUsage:               true,
		DisableSuggestions:         true, // Report suggests instead, in the one grammar
		SuggestionsMinimumDistance: 2,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(FlagError)
	root.SetHelpCommand(helpCommand())
	return root
}

// Execute runs root with args, as cobra's ExecuteC does, after making
// the default "completion" command refuse a shell it does not know:
// cobra prints its help and exits 0 there, so a script that typed
// "completion zhs > file" would write help text and carry on.
func Execute(root *cobra.Command, args []string) (*cobra.Command, error) {
	root.SetArgs(args)
	root.InitDefaultCompletionCmd(args...)
	for _, c := range root.Commands() {
		if c.Name() == "completion" && !c.Runnable() {
			c.Args = cobra.ArbitraryArgs
			c.RunE = RunGroup
		}
	}
	return root.ExecuteC()
}

// RunGroup runs a command that only groups subcommands: without arguments
// it prints its help; otherwise the first argument is an unknown command.
// (Cobra itself checks subcommand names only on the root.)
func RunGroup(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	// Report suggests a command and drops a word that is none.
	return &Error{Err: fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath()), Usage: true}
}

// helpCommand is cobra's "help [command]", except that a word that names
// no command is an error, and is not echoed unless it looks like a
// mistyped command (it could be something pasted in the wrong place).
func helpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  "help COMMAND prints the same help as COMMAND --help.",
		ValidArgsFunction: func(c *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			target, _, err := c.Root().Find(args)
			if err != nil || target == nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, sub := range target.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name())
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || target == nil || len(rest) > 0 {
				e := &Error{Err: errors.New("no command by that name to show help for"), Usage: true}
				if len(args) > 0 {
					e.Hints = Suggest(c.Root(), args[len(args)-1])
				}
				return e
			}
			target.InitDefaultHelpFlag()
			return target.Help()
		},
	}
}
