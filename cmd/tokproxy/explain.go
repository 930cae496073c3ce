package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tokrun/tokrun/internal/addrguard"
	"github.com/tokrun/tokrun/internal/cli"
	"github.com/tokrun/tokrun/internal/match"
	"github.com/tokrun/tokrun/policy"
	"github.com/tokrun/tokrun/proxy"
)

const explainLong = `Show the decision the policy makes for one request, and why.

METHOD is an HTTP method in upper case; URL is the full request URL, with
scheme (https or http), host, optional port, path and optional query (the
query is not part of the decision). The path is taken exactly as written
and normalised the way the proxy does: dot-segments and repeated slashes
are removed and unreserved characters decoded, so /v1/../admin is decided
as /admin. Ambiguous paths, such as one with an encoded slash (%2F), are
denied as invalid_path.

The output, on stdout:

  decision: ALLOW or DENY
  reason: a machine-readable reason (see below)
  rule: the allow rule that matched or the deny rule that refused, with
        its line in the policy file (absent when no rule decided)
  request: the canonical request the decision was made on
  explanation: a sentence saying why, and for a denial what is missing
  inject: for each secret an allowed request carries, its name, the
        header it goes in and its fingerprint, never its value

--json prints the decision as one JSON object instead, with the fields
allow, reason, scheme, host, port, method, path and explanation, and when
they apply rule, inject (a list of {secret, header, fingerprint}) and
unsafe_allow_private_network (left out when empty or false).

{{reasons}}
An allowed request to an IP literal that is not public (loopback, private,
link-local, metadata...) is shown as denied with reason private_address,
as the proxy refuses to connect there, unless the rule sets
unsafe_allow_private_network.

Exit status: 0 when the request is allowed, 3 when it is denied, 1 on any
error (an invalid policy or key file, a URL that cannot be parsed).`

const explainExample = `  tokproxy policy explain policy.yaml --key key.txt POST https://api.openai.com/v1/chat/completions
  tokproxy policy explain policy.yaml --key key.txt --json GET 'https://api.openai.com/v1/models?limit=5'
  if tokproxy policy explain policy.yaml GET https://pypi.org/simple/ >/dev/null; then echo allowed; fi`

