package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tokrun/tokrun/internal/cli"
)

const checkLong = `Validate a policy file.

On success, warnings (such as an expired secret) go to stderr and one
summary line to stdout:

  policy.yaml: ok: 6 rules, 2 deny rules, 2 secrets

On failure every problem is printed, one per line, as
"tokproxy: error: FILE:LINE: FIELD: MESSAGE", and the exit status is 1.

Sealed secrets are opened with --key, so a secret sealed to another key, a
modified token or a secret whose binding can never agree with its rule is
an error here rather than when the proxy starts.`

const checkExample = `  tokproxy policy check policy.yaml --key ~/.config/tokrun/key.txt
  tokproxy policy check minimal.yaml`

func newCheckCmd(e *env) *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:     "check FILE [--key KEYFILE]",
		Short:   "Validate a policy file",
		Long:    checkLong,
		Example: checkExample,
		// The flags are in Use already.
		DisableFlagsInUseLine: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cli.Usagef("check takes one argument, the policy file (got %d)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.check(args[0], keyFile)
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", keyFlagUsage)
	return cmd
}

func (e *env) check(file, keyFile string) error {
	p, err := e.loadPolicy(file, keyFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: ok: %s, %s, %s\n", file,
		count(len(p.Rules()), "rule"), count(len(p.DenyRules()), "deny rule"), count(len(p.Secrets()), "secret"))
	return nil
}

// count writes n with the noun, plural unless n is 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
