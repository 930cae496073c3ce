package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/tokrun/tokrun/internal/addrguard"
	"github.com/tokrun/tokrun/internal/match"
	"github.com/tokrun/tokrun/internal/regfile"
	"github.com/tokrun/tokrun/internal/scrub"
	"github.com/tokrun/tokrun/sealing"
)

// minScrubbable is the shortest secret the proxy can scrub from responses.
const minScrubbable = 8

// maxPolicySize bounds a policy file.
const maxPolicySize = 4 << 20

// Options configure loading. The zero value loads policies without
// secrets.
type Options struct {
	// Keys opens the sealed secrets. A policy with secrets fails to load
	// without it.
	Keys *sealing.KeyRing
	// Now is the clock for expiry checks. If nil, time.Now is used.
	Now func() time.Time
	// Allow adds a credential-free allow rule for each entry, the
	// command line's --allow: "HOST" or "HOST:PORT", where HOST is a host
	// name, an IPv4 address, an IPv6 address in brackets ("[2001:db8::1]:8443")
	// or a "*.suffix" wildcard, checked and normalised exactly as a rule's
	// host. Each rule allows https to that port (443 if none) with any
	// method and any path; it injects nothing and never permits private
	// addresses. The rules come after the file's rules, so a file rule
	// that injects a secret for the same host still matches first, and
	// the file's deny rules still win over them. They are named "allow-1",
	// "allow-2", ... skipping names the file already uses, and appear in
	// [Policy.Rules] with Line 0. A bad entry is reported as a Problem of
	// the file "--allow" (see [CheckAllow]).
	//
	// With Allow set, or in learn mode, the file may omit "rules", so
	// Parse("(no policy)", []byte("version: 1\n"), opts) is a policy that
	// allows only these hosts.
	Allow []string
	// Learn turns on learn mode, for discovering what a command needs.
	// Requests are decided as usual (deny rules first, then allow rules),
	// but a request that no allow rule matches is allowed under the
	// catch-all rule [LearnRule] instead of being denied. Learn mode
	// injects no secret, ever: a matched rule's inject list is ignored.
	// It never lifts the private-address guard either: Decision.AllowPrivate
	// is set only when a file rule with unsafe_allow_private_network
	// matched, never under LearnRule. Malformed requests (a bad scheme,
	// host, method or path) and requests a deny rule refuses are still
	// denied. Feed the decisions to a [Learner] to write a policy.
	Learn bool
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Secret is a sealed secret as the policy names it.
type Secret struct {
	// Name is the policy's name for the secret (equal to the sealed name).
	Name string
	// Env, if set, is the environment variable through which tokrun gives
	// the sandbox a placeholder for this secret.
	Env string
	// Sealed is the opened secret. Its value never prints.
	Sealed *sealing.Secret
	// Placeholders are fixed stand-ins for the secret that untrusted code
	// may hold. Seen on their way to a host outside the secret's sealed
	// binding, they trip the proxy's tripwire. tokrun adds its own random
	// per-run placeholders to these.
	Placeholders []string

	// sealed and sealedFile are the secret's source as the policy wrote
	// it: the sealed token (ciphertext) or the sealed_file path. A Learner
	// writes them back; neither holds the secret's value.
	sealed, sealedFile string
	// header and fingerprint are Sealed's, kept for Decide, which
	// would otherwise work them out for every request.
	header, fingerprint string
}

var (
	nameRE        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	placeholderRE = regexp.MustCompile(`^[A-Za-z0-9_-]{12,128}$`)
	envRE         = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// CheckPlaceholder reports whether p can be a placeholder: 12 to 128
// letters, digits, '_' or '-', so that it survives URLs, headers and JSON
// unchanged and can be scrubbed into responses.
func CheckPlaceholder(p string) error {
	if !placeholderRE.MatchString(p) {
		return errors.New("a placeholder is 12 to 128 letters, digits, '_' or '-'")
	}
	return nil
}

// reservedEnv are variables tokrun sets itself; a placeholder may not
// replace them.
var reservedEnv = []string{
	"PATH", "HOME", "LANG", "TERM", "USER", "SHELL", "PWD",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
	"NODE_EXTRA_CA_CERTS", "NODE_USE_ENV_PROXY", "GIT_SSL_CAINFO", "PIP_CERT", "AWS_CA_BUNDLE",
	"LD_PRELOAD", "LD_LIBRARY_PATH",
}

// Load reads and validates the policy file at path. Relative sealed_file
// paths are resolved against the policy file's directory. On error the
// result is Errors listing every problem with file, line and field.
func Load(path string, opts Options) (*Policy, error) {
	f, err := regfile.Open(path, os.O_RDONLY, 0)
	if err != nil {
		msg := regfile.Cause(err).Error()
		if strings.HasSuffix(msg, "not a regular file") {
			msg = "not a regular file"
		}
		return nil, Errors{{File: path, Msg: msg}}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, Errors{{File: path, Msg: regfile.Cause(err).Error()}}
	}
	if st.Mode().Perm()&0o002 != 0 {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("policy file is writable by anyone (mode %04o); run: chmod o-w %s", st.Mode().Perm(), path)}}
	}
	if dir, mode, open := openDir(path); open {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("the policy's directory %s is writable by anyone (mode %04o), so anyone could rename another policy over it; run: chmod o-w %s, or set its sticky bit", dir, mode, dir)}}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPolicySize+1))
	if err != nil {
		return nil, Errors{{File: path, Msg: regfile.Cause(err).Error()}}
	}
	return Parse(path, data, opts)
}

