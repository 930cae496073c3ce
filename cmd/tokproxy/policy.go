package main

import (
	"github.com/spf13/cobra"

	"github.com/tokrun/tokrun/internal/cli"
	"github.com/tokrun/tokrun/policy"
	"github.com/tokrun/tokrun/sealing"
)

const policyLong = `Check a policy file and explain the decisions it makes, without starting
the proxy.

Both commands load the policy exactly as "tokproxy serve" does: strictly
(unknown fields are errors), reporting every problem at once as
FILE:LINE: FIELD: MESSAGE. A policy with secrets needs the proxy's key file
(--key) to open them; a policy without secrets does not.`

func newPolicyCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:                        "policy",
		Short:                      "Check a policy file and explain its decisions",
		Long:                       policyLong,
		Args:                       cobra.ArbitraryArgs,
		RunE:                       cli.RunGroup,
		DisableFlagsInUseLine:      true,
		SuggestionsMinimumDistance: 2,
	}
	cmd.AddCommand(newCheckCmd(e), newExplainCmd(e))
	return cmd
}

// keyFlagUsage is the help of --key, shared by every command that loads a
// policy.
const keyFlagUsage = "open the policy's sealed secrets with the private key file `KEYFILE`"

// loadPolicy loads the policy file, opening its secrets with the key file
// if one is given, and prints the policy's warnings.
func (e *env) loadPolicy(file, keyFile string) (*policy.Policy, error) {
	opts := policy.Options{Now: e.now}
	if keyFile != "" {
		ring, err := sealing.LoadKeyFile(keyFile, func(msg string) { e.warnf("%s", msg) })
		if err != nil {
			return nil, cli.WithHints(err, "a key file holds TOKRUN-SECRET-KEY-1... lines, as written by 'sealctl keygen -o FILE'")
		}
		opts.Keys = ring
	}
	p, err := policy.Load(file, opts)
	if err != nil {
		return nil, cli.WithHints(err, keyHints(err, keyFile)...)
	}
	for _, w := range p.Warnings() {
		e.warnf("%s", w)
	}
	return p, nil
}