func newExplainCmd(e *env) *cobra.Command {
	var keyFile string
	var asJSON bool
	var reasons []string
	for _, r := range policy.Reasons() {
		reasons = append(reasons, string(r))
	}
	cmd := &cobra.Command{
		Use:     "explain FILE [--key KEYFILE] [--json] METHOD URL",
		Short:   "Show the decision a policy makes for one request",
		Long:    strings.Replace(explainLong, "{{reasons}}", wrap("Reasons: "+strings.Join(reasons, ", ")+".", 75), 1),
		Example: explainExample,
		// The flags are in Use already.
		DisableFlagsInUseLine: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 3 {
				return cli.Usagef("explain takes three arguments, the policy file, a method and a URL (got %d)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.explain(args[0], keyFile, args[1], args[2], asJSON)
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", keyFlagUsage)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the decision as one JSON object instead of text")
	return cmd
}

func (e *env) explain(file, keyFile, method, rawURL string, asJSON bool) error {
	req, err := parseRequest(method, rawURL)
	if err != nil {
		return err
	}
	p, err := e.loadPolicy(file, keyFile)
	if err != nil {
		return err
	}
	d := guardLiteral(p.Decide(req))
	if asJSON {
		out, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return cli.WithHints(err)
		}
		fmt.Fprintf(e.stdout, "%s\n", out)
	} else {
		printDecision(e.stdout, p, d)
	}
	if !d.Allow {
		if up := strings.ToUpper(method); up != method && slices.Contains(match.Methods(), up) {
			fmt.Fprintf(e.stderr, "tokproxy: hint: methods are case-sensitive, as in HTTP: did you mean %s?\n", up)
		}
		return exitStatus(exitDenied)
	}
	return nil
}

// guardLiteral denies an allowed request to an IP literal that the proxy's
// address guard refuses: serve answers it 403 private_address, so explain
// must not say ALLOW. (A host name's addresses are known only when the
// proxy resolves it.)
func guardLiteral(d policy.Decision) policy.Decision {
	a, err := netip.ParseAddr(strings.Trim(d.Host, "[]"))
	if !d.Allow || d.AllowPrivate || err != nil || addrguard.Public(a) {
		return d
	}
	d.Allow, d.Reason, d.Inject = false, proxy.ReasonPrivateAddress, nil
	d.Explanation = fmt.Sprintf("rule %s allows the request, but %s is not a public address: the proxy refuses to connect to it unless the rule sets unsafe_allow_private_network: true", d.Rule, d.Host)
	return d
}

const urlHint = "write the full URL with scheme and host, like https://api.openai.com/v1/chat/completions"

// parseRequest turns a method and URL into the request the policy
// decides. The host and port come from url.Parse; the path is the text
// between the authority and "?" or "#" exactly as written, because
// url.Parse decodes it and the policy must see what a client would send.
// The URL is not quoted in errors: it may hold a password.
func parseRequest(method, rawURL string) (policy.Request, error) {
	_, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return policy.Request{}, cli.WithHints(errors.New("URL does not start with https:// or http://"), urlHint)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return policy.Request{}, cli.WithHints(fmt.Errorf("cannot parse URL: %v", err), urlHint)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return policy.Request{}, cli.WithHints(fmt.Errorf("URL scheme %q is not supported; the proxy handles https and http", u.Scheme), urlHint)
	case u.Host == "" || u.Hostname() == "":
		return policy.Request{}, cli.WithHints(errors.New("URL has no host"), urlHint)
	case u.User != nil:
		return policy.Request{}, cli.WithHints(errors.New("URL holds a user name or password"),
			"leave credentials out of the URL; the proxy injects them from sealed secrets")
	}
	port := 0
	if s := u.Port(); s != "" {
		port, err = strconv.Atoi(s)
		if err != nil || port < 1 || port > 65535 {
			return policy.Request{}, cli.WithHints(fmt.Errorf("URL port %s is out of range 1-65535", s), urlHint)
		}
	}
	// url.Parse found a host after "://", so rest is the authority
	// followed by the path, query and fragment.
	path := ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		path, _, _ = strings.Cut(rest[i:], "#")
		path, _, _ = strings.Cut(path, "?")
	}
	if path == "" {
		path = "/"
	}
	return policy.Request{Scheme: u.Scheme, Host: u.Hostname(), Port: port, Method: method, Path: path}, nil
}

// printDecision writes d as text. It prints secrets by name, header and
// fingerprint only.
func printDecision(w io.Writer, p *policy.Policy, d policy.Decision) {
	verdict := "DENY"
	if d.Allow {
		verdict = "ALLOW"
	}
	fmt.Fprintf(w, "decision: %s\n", verdict)
	fmt.Fprintf(w, "reason: %s\n", d.Reason)
	if d.Rule != "" {
		fmt.Fprintf(w, "rule: %s\n", ruleRef(p, d.Rule))
	}
	fmt.Fprintf(w, "request: %s %s://%s%s\n", d.Method, d.Scheme, net.JoinHostPort(d.Host, strconv.Itoa(d.Port)), d.Path)
	fmt.Fprintf(w, "explanation: %s\n", d.Explanation)
	for _, in := range d.Inject {
		fmt.Fprintf(w, "inject: %s -> header %s (%s)\n", in.Name, in.Header, in.Fingerprint)
	}
	if d.AllowPrivate {
		fmt.Fprintf(w, "private network: allowed by the rule (unsafe_allow_private_network)\n")
	}
}

// ruleRef names a rule with its place in the policy file: "name
// (file:line)".
func ruleRef(p *policy.Policy, name string) string {
	for _, r := range append(p.Rules(), p.DenyRules()...) {
		if r.Name == name {
			return fmt.Sprintf("%s (%s:%d)", name, p.File(), r.Line)
		}
	}
	return name
}

// wrap breaks text into lines of at most width bytes at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(text) {
		if i > 0 && n+1+len(w) > width {
			b.WriteByte('\n')
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