// openDir reports whether the directory holding path is writable by
// anyone without the sticky bit: anyone could then replace the file by
// renaming another over it, whatever the file's own mode.
func openDir(path string) (dir string, mode os.FileMode, open bool) {
	dir = filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return dir, 0, false // the file itself was opened; nothing to add
	}
	return dir, st.Mode().Perm(), st.Mode().Perm()&0o002 != 0 && st.Mode()&os.ModeSticky == 0
}

// Parse validates policy text. name is the file name used in errors and
// to resolve relative sealed_file paths.
func Parse(name string, data []byte, opts Options) (*Policy, error) {
	p := &parser{file: name}
	allow, allowProblems := allowRules(opts.Allow)
	if len(data) > maxPolicySize {
		p.errorf(nil, "", "policy file larger than %d bytes", maxPolicySize)
		return nil, append(p.problems, allowProblems...)
	}
	if line, msg := badText(data); line > 0 {
		p.problems = append(p.problems, Problem{File: name, Line: line, Msg: msg})
		return nil, append(p.problems, allowProblems...)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			p.errorf(nil, "", "empty policy; it needs at least \"version: 1\"")
		} else {
			p.problems = append(p.problems, yamlProblem(name, data, err))
		}
		return nil, append(p.problems, allowProblems...)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		p.errorf(&extra, "", "a policy file holds exactly one YAML document")
		return nil, append(p.problems, allowProblems...)
	}
	b := &builder{parser: p, opts: opts, dir: filepath.Dir(name), pol: &Policy{file: name, secrets: map[string]*Secret{}, now: opts.Now, learn: opts.Learn}}
	b.document(doc.Content[0])
	if len(p.problems) > 0 || len(allowProblems) > 0 {
		slices.SortStableFunc(p.problems, func(a, b Problem) int { return a.Line - b.Line })
		return nil, append(p.problems, allowProblems...)
	}
	nameAllowRules(allow, b.names)
	b.pol.rules = append(b.pol.rules, allow...)
	b.pol.warnings = p.warnings
	b.pol.hash = policyHash(data, opts)
	b.pol.buildIndex()
	return b.pol, nil
}

