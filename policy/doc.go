// Package policy decides which requests tokproxy lets through and which
// sealed secrets it injects into them. Default is deny.
//
// # Schema (version 1)
//
//	version: 1                       # required
//	secrets:                         # optional: name -> sealed secret
//	  openai:
//	    sealed: "tokrun.sealed.v1..." # a token from `sealctl seal`, or
//	    # sealed_file: openai.sealed  # a file holding one, relative to the policy
//	    env: OPENAI_API_KEY          # optional: placeholder variable in the sandbox
//	    placeholders: [sk-placeholder-openai]  # optional: fixed tripwire strings
//	rules:                           # allow rules, first match wins; required
//	                                 #   unless --allow or learn mode is given
//	  - name: openai-chat            # required, unique across rules and deny
//	    host: api.openai.com         # required: exact host or "*.suffix"
//	    scheme: https                # optional: https (default) or http
//	    port: 443                    # optional: defaults to the scheme's port
//	    methods: [GET, POST]         # optional: omitted means any of
//	                                 #   GET HEAD POST PUT PATCH DELETE OPTIONS
//	    paths: ["/v1/**"]            # optional: globs on the normalised path
//	    inject: [openai]             # optional: secrets to inject
//	    unsafe_allow_private_network: false  # optional: see below
//	deny:                            # optional: deny rules win over rules
//	  - name: no-files
//	    host: api.openai.com
//	    paths: ["/v1/files/**"]      # scheme and port omitted: any
//
// Parsing is strict: unknown fields, duplicate keys, wrong types, YAML
// aliases and merge keys, unknown methods, bad globs, duplicate rule
// names, an inject naming an unknown secret, a secret whose sealed hosts
// can never match the rule's host (or whose sealed methods never overlap
// the rule's), a secret injected over plain http, a sealed_file that is
// missing or writable by anyone, and a policy file writable by anyone are
// all errors. Every problem is reported at once with file, line and field:
//
//	tokrun.yaml:14: rules[2].methods[0]: unknown method "PSOT"
//
// A secret whose expiry has passed is a warning: the policy loads, and
// requests that need the secret are denied with reason secret_expired.
//
// # Matching
//
// Hosts are compared in canonical form: lowercase, trailing dot removed,
// internationalised names in punycode, IPv6 without brackets, IPv4-mapped
// IPv6 unmapped. Numeric forms other than dotted-quad IPv4 ("127.1",
// "2130706433", "0x7f.0.0.1") are refused. "*.example.com" matches every
// subdomain at any depth, never example.com itself, never
// example.com.evil.net or evilexample.com; wildcards over a public suffix
// ("*.com", "*.co.uk") are refused.
//
// Paths are normalised before matching: percent-encodings of unreserved
// characters are decoded (so %2e%2e is ".."), other encodings uppercased,
// dot-segments resolved (never above the root) and repeated slashes
// collapsed, so "/v1/../admin", "/v1/%2e%2e/admin" and "//admin" are all
// "/admin" and cannot pass a "/v1/**" rule. Ambiguous paths are refused
// outright with reason invalid_path rather than guessed at: encoded
// slashes and backslashes (%2F, %5C), raw backslashes, control
// characters raw or encoded (%00-%1F, %7F), and ";" path parameters on
// dot-segments. In globs, "*"
// matches within one segment and "**" (a whole segment) matches zero or
// more segments. The query string is not part of matching.
//
// # Decisions
//
// [Policy.Decide] takes the facts of a request and returns a [Decision]:
// allow or deny, the rule, a machine-readable [Reason], the canonical
// request, the secrets to inject with their headers and fingerprints, and
// a one-sentence explanation that, for a denial, says what rule would be
// needed. Deny rules are checked first; then the first allow rule (in
// file order) that matches host, scheme, port, method and path wins. A
// secret is injected only when both the rule and the secret's own sealed
// binding (hosts, methods, paths, expiry) allow it; otherwise the request
// is denied with reason secret_not_bound or secret_expired, so editing
// the policy can never send a secret where it was not sealed to go.
//
// unsafe_allow_private_network lets a rule reach destinations that
// resolve to loopback, private, link-local or metadata addresses, which
// the proxy otherwise always refuses. It weakens the SSRF guard for that
// rule and should be used only for local development.
//
// # Allow rules from the command line
//
// [Options].Allow adds a credential-free rule per entry ("HOST" or
// "HOST:PORT", IPv6 in brackets, "*.suffix" wildcards as in rules) after
// the file's rules: https to that port, any method, any path, nothing
// injected, no private network. Check a flag early with [CheckAllow].
// Without a policy file, Parse of "version: 1" with Allow set gives a
// policy that denies everything else.
//
// # Learn mode
//
// [Options].Learn is for discovering what a command needs. Deny rules and
// allow rules decide as usual, but a request no allow rule matches is
// allowed under the catch-all rule [LearnRule] rather than denied.
// Learn mode injects no secret, whatever the rules say, and never lifts
// the private-address guard: Decision.AllowPrivate is set only when a
// rule with unsafe_allow_private_network matched, exactly as outside
// learn mode. Malformed requests and requests a deny rule refuses are
// still denied. A [Learner] records the allowed decisions and writes a
// policy that allows what was observed, for review.
//
// Deciding does not scan every rule: rules are indexed by exact host and
// by wildcard suffix, so a decision takes about two microseconds with one
// rule or with a thousand (BenchmarkDecide).
//
// [Store] holds the policy in force and reloads it, keeping the last good
// policy when a new one is invalid.
package policy
