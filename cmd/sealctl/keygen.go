package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tokrun/tokrun/internal/cli"
	"github.com/tokrun/tokrun/internal/regfile"
	"github.com/tokrun/tokrun/sealing"
)

const keygenLong = `Create a new private key for opening sealed secrets.

With -o FILE, the key file is created with mode 0600 and the public key
(tokrunpub1...) is printed on stdout. Missing parent directories are created
with mode 0700 (and removed again if the key cannot be written). An existing
file is never overwritten: losing a key makes every secret sealed to it
unreadable.

Without -o, the key file is written to stdout and the public key to stderr as
"Public key: tokrunpub1...", so the key can be piped somewhere safe.

A key file holds one private key (TOKRUN-SECRET-KEY-1...) per line; lines
starting with "#" are comments. The proxy reads it; sealing only needs the
public key, which is safe to share.`

const keygenExample = `  # Create a key file and keep its public key for sealing.
  sealctl keygen -o key.txt > key.pub

  # Write the key to stdout, e.g. into a password manager.
  sealctl keygen | pass insert --multiline tokrun/key`

func newKeygenCmd(e *env) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:     "keygen [-o FILE]",
		Short:   "Create a new private key",
		Long:    keygenLong,
		Example: keygenExample,
		// Use lists the flags.
		DisableFlagsInUseLine: true,
		Args:                  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("output") && out == "" {
				// An unset variable in -o "$KEYFILE" must not send the
				// private key to stdout, into some log.
				return cli.Usagef("-o needs a file name; use -o - or omit -o to write the key to stdout")
			}
			return e.keygen(out)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "create the key file `FILE` (mode 0600, never overwritten); default stdout")
	return cmd
}

func (e *env) keygen(out string) error {
	k, err := sealing.GenerateKey(e.random())
	if err != nil {
		return err
	}
	now := e.clock()
	pub := k.Public().String()
	if out == "" || out == "-" {
		if _, isTerm := terminalFD(e.stdout); isTerm {
			e.warnf("writing a private key to the terminal; use -o FILE to write it to a file")
		} else if f, ok := e.stdout.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0 {
				e.warnf("writing a private key to a file that group or others can read (mode %04o); chmod 600 it, or use -o FILE, which creates it with mode 0600", st.Mode().Perm())
			}
		}
		if _, err := e.stdout.Write(sealing.KeyFileText(k, now)); err != nil {
			return cli.WithHints(fmt.Errorf("writing the key file to stdout: %w", regfile.Cause(err)))
		}
		fmt.Fprintf(e.stderr, "Public key: %s\n", pub)
		return nil
	}
	made, err := makeParents(filepath.Dir(out))
	if err == nil {
		err = sealing.WriteKeyFile(out, k, now)
	}
	if err != nil {
		for i := len(made) - 1; i >= 0; i-- {
			os.Remove(made[i])
		}
		if errors.Is(err, fs.ErrExist) {
			return cli.WithHints(err, "choose another path or remove it first")
		}
		return cli.WithHints(err)
	}
	if _, err := fmt.Fprintln(e.stdout, pub); err != nil {
		return cli.WithHints(fmt.Errorf("wrote the key file %s, but printing its public key failed: %w", out, regfile.Cause(err)),
			"print it with: sealctl pubkey -i "+out)
	}
	return nil
}

// makeParents creates dir and any missing parents with mode 0700 (a key
// file's directory is nobody else's business) and returns those it
// created, outermost first.
func makeParents(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	var made []string
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o700); err != nil {
			return made, err
		}
		made = append(made, missing[i])
	}
	return made, nil
}
