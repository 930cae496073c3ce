package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tokrun/tokrun/internal/regfile"

	"github.com/spf13/cobra"

	"github.com/tokrun/tokrun/internal/cli"
	"github.com/tokrun/tokrun/internal/match"
	"github.com/tokrun/tokrun/sealing"
)

const sealLong = `Seal a secret value to a public key, bound to where it may be used.

The value is read from --in FILE or stdin, never from the command line. On a
terminal, sealctl prompts for it and reads it without echo. Exactly one
trailing newline ("\n" or "\r\n") is removed; the value must then be one line
of printable text without leading or trailing spaces, 8 to 4096 bytes
(the proxy cannot scrub a shorter value from responses safely).

Only the token is printed on stdout. A summary naming the secret and its
fingerprint (fp:..., a short public hash of the value) goes to stderr; the
value itself is never printed.

The binding is sealed with the value and cannot be changed without the
private key; a proxy policy can only narrow it:

  --to PUBKEY / --to-file FILE
      the public key to seal to (tokrunpub1..., from 'sealctl keygen' or
      'sealctl pubkey'). A --to-file holds exactly one public key; blank
      lines and lines starting with "#" are ignored. Exactly one of the two.
  --name NAME
      how policies and logs refer to the secret: letters, digits, '-', '_'
      and '.', at most 64 characters.
  --host HOST
      a host the secret may be sent to; repeat or separate with commas.
      "api.example.com" matches that name only; "*.example.com" matches its
      subdomains at any depth but not example.com itself. IP addresses are
      allowed; ports are not (the proxy decides those).
  --header HEADER
      the request header that carries the secret, e.g. Authorization or
      X-Api-Key. Hop-by-hop, framing and routing headers (Connection, Host,
      Content-Length, Transfer-Encoding, ...), Proxy-* and X-Tokrun-* are
      refused.
  --format FORMAT
      the header value, with exactly one {} standing for the secret, e.g.
      'Bearer {}' or '{}'.
  --method METHOD
      limit to these methods, in upper case; repeat or separate with
      commas, default any:
      %s.
  --path GLOB
      limit to these request paths: "*" matches within one segment, "**"
      across segments, e.g. /v1/chat/**. Repeat it for several paths (it is
      not split at commas: a comma is a path character); default any.
  --expires WHEN
      stop working at this time; default never.

%s`

const sealExample = `  # Seal an API key read from a file (a trailing newline is removed).
  sealctl seal --to-file key.pub --name openai --host api.openai.com \
    --header Authorization --format 'Bearer {}' --in openai.txt > openai.sealed

  # Prompt for the value without echo; limit methods, paths and lifetime.
  sealctl seal --to tokrunpub1... --name github --host api.github.com \
    --header Authorization --format 'token {}' \
    --method GET --method POST --path '/repos/**' --expires 90d

  # Pipe the value from a password manager.
  pass show stripe/live | sealctl seal --to-file key.pub --name stripe \
    --host api.stripe.com --header Authorization --format 'Bearer {}'`

// sealOptions are the seal command's flags.
type sealOptions struct {
	to, toFile            string
	name, header, format  string
	hosts, methods, paths []string
	expires               string
	in                    string
}