// policyHash hashes the policy text and, when there are any, the
// options that change decisions: --allow entries and learn mode.
func policyHash(data []byte, opts Options) string {
	h := sha256.New()
	h.Write(data)
	if len(opts.Allow) > 0 || opts.Learn {
		fmt.Fprintf(h, "\x00tokrun options\x00learn=%t\x00", opts.Learn)
		for _, a := range opts.Allow {
			fmt.Fprintf(h, "allow=%q\x00", a)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// badText finds the first character of the policy text that the YAML
// parser would read otherwise than an editor shows it, or not at all, and
// returns its line and what is wrong; line 0 when there is none. Line and
// paragraph separators and NEL are line breaks to the parser and not to
// editors: a key after one sits on the same line on screen.
func badText(data []byte) (line int, msg string) {
	line = 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return line, "not valid UTF-8; save the policy as UTF-8"
		case r == '\n':
			line++
		case r == '\u2028' || r == '\u2029' || r == '\u0085':
			return line, fmt.Sprintf("character U+%04X, which YAML reads as a line break and editors do not; remove it", r)
		case r < 0x20 && r != '\t' && r != '\r', r >= 0x7f && r <= 0x9f:
			return line, fmt.Sprintf("control character U+%04X; remove it", r)
		}
		i += size
	}
	return 0, ""
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlProblem turns a yaml syntax error in data into a Problem with the
// line it is on.
func yamlProblem(file string, data []byte, err error) Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: syntaxErrorLine(data, line), Msg: "YAML syntax: " + m[2]}
	}
	return Problem{File: file, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

// syntaxSearchBudget bounds the bytes syntaxErrorLine parses again.
const syntaxSearchBudget = 8 << 20

// syntaxErrorLine finds the line a syntax error is on. yaml.v3 reports
// the line where the enclosing block starts (a key indented wrongly on
// line 6 is reported at the "rules:" of line 2). The error is on the
// line after the longest run of whole lines that still parses: every
// longer run fails, and the error is in the line that makes it fail.
// If finding it would take parsing more than syntaxSearchBudget bytes,
// the reported line is kept.
func syntaxErrorLine(data []byte, reported int) int {
	var ends []int // ends[k] is the length of the first k+1 lines
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	// The error is on line reported or after it: the block starts there.
	first := max(reported-1, 0)
	budget := syntaxSearchBudget
	for k := len(ends) - 1; k > first; k-- { // do the first k lines parse?
		if budget -= ends[k-1]; budget < 0 {
			break
		}
		var n yaml.Node
		if err := yaml.NewDecoder(bytes.NewReader(data[:ends[k-1]])).Decode(&n); err == nil || err == io.EOF {
			return k + 1
		}
	}
	return max(reported, 1)
}

type builder struct {
	*parser
	opts Options
	dir  string
	pol  *Policy
	// secretNodes remembers where each secret was declared.
	secretNodes map[string]*yaml.Node
	// placeholders maps each fixed placeholder to its secret.
	placeholders map[string]string
	// fixed lists the fixed placeholders where they were declared.
	fixed []declared
	// names maps each rule name to the line it was declared on.
	names map[string]int
}

func (b *builder) document(n *yaml.Node) {
	var version *yaml.Node
	var rules, deny *yaml.Node
	b.mapping(n, "", []field{
		{"version", true, func(v *yaml.Node, path string) { version = v }},
		{"secrets", false, func(v *yaml.Node, path string) { b.secrets(v, path) }},
		{"rules", len(b.opts.Allow) == 0 && !b.opts.Learn, func(v *yaml.Node, path string) { rules = v }},
		{"deny", false, func(v *yaml.Node, path string) { deny = v }},
	})
	if version != nil {
		if v, ok := b.integer(version, "version"); ok && v != 1 {
			b.errorf(version, "version", "unsupported version %d; this build reads version 1", v)
		}
	}
	names := map[string]int{}
	b.names = names
	if rules != nil {
		b.pol.rules = b.ruleList(rules, "rules", false, names)
	}
	if deny != nil {
		b.pol.deny = b.ruleList(deny, "deny", true, names)
	}
}

func (b *builder) secrets(n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		b.errorf(n, path, "expected a mapping of secret names, found %s", kindName(n))
		return
	}
	b.secretNodes = map[string]*yaml.Node{}
	envs := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		sp := join(path, name)
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			b.errorf(k, path, "keys must be plain strings (merge keys and aliases are not supported)")
			continue
		}
		if !nameRE.MatchString(name) {
			b.errorf(k, sp, "secret names may contain only letters, digits, '.', '_' and '-' (at most 64)")
			continue
		}
		if b.secretNodes[name] != nil {
			b.errorf(k, sp, "duplicate secret")
			continue
		}
		b.secretNodes[name] = k
		s := &Secret{Name: name}
		var token string
		var tokenNode *yaml.Node
		var sources int
		b.mapping(v, sp, []field{
			{"sealed", false, func(v *yaml.Node, fp string) {
				sources++
				if t, ok := b.str(v, fp); ok {
					token, tokenNode = strings.TrimSpace(t), v
					s.sealed = token
					if token == "" {
						b.errorf(v, fp, "empty; give the token 'sealctl seal' printed")
					}
				}
			}},
			{"sealed_file", false, func(v *yaml.Node, fp string) {
				sources++
				if f, ok := b.str(v, fp); ok && strings.TrimSpace(f) == "" {
					b.errorf(v, fp, "empty; give the path of a file that holds the token 'sealctl seal' printed")
				} else if ok {
					token, tokenNode = b.sealedFile(v, fp, f), v
					s.sealedFile = f
				}
			}},
			{"placeholders", false, func(v *yaml.Node, fp string) {
				b.strList(v, fp, func(ph string, n *yaml.Node, ep string) {
					switch {
					case CheckPlaceholder(ph) != nil:
						b.errorf(n, ep, "%v", CheckPlaceholder(ph))
					case b.placeholders[ph] != "":
						b.errorf(n, ep, "placeholder already used by secret %q", b.placeholders[ph])
					default:
						if b.placeholders == nil {
							b.placeholders = map[string]string{}
						}
						b.placeholders[ph] = name
						b.fixed = append(b.fixed, declared{ph, n, ep})
						s.Placeholders = append(s.Placeholders, ph)
					}
				})
			}},
			{"env", false, func(v *yaml.Node, fp string) {
				e, ok := b.str(v, fp)
				switch {
				case !ok:
				case !envRE.MatchString(e):
					b.errorf(v, fp, "%q is not a valid environment variable name", e)
				case slices.Contains(reservedEnv, strings.ToUpper(e)) || strings.HasPrefix(strings.ToUpper(e), "TOKRUN_"):
					b.errorf(v, fp, "%s is set by tokrun itself; choose another name", e)
				case envs[e] != "":
					b.errorf(v, fp, "%s is already the placeholder of secret %q", e, envs[e])
				default:
					envs[e] = name
					s.Env = e
				}
			}},
		})
		if v.Kind == yaml.MappingNode && sources != 1 {
			b.errorf(v, sp, "exactly one of \"sealed\" or \"sealed_file\" is required")
			continue
		}
		if tokenNode == nil || token == "" {
			continue
		}
		if b.opts.Keys == nil {
			b.errorf(tokenNode, sp, "cannot open sealed secrets without a key file")
			continue
		}
		sec, err := b.opts.Keys.Open(token, name)
		if err != nil {
			b.errorf(tokenNode, sp, "%s", strings.TrimPrefix(err.Error(), fmt.Sprintf("secret %q: ", name)))
			continue
		}
		if len(sec.Reveal()) < minScrubbable {
			b.errorf(tokenNode, sp, "the sealed value is shorter than %d bytes, too short to scrub from responses without corrupting them", minScrubbable)
			continue
		}
		if na := sec.Binding().NotAfter; !na.IsZero() && b.opts.now().After(na) {
			b.warnf(tokenNode, sp, "expired at %s; requests that need it will be denied", na.Format(time.RFC3339))
		}
		s.Sealed = sec
		s.header, s.fingerprint = sec.Binding().Header, sec.Fingerprint()
		b.pol.secrets[name] = s
		b.pol.secretOrder = append(b.pol.secretOrder, name)
	}
	// A placeholder is handed to untrusted code: it must give away no
	// secret's value, nor be a part of one.
	for _, ph := range b.fixed {
		for _, name := range b.pol.secretOrder {
			if scrub.Overlaps(b.pol.secrets[name].Sealed.Reveal(), ph.value) {
				// Not quoted: it holds the secret, or a part of it.
				b.errorf(ph.node, ph.path, "this placeholder overlaps an encoding of secret %q's value, so it would hand the secret, or a part of it, to the code it is given to; choose another", name)
			}
		}
	}
}

