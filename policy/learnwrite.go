package policy

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// learnedRule is one rule WritePolicy writes: the requests to one
// destination that need the same secrets.
type learnedRule struct {
	name, scheme, host string
	port               int
	inject             []string
	methods            map[string]bool
	paths              []string
	private            bool
	requests           int
	allowedBy          map[string]bool // the rules that allowed the requests
}

// WritePolicy writes a complete version 1 policy that, loaded without
// learn mode, allows the observed requests. The output is deterministic:
// the same observations give the same bytes.
//
// It starts with a comment saying that `tokrun --learn` wrote it, listing
// what was observed, and asking for review. There is one rule per
// destination (scheme, host and port), named after the host, listing the
// observed methods and paths; scheme and port are written only when they
// are not https and the scheme's port. Paths are generalised: a segment
// that looks like an identifier (all digits, a UUID, 16 or more hex
// digits, or a token of 20 or more letters and digits) becomes "*", the
// same path is listed once, and more than 20 paths are collapsed into
// their longest common prefixes followed by "/**". A rule that allowed
// private addresses for an observed request keeps
// unsafe_allow_private_network, with a warning comment.
//
// base, if not nil, should be the policy the decisions were made with.
// Its secrets section is written again (each secret's sealed token or
// sealed_file path exactly as given, its env and placeholders; relative
// sealed_file paths resolve against the directory of the file the output
// is saved in, so save it next to the base policy), its deny rules are
// copied, and requests that one of its rules allowed with secrets get a
// rule of their own that injects the same secrets. Requests allowed under
// LearnRule, or by a rule whose secret's binding refused them, get no
// secrets.
//
// WritePolicy never writes a query string, a header, a secret's value or
// a placeholder into a rule: besides the generalisation above, a path
// segment holding one of base's secret values or placeholders becomes
// "*". The only placeholders in the output are those base declares in
// its secrets section.
func (l *Learner) WritePolicy(w io.Writer, base *Policy) error {
	rules, total, dropped := l.learnedRules(base)
	var b bytes.Buffer
	writeHeader(&b, rules, total, dropped)
	b.WriteString("version: 1\n")
	if base != nil {
		writeSecrets(&b, base.Secrets())
	}
	if len(rules) == 0 {
		b.WriteString("rules: []\n")
	} else {
		b.WriteString("rules:\n")
	}
	for _, r := range rules {
		writeLearnedRule(&b, r)
	}
	if base != nil && len(base.DenyRules()) > 0 {
		b.WriteString("deny:\n")
		for _, r := range base.DenyRules() {
			writeDenyRule(&b, r)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// learnedRules merges the observations into rules, in order of host,
// scheme, port, with secrets before without.
func (l *Learner) learnedRules(base *Policy) (rules []*learnedRule, total, dropped int) {
	l.mu.Lock()
	needles := slices.Clone(l.redact)
	l.mu.Unlock()
	if base != nil {
		for _, s := range base.Secrets() {
			needles = append(needles, s.Sealed.Reveal())
			needles = append(needles, s.Placeholders...)
		}
	}
	type ruleKey struct {
		scheme, host string
		port         int
		inject       string
	}
	byKey := map[ruleKey]*learnedRule{}
	paths := map[*learnedRule]map[string]bool{}

	l.mu.Lock()
	for k, g := range l.groups {
		var inject []string
		if base != nil {
			if r := base.Rule(k.rule); r != nil && slices.Contains(base.rules, r) {
				inject = r.Inject
			}
		}
		rk := ruleKey{k.scheme, k.host, k.port, strings.Join(inject, ",")}
		r := byKey[rk]
		if r == nil {
			r = &learnedRule{scheme: k.scheme, host: k.host, port: k.port, inject: slices.Clone(inject), methods: map[string]bool{}, allowedBy: map[string]bool{}}
			byKey[rk] = r
			paths[r] = map[string]bool{}
		}
		for m := range g.methods {
			r.methods[m] = true
		}
		for p := range g.paths {
			paths[r][scrubPath(p, needles)] = true
		}
		r.private = r.private || g.private
		r.requests += g.requests
		r.allowedBy[k.rule] = true
		total += g.requests
	}
	dropped = l.dropped
	l.mu.Unlock()

	for _, r := range byKey {
		r.paths = learnedPaths(slices.Collect(maps.Keys(paths[r])))
		rules = append(rules, r)
	}
	slices.SortFunc(rules, func(a, b *learnedRule) int {
		switch {
		case a.host != b.host:
			return strings.Compare(a.host, b.host)
		case a.scheme != b.scheme:
			return strings.Compare(a.scheme, b.scheme)
		case a.port != b.port:
			return a.port - b.port
		case (len(a.inject) > 0) != (len(b.inject) > 0):
			if len(a.inject) > 0 {
				return -1
			}
			return 1
		}
		return strings.Compare(strings.Join(a.inject, ","), strings.Join(b.inject, ","))
	})
	nameLearnedRules(rules, base)
	return rules, total, dropped
}

var nameUnsafeRE = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// nameLearnedRules names each rule after its host (and its scheme and
// port when not the defaults), keeping names valid and unique, and clear
// of base's deny rules and LearnRule.
func nameLearnedRules(rules []*learnedRule, base *Policy) {
	taken := map[string]bool{LearnRule: true}
	if base != nil {
		for _, r := range base.DenyRules() {
			taken[r.Name] = true
		}
	}
	for _, r := range rules {
		stem := strings.Trim(nameUnsafeRE.ReplaceAllString(r.host, "-"), "-._")
		if strings.Contains(r.host, ":") {
			stem = "ipv6-" + stem
		}
		if stem == "" || !nameRE.MatchString(stem[:1]) {
			stem = "host-" + stem
		}
		if r.scheme == "http" {
			stem += "-http"
		}
		if r.port != defaultPort(r.scheme) {
			stem += "-" + strconv.Itoa(r.port)
		}
		if len(stem) > 56 {
			stem = strings.TrimRight(stem[:56], "-._")
		}
		name := stem
		for n := 2; taken[name]; n++ {
			name = stem + "-" + strconv.Itoa(n)
		}
		taken[name] = true
		r.name = name
	}
}

// destination writes scheme://host:port, IPv6 in brackets.
func destination(scheme, host string, port int) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + strconv.Itoa(port)
}

func writeHeader(b *bytes.Buffer, rules []*learnedRule, total, dropped int) {
	b.WriteString("# Written by `tokrun --learn` from the requests one run made.\n")
	b.WriteString("# Review it before use: it allows what was observed, with identifiers in\n")
	b.WriteString("# paths generalised to \"*\", and any method listed on any path listed.\n")
	if total == 0 {
		b.WriteString("# Observed: nothing; this policy denies every request.\n")
	} else {
		fmt.Fprintf(b, "# Observed: %s to %s:\n", plural(total, "request"), plural(len(rules), "destination"))
		for _, r := range rules {
			inject := ""
			if len(r.inject) > 0 {
				inject = ", injecting " + strings.Join(r.inject, ", ")
			}
			fmt.Fprintf(b, "#   %s %s (%s%s)\n", destination(r.scheme, r.host, r.port), strings.Join(sortedKeys(r.methods), " "), plural(r.requests, "request"), inject)
		}
	}
	if dropped > 0 {
		fmt.Fprintf(b, "# Not recorded: %s to further destinations, past the learner's limit.\n", plural(dropped, "request"))
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func sortedKeys(m map[string]bool) []string {
	return slices.Sorted(maps.Keys(m))
}

func writeSecrets(b *bytes.Buffer, secrets []*Secret) {
	if len(secrets) == 0 {
		return
	}
	b.WriteString("secrets:\n")
	for _, s := range secrets {
		fmt.Fprintf(b, "  %s:\n", yamlString(s.Name))
		if s.sealedFile != "" {
			fmt.Fprintf(b, "    sealed_file: %s\n", yamlString(s.sealedFile))
		} else {
			fmt.Fprintf(b, "    sealed: %s\n", yamlString(s.sealed))
		}
		if s.Env != "" {
			fmt.Fprintf(b, "    env: %s\n", yamlString(s.Env))
		}
		if len(s.Placeholders) > 0 {
			fmt.Fprintf(b, "    placeholders: %s\n", flowList(s.Placeholders))
		}
	}
}

func writeLearnedRule(b *bytes.Buffer, r *learnedRule) {
	by := slices.DeleteFunc(sortedKeys(r.allowedBy), func(s string) bool { return s == "" })
	if len(by) == 0 {
		fmt.Fprintf(b, "  # %s\n", plural(r.requests, "request"))
	} else {
		fmt.Fprintf(b, "  # %s, allowed by %s\n", plural(r.requests, "request"), strings.Join(by, ", "))
	}
	fmt.Fprintf(b, "  - name: %s\n", yamlString(r.name))
	fmt.Fprintf(b, "    host: %s\n", yamlString(r.host))
	if r.scheme != "https" {
		fmt.Fprintf(b, "    scheme: %s\n", r.scheme)
	}
	if r.port != defaultPort(r.scheme) {
		fmt.Fprintf(b, "    port: %d\n", r.port)
	}
	fmt.Fprintf(b, "    methods: %s\n", flowList(sortedKeys(r.methods)))
	b.WriteString("    paths:\n")
	for _, p := range r.paths {
		fmt.Fprintf(b, "      - %s\n", strconv.Quote(p))
	}
	if len(r.inject) > 0 {
		fmt.Fprintf(b, "    inject: %s\n", flowList(r.inject))
	}
	if r.private {
		b.WriteString("    # WARNING: lets this rule reach loopback, private, link-local and metadata\n")
		b.WriteString("    # addresses, weakening the proxy's SSRF guard. The base policy allowed it;\n")
		b.WriteString("    # keep it only for local development.\n")
		b.WriteString("    unsafe_allow_private_network: true\n")
	}
}

func writeDenyRule(b *bytes.Buffer, r *Rule) {
	fmt.Fprintf(b, "  - name: %s\n", yamlString(r.Name))
	fmt.Fprintf(b, "    host: %s\n", yamlString(r.Host))
	if r.Scheme != "" {
		fmt.Fprintf(b, "    scheme: %s\n", r.Scheme)
	}
	if r.Port != 0 {
		fmt.Fprintf(b, "    port: %d\n", r.Port)
	}
	if len(r.Methods) > 0 {
		fmt.Fprintf(b, "    methods: %s\n", flowList(r.Methods))
	}
	if len(r.Paths) > 0 {
		quoted := make([]string, len(r.Paths))
		for i, p := range r.Paths {
			quoted[i] = strconv.Quote(p)
		}
		fmt.Fprintf(b, "    paths: [%s]\n", strings.Join(quoted, ", "))
	}
}

func flowList(items []string) string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = yamlString(s)
	}
	return "[" + strings.Join(out, ", ") + "]"
}

var plainRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)

// yamlString writes s as a plain scalar when YAML reads that back as the
// same string, and double-quoted otherwise. Go's quoting is valid YAML
// for the ASCII text and valid UTF-8 a policy holds.
func yamlString(s string) string {
	if plainRE.MatchString(s) {
		var n yaml.Node
		if yaml.Unmarshal([]byte(s), &n) == nil && len(n.Content) == 1 && n.Content[0].Tag == "!!str" && n.Content[0].Value == s {
			return s
		}
	}
	return strconv.Quote(s)
}
