package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokrun/tokrun/internal/cli"
	"github.com/tokrun/tokrun/sealing"
)

const inspectLong = `Show what a sealed token holds, never its value.

The token is the argument, or "-" to read it from stdin (surrounding
whitespace is ignored). Without a key file, only the public envelope is
shown: format version, the id of the key it is sealed to, and its size.

With -i KEYFILE, the token is also opened and its sealed binding is shown:
name, hosts, header, format, methods and paths ("any" when not limited),
when it was sealed, when it stops working ("never", or marked "(EXPIRED)"
once past) and the value's fingerprint (fp:..., a short public hash to tell
secrets apart). Opening fails if the token was sealed to another key or was
modified in any way.

--json prints one JSON object with stable field names: version, key_id,
token_bytes, ciphertext_bytes and, with -i, secret: {name, hosts, header,
format, methods, paths, sealed_at, not_after, expired, fingerprint}.
methods and paths are [] when not limited; not_after is null for never.`

const inspectExample = `  sealctl inspect tokrun.sealed.v1.0123456789abcdef.AAAA...
  sealctl inspect -i key.txt - < openai.sealed
  sealctl inspect -i key.txt --json - < openai.sealed | jq -r .secret.not_after`

// inspectReport is the --json output; its field names are a contract.
type inspectReport struct {
	Version         int           `json:"version"`
	KeyID           string        `json:"key_id"`
	TokenBytes      int           `json:"token_bytes"`
	CiphertextBytes int           `json:"ciphertext_bytes"`
	Secret          *secretReport `json:"secret,omitempty"`
}

type secretReport struct {
	Name        string     `json:"name"`
	Hosts       []string   `json:"hosts"`
	Header      string     `json:"header"`
	Format      string     `json:"format"`
	Methods     []string   `json:"methods"` // empty: any
	Paths       []string   `json:"paths"`   // empty: any
	SealedAt    time.Time  `json:"sealed_at"`
	NotAfter    *time.Time `json:"not_after"` // nil: never
	Expired     bool       `json:"expired"`
	Fingerprint string     `json:"fingerprint"`
}

func newInspectCmd(e *env) *cobra.Command {
	var keyFile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "inspect [-i KEYFILE] [--json] TOKEN|-",
		Short:   "Show a sealed token's key id and, with its key, its binding",
		Long:    inspectLong,
		Example: inspectExample,
		// Use lists the flags.
		DisableFlagsInUseLine: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cli.Usagef("inspect takes one argument, a sealed token or \"-\" for stdin (got %d)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.inspect(args[0], keyFile, asJSON)
		},
	}
	cmd.Flags().StringVarP(&keyFile, "identity", "i", "", "open the token with the key file `KEYFILE` (\"-\": stdin)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object instead of text")
	return cmd
}

func (e *env) inspect(arg, keyFile string, asJSON bool) error {
	if arg == "-" && keyFile == "-" {
		return cli.Usagef("the token and the key file cannot both be read from stdin")
	}
	token := arg
	if arg == "-" {
		data, err := readAllLimit(e.stdin, 2*sealing.MaxTokenSize, "the token on stdin")
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(data))
	}
	envelope, err := sealing.ParseEnvelope(token)
	if err != nil {
		if st, serr := os.Stat(arg); arg != "-" && serr == nil && st.Mode().IsRegular() {
			// A file name, not a token: named back only because it is one.
			return cli.WithHints(err, fmt.Sprintf("%s is a file; to inspect the token it holds, run: sealctl inspect - < %s", arg, arg))
		}
		return cli.WithHints(err, "a sealed token looks like tokrun.sealed.v1.<key id>.<data>; check that it was copied whole")
	}
	r := &inspectReport{
		Version:         envelope.Version,
		KeyID:           envelope.KeyID.String(),
		TokenBytes:      len(token),
		CiphertextBytes: len(envelope.Ciphertext),
	}
	if keyFile != "" {
		ring, err := e.loadKeyRing(keyFile)
		if err != nil {
			return err
		}
		s, err := ring.Open(token, "")
		switch {
		case errors.Is(err, sealing.ErrUnknownKey):
			return cli.WithHints(err, "use the key file whose \"# key id:\" comment reads "+envelope.KeyID.String())
		case err != nil:
			return cli.WithHints(err, "the token was changed after sealing or was not made by sealctl; seal the secret again")
		}
		r.Secret = newSecretReport(s, e.clock())
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return r.writeText(e.stdout)
}

func newSecretReport(s *sealing.Secret, now time.Time) *secretReport {
	b := s.Binding()
	r := &secretReport{
		Name:        b.Name,
		Hosts:       b.Hosts,
		Header:      b.Header,
		Format:      b.Format,
		Methods:     b.Methods,
		Paths:       b.Paths,
		SealedAt:    b.SealedAt.UTC(),
		Fingerprint: s.Fingerprint(),
	}
	if r.Methods == nil {
		r.Methods = []string{}
	}
	if r.Paths == nil {
		r.Paths = []string{}
	}
	if !b.NotAfter.IsZero() {
		t := b.NotAfter.UTC()
		r.NotAfter = &t
		r.Expired = now.After(t)
	}
	return r
}

func (r *inspectReport) writeText(w io.Writer) error {
	rows := [][2]string{
		{"version", strconv.Itoa(r.Version)},
		{"key id", r.KeyID},
		{"token size", fmt.Sprintf("%d bytes", r.TokenBytes)},
		{"ciphertext size", fmt.Sprintf("%d bytes", r.CiphertextBytes)},
	}
	if s := r.Secret; s != nil {
		notAfter := "never"
		if s.NotAfter != nil {
			notAfter = s.NotAfter.Format(time.RFC3339)
			if s.Expired {
				notAfter += " (EXPIRED)"
			}
		}
		rows = append(rows,
			[2]string{"name", s.Name},
			[2]string{"hosts", strings.Join(s.Hosts, ", ")},
			[2]string{"header", s.Header},
			[2]string{"format", s.Format},
			[2]string{"methods", orAny(s.Methods)},
			[2]string{"paths", orAny(s.Paths)},
			[2]string{"sealed at", s.SealedAt.Format(time.RFC3339)},
			[2]string{"not after", notAfter},
			[2]string{"fingerprint", s.Fingerprint},
		)
	}
	width := 0
	for _, row := range rows {
		width = max(width, len(row[0])+1)
	}
	var b strings.Builder
	for _, row := range rows {
		fmt.Fprintf(&b, "%-*s %s\n", width, row[0]+":", row[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orAny(list []string) string {
	if len(list) == 0 {
		return "any"
	}
	return strings.Join(list, ", ")
}