// declared is a value where the policy declared it.
type declared struct {
	value string
	node  *yaml.Node
	path  string
}

// sealedFile reads a sealed token from a file next to the policy.
func (b *builder) sealedFile(n *yaml.Node, path, file string) string {
	if !filepath.IsAbs(file) {
		file = filepath.Join(b.dir, file)
	}
	// Opened without blocking and checked through the descriptor: a FIFO
	// renamed into place between a check of the path and its reading
	// would hang the load (and with it every later reload).
	f, err := regfile.Open(file, os.O_RDONLY, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			b.errorf(n, path, "%s: %s", file, pe.Err)
		} else {
			b.errorf(n, path, "%v", err)
		}
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		b.errorf(n, path, "%s: %s", file, regfile.Cause(err).Error())
		return ""
	}
	if st.Mode().Perm()&0o002 != 0 {
		b.errorf(n, path, "%s is writable by anyone (mode %04o), so anyone could swap the secret; run: chmod o-w %s", file, st.Mode().Perm(), file)
		return ""
	}
	if dir, mode, open := openDir(file); open {
		b.errorf(n, path, "%s is in %s, which is writable by anyone (mode %04o), so anyone could swap the secret; run: chmod o-w %s, or set its sticky bit", file, dir, mode, dir)
		return ""
	}
	data, err := io.ReadAll(io.LimitReader(f, sealing.MaxTokenSize+65))
	switch {
	case err != nil:
		b.errorf(n, path, "%s: %s", file, regfile.Cause(err).Error())
		return ""
	case len(data) > sealing.MaxTokenSize+64:
		b.errorf(n, path, "%s: larger than a sealed token can be", file)
		return ""
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		// A failed "sealctl seal ... > file" leaves one: the shell made it.
		b.errorf(n, path, "%s is empty; seal the secret into it with 'sealctl seal'", file)
	}
	return token
}

