package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"regexp"
	"strings"

	"github.com/tokrun/tokrun/internal/regfile"

	"github.com/spf13/cobra"

	"github.com/tokrun/tokrun/internal/cli"
	"github.com/tokrun/tokrun/proxy"
)

// tokenPrefix starts every token tokproxy makes, so that a leaked token is
// recognisable and greppable.
const tokenPrefix = "tokproxy_"

// validTokenName is the form of a client name: it is written to the audit
// log as the client, so it is short and plain.
var validTokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// tokenNameProblem says what is wrong with a client name ("must ..."),
// or "".
func tokenNameProblem(name string) string {
	if !validTokenName.MatchString(name) {
		return "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
	}
	if _, err := netip.ParseAddr(name); err == nil || name == "unix" {
		return "must not be \"unix\" or an IP address, which name the Unix socket's clients and clients known by address"
	}
	return ""
}

// maxTokenFile bounds the size of a token file read into memory.
const maxTokenFile = 1 << 20

// parseTokenFile reads a token file: one "NAME SHA256HEX" per line, blank
// lines and lines starting with # ignored. Errors carry file:line and
// never quote the line, which may hold a token pasted by mistake.
func parseTokenFile(path string) ([]proxy.Token, error) {
	f, err := regfile.Open(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o022 != 0 {
		// Anyone who can write it can add a client of their own.
		return nil, cli.WithHints(fmt.Errorf("%s is writable by group or others (mode %04o), so they could add a client", path, st.Mode().Perm()),
			"run: chmod go-w "+path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxTokenFile {
		return nil, fmt.Errorf("%s: file is larger than %d bytes", path, maxTokenFile)
	}
	tokens, problems := parseTokens(path, data)
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	if len(tokens) == 0 {
		return nil, cli.WithHints(fmt.Errorf("%s: no client tokens", path),
			"add one with 'tokproxy token NAME --append "+path+"'")
	}
	return tokens, nil
}

func parseTokens(path string, data []byte) ([]proxy.Token, []error) {
	var (
		tokens   []proxy.Token
		problems []error
		names    = map[string]int{}
		digests  = map[[32]byte]int{}
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxTokenFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(format string, args ...any) {
			problems = append(problems, fmt.Errorf("%s:%d: %s", path, n, fmt.Sprintf(format, args...)))
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			bad("want NAME SHA256HEX, got %d fields", len(fields))
			continue
		}
		name, digest := fields[0], fields[1]
		if p := tokenNameProblem(name); p != "" {
			bad("client name %s", p)
			continue
		}
		var t proxy.Token
		if b, err := hex.DecodeString(digest); err != nil || len(b) != len(t.SHA256) {
			bad("client %s: the digest is not a SHA-256 in hex (64 hex digits); the file holds digests of tokens, never tokens", name)
			continue
		} else {
			copy(t.SHA256[:], b)
		}
		t.Name = name
		if first, ok := names[name]; ok {
			bad("client %s is already listed on line %d", name, first)
			continue
		}
		if first, ok := digests[t.SHA256]; ok {
			bad("client %s has the same token digest as line %d", name, first)
			continue
		}
		names[name], digests[t.SHA256] = n, n
		tokens = append(tokens, t)
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, fmt.Errorf("%s: %w", path, err))
	}
	return tokens, problems
}

const tokenLong = `Make a new client token for the TCP listeners of "tokproxy serve".

The token goes to stdout; give it to the client, which sends it on every
request as "Proxy-Authorization: Bearer TOKEN". The line for the proxy's
--token-file, "NAME SHA256HEX", goes to stderr, or with --append is added to
that file (created with mode 0600 if missing). The proxy keeps only the
digest: the token itself is never written to its disk.

NAME identifies the client in the audit log: 1-64 letters, digits, '.', '_'
or '-', and not "unix" or an IP address (which name other clients). Tokens start with "` + tokenPrefix + `" so that a leaked one is easy to find.
A running proxy reads the token file at start only: restart it to add or
revoke a client (delete its line).`

const tokenExample = `  tokproxy token ci --append /etc/tokproxy/tokens.txt >ci.token
  tokproxy token laptop 2>>tokens.txt`

func newTokenCmd(e *env) *cobra.Command {
	var appendFile string
	cmd := &cobra.Command{
		Use:                   "token NAME [--append TOKENFILE]",
		Short:                 "Make a client token for TCP listeners",
		Long:                  tokenLong,
		Example:               tokenExample,
		DisableFlagsInUseLine: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cli.Usagef("token takes one argument, the client name (got %d)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.token(args[0], appendFile)
		},
	}
	cmd.Flags().StringVar(&appendFile, "append", "", "add the NAME SHA256HEX line to `TOKENFILE` instead of printing it to stderr")
	return cmd
}

func (e *env) token(name, appendFile string) error {
	if p := tokenNameProblem(name); p != "" {
		return cli.Usagef("client name %q %s", name, p)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return err
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(token))
	line := name + " " + hex.EncodeToString(sum[:]) + "\n"
	if appendFile == "" {
		fmt.Fprint(e.stdout, token+"\n")
		fmt.Fprint(e.stderr, line)
		return nil
	}
	if err := appendToken(appendFile, name, line); err != nil {
		return err
	}
	fmt.Fprint(e.stdout, token+"\n")
	return nil
}

// appendToken adds line to the token file, refusing a file that does not
// parse or already lists name.
func appendToken(path, name, line string) error {
	data, err := regfile.ReadFile(path, maxTokenFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tokens, problems := parseTokens(path, data)
	if len(problems) > 0 {
		return cli.WithHints(problems[0], "fix "+path+" first; tokproxy serve would refuse it")
	}
	for _, t := range tokens {
		if t.Name == name {
			return cli.WithHints(fmt.Errorf("%s already lists client %s", path, name), "delete its line to revoke the old token, then run this again")
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		line = "\n" + line
	}
	f, err := regfile.Open(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
