package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tokrun/tokrun/internal/cli"
	"github.com/tokrun/tokrun/internal/regfile"
	"github.com/tokrun/tokrun/sealing"
)

const pubkeyLong = `Print the public key of each private key in a key file, one per line.

The key file is read from -i FILE, or from stdin if -i is absent or "-".
Public keys (tokrunpub1...) are safe to share: anyone can seal secrets to
them, only the key file opens those secrets. A warning is printed if the key
file can be read by group or others.`

const pubkeyExample = `  sealctl pubkey -i key.txt
  sealctl pubkey < key.txt > key.pub`

// maxKeyFileSize bounds a key file read from stdin; sealing applies the
// same limit to files.
const maxKeyFileSize = 1 << 20

func newPubkeyCmd(e *env) *cobra.Command {
	var in string
	cmd := &cobra.Command{
		Use:     "pubkey [-i FILE]",
		Short:   "Print the public keys of a key file",
		Long:    pubkeyLong,
		Example: pubkeyExample,
		// Use lists the flags.
		DisableFlagsInUseLine: true,
		Args:                  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ring, err := e.loadKeyRing(in)
			if err != nil {
				return err
			}
			for _, p := range ring.PublicKeys() {
				if _, err := fmt.Fprintln(e.stdout, p); err != nil {
					return cli.WithHints(fmt.Errorf("printing the public key: %w", regfile.Cause(err)))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&in, "input", "i", "", "read the key file `FILE` (\"-\" or absent: stdin)")
	return cmd
}

// loadKeyRing reads the key file at path, or stdin if path is "" or "-",
// warning if others can read it.
func (e *env) loadKeyRing(path string) (*sealing.KeyRing, error) {
	hint := "a key file holds TOKRUN-SECRET-KEY-1... lines, as written by 'sealctl keygen -o FILE'"
	if path != "" && path != "-" {
		ring, err := sealing.LoadKeyFile(path, func(msg string) { e.warnf("%s", msg) })
		if err != nil {
			return nil, cli.WithHints(err, hint)
		}
		return ring, nil
	}
	if _, isTerm := terminalFD(e.stdin); isTerm {
		return nil, cli.WithHints(errors.New("no key file given and stdin is a terminal"),
			"pass the key file with -i FILE, or redirect it: < FILE")
	}
	mode, isFile := regularFileMode(e.stdin)
	data, err := readAllLimit(e.stdin, maxKeyFileSize, "the key file on stdin")
	if err != nil {
		return nil, err
	}
	ring, err := sealing.ParseKeyFile("<stdin>", data)
	if isFile && mode.Perm()&0o077 != 0 && err == nil {
		e.warnf("the key file on stdin is accessible by group or others (mode %04o); restrict it with chmod 600", mode.Perm())
	}
	if err != nil {
		return nil, cli.WithHints(err, hint)
	}
	return ring, nil
}