func (b *builder) ruleList(n *yaml.Node, path string, deny bool, names map[string]int) []*Rule {
	if n.Kind != yaml.SequenceNode {
		b.errorf(n, path, "expected a list of rules, found %s", kindName(n))
		return nil
	}
	var out []*Rule
	for i, rn := range n.Content {
		if r := b.rule(rn, index(path, i), deny, names); r != nil {
			out = append(out, r)
		}
	}
	return out
}

func (b *builder) rule(n *yaml.Node, path string, deny bool, names map[string]int) *Rule {
	r := &Rule{Line: n.Line}
	before := len(b.problems)
	var injectNode, hostNode *yaml.Node
	fields := []field{
		{"name", true, func(v *yaml.Node, fp string) {
			s, ok := b.str(v, fp)
			switch {
			case !ok:
			case !nameRE.MatchString(s):
				b.errorf(v, fp, "rule names may contain only letters, digits, '.', '_' and '-' (at most 64)")
			case b.opts.Learn && s == LearnRule:
				b.errorf(v, fp, "the rule name %q is reserved in learn mode for requests no rule allows", s)
			case names[s] != 0:
				b.errorf(v, fp, "duplicate rule name %q (first used on line %d)", s, names[s])
			default:
				names[s] = v.Line
				r.Name = s
			}
		}},
		{"host", true, func(v *yaml.Node, fp string) {
			s, ok := b.str(v, fp)
			if !ok {
				return
			}
			h, err := match.ParseHostPattern(s)
			if err != nil {
				b.errorf(v, fp, "%v", err)
				return
			}
			r.host, r.Host, hostNode = h, h.String(), v
		}},
		{"port", false, func(v *yaml.Node, fp string) {
			if p, ok := b.integer(v, fp); ok {
				if p < 1 || p > 65535 {
					b.errorf(v, fp, "port %d is out of range 1-65535", p)
					return
				}
				r.Port = p
			}
		}},
		{"scheme", false, func(v *yaml.Node, fp string) {
			s, ok := b.str(v, fp)
			if !ok {
				return
			}
			if s != "https" && s != "http" {
				b.errorf(v, fp, "unknown scheme %q; use https or http", s)
				return
			}
			r.Scheme = s
		}},
		{"methods", false, func(v *yaml.Node, fp string) {
			b.strList(v, fp, func(s string, n *yaml.Node, ep string) {
				m, err := match.ParseMethod(s)
				switch {
				case err != nil:
					b.errorf(n, ep, "%v", err)
				case slices.Contains(r.Methods, m):
					b.errorf(n, ep, "%s listed twice", m)
				default:
					r.Methods = append(r.Methods, m)
				}
			})
		}},
		{"paths", false, func(v *yaml.Node, fp string) {
			b.strList(v, fp, func(s string, n *yaml.Node, ep string) {
				g, err := match.ParsePathGlob(s)
				if err != nil {
					b.errorf(n, ep, "%v", err)
					return
				}
				r.paths = append(r.paths, g)
				r.Paths = append(r.Paths, g.String())
				if deny {
					lg, err := match.ParsePathGlob(loosePath(s))
					if err != nil {
						b.errorf(n, ep, "cannot also match this path loosely (lower case, without ;parameters and trailing dots): %v", err)
						return
					}
					r.loosePaths = append(r.loosePaths, lg)
				}
			})
		}},
	}
	if !deny {
		fields = append(fields,
			field{"inject", false, func(v *yaml.Node, fp string) {
				injectNode = v
				b.strList(v, fp, func(s string, n *yaml.Node, ep string) {
					if slices.Contains(r.Inject, s) {
						b.errorf(n, ep, "secret %q listed twice", s)
						return
					}
					r.Inject = append(r.Inject, s)
				})
			}},
			field{"unsafe_allow_private_network", false, func(v *yaml.Node, fp string) {
				if on, ok := b.boolean(v, fp); ok {
					r.AllowPrivate = on
				}
			}},
		)
	}
	b.mapping(n, path, fields)
	if len(b.problems) > before {
		return nil
	}
	if !deny {
		if r.Scheme == "" {
			r.Scheme = "https"
		}
		if r.Port == 0 {
			r.Port = defaultPort(r.Scheme)
		}
		b.checkInjections(r, path, injectNode)
		if a, err := netip.ParseAddr(strings.Trim(r.Host, "[]")); err == nil && !r.AllowPrivate && !addrguard.Public(a) {
			b.warnf(hostNode, join(path, "host"), "%s is not a public address: the proxy refuses to connect to it unless the rule sets unsafe_allow_private_network: true", r.Host)
		}
	}
	if len(b.problems) > before {
		return nil
	}
	return r
}