func newSealCmd(e *env) *cobra.Command {
	var o sealOptions
	cmd := &cobra.Command{
		Use:     "seal (--to PUBKEY | --to-file FILE) --name NAME --host HOST --header HEADER --format FORMAT",
		Short:   "Seal a secret to a public key",
		Long:    fmt.Sprintf(sealLong, strings.Join(match.Methods(), ", "), expiresHelp),
		Example: sealExample,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				// Never echo the arguments: one may be the secret.
				return &cli.Error{
					Err:   fmt.Errorf("seal takes no arguments (got %d); the secret is read from stdin or --in FILE", len(args)),
					Hints: []string{"a secret typed on the command line may be in your shell history; consider rotating it"},
					Usage: true,
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.seal(cmd, &o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.to, "to", "", "seal to the public key `PUBKEY` (tokrunpub1...)")
	f.StringVar(&o.toFile, "to-file", "", "seal to the one public key in `FILE`")
	f.StringVar(&o.name, "name", "", "the secret's `NAME` in policies and logs (required)")
	f.StringSliceVar(&o.hosts, "host", nil, "a `HOST` or *.suffix the secret may be sent to (required; repeatable, comma-separated)")
	f.StringVar(&o.header, "header", "", "the `HEADER` that carries the secret (required)")
	f.StringVar(&o.format, "format", "", "the header value `FORMAT`, with one {} for the secret (required)")
	f.StringSliceVar(&o.methods, "method", nil, "allow only `METHOD` (repeatable; default any)")
	f.StringArrayVar(&o.paths, "path", nil, "allow only request paths matching `GLOB` (repeatable; default any)")
	f.StringVar(&o.expires, "expires", "", "stop working at `WHEN`: 720h, 90d, 2027-01-31 or RFC 3339 (default never)")
	f.StringVar(&o.in, "in", "", "read the secret from `FILE` (\"-\" or absent: stdin or a prompt)")
	return cmd
}

func (e *env) seal(cmd *cobra.Command, o *sealOptions) error {
	// Everything the command line decides is checked before the secret is
	// read, so nobody types a secret only to learn of a typo in a flag.
	flags := cmd.Flags()
	switch {
	case flags.Changed("to") && flags.Changed("to-file"):
		return cli.Usagef("--to and --to-file are mutually exclusive")
	case !flags.Changed("to") && !flags.Changed("to-file"):
		return cli.Usagef("one of --to or --to-file is required")
	}
	var missing []string
	for _, name := range []string{"name", "host", "header", "format"} {
		if !flags.Changed(name) {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		return cli.Usagef("missing required flag %s", strings.Join(missing, ", "))
	}
	// An empty --method or --path (say from an unset shell variable) must
	// not quietly mean "any".
	for name, v := range map[string][]string{"method": o.methods, "host": o.hosts} {
		if flags.Changed(name) && len(v) == 0 {
			return cli.Usagef("--%s is empty; omit it to allow any", name)
		}
	}

	var to sealing.PublicKey
	var err error
	if flags.Changed("to") {
		to, err = parseRecipient(o.to)
	} else {
		to, err = readRecipientFile(o.toFile)
	}
	if err != nil {
		return err
	}

	now := e.clock()
	b := sealing.Binding{
		Name: o.name, Hosts: o.hosts, Header: o.header, Format: o.format,
		Methods: o.methods, Paths: o.paths,
	}
	if o.expires != "" {
		if b.NotAfter, err = parseExpires(o.expires, now); err != nil {
			return &cli.Error{Err: err, Usage: true}
		}
	}
	canon, err := b.Canonical()
	if err != nil {
		return cli.WithHints(err, bindingHint(err))
	}
	for _, p := range o.paths {
		if strings.Contains(p, ",") {
			e.warnf("--path %q holds a comma: it is one path, not a list; repeat --path for several", p)
		}
	}

	value, err := e.readSecret(o.in, o.name)
	if err != nil {
		return err
	}
	tok, err := sealing.Seal(e.random(), to, b, value, now)
	if err != nil {
		if errors.Is(err, sealing.ErrBinding) {
			// The binding passed above, so this is about the value.
			return cli.WithHints(err, fmt.Sprintf("the value must be %d to %d bytes of one line of printable text without leading or trailing whitespace; one trailing newline is removed", sealing.MinValueSize, sealing.MaxValueSize))
		}
		return err
	}
	fp := sealing.Fingerprint(value)
	if _, err := fmt.Fprintln(e.stdout, tok); err != nil {
		return err
	}
	expiry := "never expires"
	if !b.NotAfter.IsZero() {
		expiry = "expires " + b.NotAfter.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	fmt.Fprintf(e.stderr, "sealctl: sealed secret %s (%s) to key id %s for hosts %s; %s\n",
		o.name, fp, to.ID(), strings.Join(canon.Hosts, ", "), expiry)
	return nil
}

func bindingHint(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "methods["):
		return "methods are upper case, one of " + strings.Join(match.Methods(), ", ")
	case strings.Contains(msg, "format:"):
		return "a format is the header value with exactly one {} for the secret, e.g. 'Bearer {}'"
	case strings.Contains(msg, "header:"):
		return "use the header the API expects, e.g. Authorization or X-Api-Key"
	}
	return "run 'sealctl seal --help' for what names, hosts, headers, formats, methods and paths are accepted"
}

const recipientHint = "a public key starts with tokrunpub1; print it with 'sealctl pubkey -i KEYFILE'"

// parseRecipient parses a --to value. It never quotes the value: a private
// key pasted by mistake must not end up in logs.
func parseRecipient(s string) (sealing.PublicKey, error) {
	if looksPrivate(s) {
		return sealing.PublicKey{}, cli.WithHints(
			errors.New("--to: this is a private key, not a public key; keep it secret"),
			"seal to its public key, printed by 'sealctl pubkey -i KEYFILE'")
	}
	k, err := sealing.ParsePublicKey(strings.TrimSpace(s))
	if err != nil {
		return sealing.PublicKey{}, cli.WithHints(fmt.Errorf("--to: %w", err), recipientHint)
	}
	return k, nil
}

// maxRecipientFile bounds a --to-file.
const maxRecipientFile = 64 << 10

// readRecipientFile reads the one public key in path. Errors carry the
// line number, never the line.
func readRecipientFile(path string) (sealing.PublicKey, error) {
	f, err := regfile.Open(path, os.O_RDONLY, 0)
	if err != nil {
		// Not quoted: a secret given to --to-file by mistake would be.
		return sealing.PublicKey{}, fmt.Errorf("cannot open the --to-file file: %w", regfile.Cause(err))
	}
	defer f.Close()
	data, err := readAllLimit(f, maxRecipientFile, path)
	if err != nil {
		return sealing.PublicKey{}, err
	}
	var keys []sealing.PublicKey
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if looksPrivate(line) {
			return sealing.PublicKey{}, cli.WithHints(
				fmt.Errorf("%s:%d: this is a private key file, not a public key", path, i+1),
				"write its public key with 'sealctl pubkey -i "+path+" > key.pub' and use --to-file key.pub")
		}
		k, err := sealing.ParsePublicKey(line)
		if err != nil {
			return sealing.PublicKey{}, cli.WithHints(fmt.Errorf("%s:%d: %w", path, i+1, err), recipientHint)
		}
		keys = append(keys, k)
	}
	if len(keys) != 1 {
		return sealing.PublicKey{}, cli.WithHints(
			fmt.Errorf("%s: want exactly one public key, found %d", path, len(keys)),
			"a --to-file holds one tokrunpub1... line; '#' lines are comments")
	}
	return keys[0], nil
}

func looksPrivate(s string) bool {
	return strings.HasPrefix(strings.ToUpper(strings.TrimSpace(s)), "TOKRUN-SECRET-KEY-")
}