func defaultPort(scheme string) int {
	if scheme == "http" {
		return 80
	}
	return 443
}

// checkInjections verifies that every injected secret exists and that
// its sealed binding can ever agree with the rule.
func (b *builder) checkInjections(r *Rule, path string, injectNode *yaml.Node) {
	byHeader := map[string]string{} // lower-case header name -> the secret injected there
	for i, name := range r.Inject {
		n, ip := injectNode.Content[i], index(join(path, "inject"), i)
		if b.secretNodes[name] == nil {
			b.errorf(n, ip, "unknown secret %q%s", name, b.knownSecrets())
			continue
		}
		s := b.pol.secrets[name]
		if s == nil {
			continue // the secret itself failed to load and was reported
		}
		if r.Scheme == "http" {
			b.errorf(n, ip, "secret %q cannot be injected into plain http; the secret would cross the network in clear text", name)
			continue
		}
		sb := s.Sealed.Binding()
		if other, ok := byHeader[strings.ToLower(sb.Header)]; ok {
			b.errorf(n, ip, "secrets %q and %q are both sealed for header %s; a request carries only one value there, so inject one of them per rule", other, name, sb.Header)
			continue
		}
		byHeader[strings.ToLower(sb.Header)] = name
		overlaps := false
		for _, h := range sb.Hosts {
			if hp, err := match.ParseHostPattern(h); err == nil && hp.Overlaps(r.host) {
				overlaps = true
			}
		}
		if !overlaps {
			b.errorf(n, ip, "secret %q is sealed for %s; rule host %s can never match it", name, strings.Join(sb.Hosts, ", "), r.Host)
			continue
		}
		if len(r.Methods) > 0 && len(sb.Methods) > 0 && !slices.ContainsFunc(r.Methods, func(m string) bool { return slices.Contains(sb.Methods, m) }) {
			b.errorf(n, ip, "secret %q is sealed for methods %s, which the rule's methods (%s) never include", name, strings.Join(sb.Methods, ", "), strings.Join(r.Methods, ", "))
		}
	}
}

func (b *builder) knownSecrets() string {
	if len(b.secretNodes) == 0 {
		return " (the policy declares no secrets)"
	}
	var names []string
	for n := range b.secretNodes {
		names = append(names, n)
	}
	slices.Sort(names)
	return " (declared: " + joinNames(names) + ")"
}
