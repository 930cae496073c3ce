package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokrun/tokrun/internal/cli"
	"github.com/tokrun/tokrun/policy"
)

const serveLong = `Run the proxy daemon.

tokproxy serve loads the policy, opens its sealed secrets with the key file
and serves proxy clients until SIGTERM or SIGINT. Clients send plain HTTP
requests in absolute form, and HTTPS through CONNECT; HTTPS is intercepted
with tokproxy's own CA, which the clients must trust.

Listeners (--listen, repeatable, at least one):

  unix:PATH      a Unix socket, created with mode 0600 (see --socket-mode):
                 whoever can open it can use the proxy, without a token. A
                 stale socket left by a crashed proxy is replaced; a socket
                 another process serves, or any other file, is an error.
  tcp:HOST:PORT  a TCP listener. Every request must carry the header
                 "Proxy-Authorization: Bearer TOKEN", or Basic with the
                 token as password (HTTPS_PROXY=http://NAME:TOKEN@HOST:PORT),
                 with a token listed in --token-file, or it is refused with
                 407; tokproxy will not open a TCP listener without tokens.
                 Tokens cross the network in clear text: prefer a loopback
                 address.

Token file (--token-file): one client per line, "NAME SHA256HEX", where
SHA256HEX is the SHA-256 of the client's token in hex; blank lines and lines
starting with # are ignored. NAME is the client in the audit log. Make a
token and its line with "tokproxy token NAME".

CA: clients must trust the CA that signs the certificates of intercepted
tunnels. By default it lives in the state directory (--state-dir, default
$XDG_STATE_HOME/tokproxy, or ~/.local/state/tokproxy) as ca.pem and
ca-key.pem, created on first start (the key with mode 0600). Distribute
ca.pem, never the key. --ca-cert and --ca-key load an ECDSA CA of your own
instead. Upstream servers are verified against the system roots, plus the
certificates in --upstream-ca if given (for a local API with a test CA).

Reload: on SIGHUP, and when the policy file's content changes (checked every
--watch-interval, and loaded once it has stayed the same for a second, so
that a file being written is not loaded half-written), the policy is loaded
again. A policy with errors is rejected, each problem is logged, and the
previous policy stays in force. Replace the policy file by renaming a new
one over it: a file written in place can stay half-written for longer.
Files named by sealed_file are not watched: send SIGHUP after changing one.
The key file, tokens, CA and listeners are read once, at start.

Stop: SIGTERM or SIGINT stops accepting connections and lets the requests in
flight finish, for up to --drain-timeout; /readyz answers 503 meanwhile. A
second signal stops at once.

Admin listener (--admin HOST:PORT, optional, unauthenticated; it serves no
secret):

  /metrics  Prometheus metrics: tokrun_* and the Go and process collectors
  /healthz  200 while the process runs
  /readyz   200 once the listeners are up with a policy loaded, 503 while
            starting or draining

Audit log (--audit): one JSON object per line for each decision, with the
fields time, client, decision (allow or deny), reason, rule, method, scheme,
host, port, path, secrets (names of the injected secrets), status, bytes_in,
bytes_out, duration_ms, and when they apply scrubbed, tripwire and error. A
file is opened for appending and created with mode 0600; "-" is stderr.
On SIGHUP and at each --watch-interval check it is opened again if its path
no longer names it (rotated away, removed). Secret values never appear in
the audit log, the metrics or the logs.

Records of allowed requests that went well are written in batches, each
held up to --audit-batch (10ms), because one write per request is most of
what auditing costs under load. Every other record (a denial, a tripwire, an
upstream failure) is written at once, after those held before it: records
stay in order. A clean stop writes what is held; a process killed with
SIGKILL or by the OOM killer loses the allowed records of its last batch.
--audit-batch 0 writes each record at once.

Output: problems found before the proxy serves are reported as
"tokproxy: error: ..." lines, and tokproxy exits 1 without serving. They are
found in three steps, each reporting all of its problems: the flags; then
the files they name (key, policy, tokens, CAs); then the listeners and the
audit log. A missing key file hides the policy's problems, which need it. Once it serves, its messages go to
stderr as structured log lines (time=... level=... msg=... key=value);
stdout is not used.

Exit status: 0 after a clean stop, every request in flight finished; 1 on a
startup error, an internal failure, a drain cut short by --drain-timeout or
by a second signal.`

const serveExample = `  # A sandbox on the same host, through a Unix socket:
  tokproxy serve --policy policy.yaml --key key.txt --listen unix:/run/tokproxy/proxy.sock

  # Containers through TCP, with a client token, metrics and an audit file:
  tokproxy token agent --append tokens.txt >agent.token
  tokproxy serve --policy policy.yaml --key key.txt \
      --listen tcp:127.0.0.1:3128 --token-file tokens.txt \
      --admin 127.0.0.1:9090 --audit /var/log/tokproxy/audit.jsonl

  # A client of that listener:
  curl --proxy http://127.0.0.1:3128 \
      --proxy-header "Proxy-Authorization: Bearer $(cat agent.token)" \
      --cacert ~/.local/state/tokproxy/ca.pem https://api.openai.com/v1/models

  # Reload the policy now:
  kill -HUP "$(pidof tokproxy)"`

// serveOptions are the flags of tokproxy serve.
type serveOptions struct {
	policyFile    string
	keyFile       string
	stateDir      string
	caCert        string
	caKey         string
	upstreamCA    string
	listen        []string
	socketMode    string
	tokenFile     string
	admin         string
	audit         string
	auditBatch    time.Duration
	watchInterval time.Duration
	drainTimeout  time.Duration

	// Derived by check.
	specs []listenSpec
	mode  os.FileMode
}

func newServeCmd(e *env) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:     "serve --policy FILE --listen unix:PATH|tcp:HOST:PORT [flags]",
		Short:   "Run the proxy daemon",
		Long:    serveLong,
		Example: serveExample,
		// The essential flags are in Use already.
		DisableFlagsInUseLine: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return cli.Usagef("serve takes no arguments, only flags (got %q); the policy file goes in --policy", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.serve(cmd, o)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&o.policyFile, "policy", "", "the policy `FILE` (required); reloaded on SIGHUP and when it changes")
	f.StringVar(&o.keyFile, "key", "", "open the policy's sealed secrets with the private key file `KEYFILE` (required if the policy has secrets)")
	f.StringArrayVar(&o.listen, "listen", nil, "serve clients on `ADDR`: unix:PATH or tcp:HOST:PORT (repeatable; at least one)")
	f.StringVar(&o.tokenFile, "token-file", "", "read the tokens of tcp clients from `FILE`, one \"NAME SHA256HEX\" per line (required with tcp:)")
	f.StringVar(&o.socketMode, "socket-mode", "0600", "create unix sockets with permissions `MODE`, in octal (0660 lets the socket's group in)")
	f.StringVar(&o.stateDir, "state-dir", "", "`DIR` holding the CA, ca.pem and ca-key.pem, created on first start\n(default $XDG_STATE_HOME/tokproxy or ~/.local/state/tokproxy)")
	f.StringVar(&o.caCert, "ca-cert", "", "load the interception CA certificate from `FILE` instead of the state directory (with --ca-key)")
	f.StringVar(&o.caKey, "ca-key", "", "load the interception CA's ECDSA private key from `FILE` (with --ca-cert; mode 0600)")
	f.StringVar(&o.upstreamCA, "upstream-ca", "", "also trust the PEM certificates in `FILE` for upstream TLS, besides the system roots")
	f.StringVar(&o.admin, "admin", "", "serve /metrics, /healthz and /readyz on `HOST:PORT`, such as 127.0.0.1:9090")
	f.StringVar(&o.audit, "audit", "-", "append the audit log, one JSON line per decision, to `FILE` (\"-\" is stderr)")
	f.DurationVar(&o.auditBatch, "audit-batch", 10*time.Millisecond, "hold allowed requests' audit records up to `DURATION` to write them together, at most 1m\n(0 writes each at once; denials, tripwires and errors are never held)")
	f.DurationVar(&o.watchInterval, "watch-interval", 2*time.Second, "check the policy file for changes this often (0 disables; SIGHUP still reloads)")
	f.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM or SIGINT, wait this long for requests in flight to finish")
	return cmd
}

// check validates the flags on their own, before any file is read, and
// returns every problem.
func (o *serveOptions) check(cmd *cobra.Command) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.policyFile == "" {
		bad("--policy is required")
	}
	if len(o.listen) == 0 {
		errs = append(errs, cli.WithHints(errors.New("at least one --listen is required"),
			"--listen unix:/run/tokproxy/proxy.sock, or --listen tcp:127.0.0.1:3128 with --token-file"))
	}
	seen := map[listenSpec]bool{}
	var unix, tcp bool
	for _, l := range o.listen {
		spec, err := parseListen(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[spec] {
			bad("--listen %s is given twice", spec)
			continue
		}
		seen[spec] = true
		unix = unix || spec.network == "unix"
		tcp = tcp || spec.network == "tcp"
		o.specs = append(o.specs, spec)
	}
	if tcp && o.tokenFile == "" {
		errs = append(errs, cli.WithHints(errors.New("a tcp listener requires --token-file: TCP clients must authenticate"),
			"make a token with 'tokproxy token NAME --append tokens.txt', then add --token-file tokens.txt",
			"or listen on a Unix socket (--listen unix:PATH), protected by its file mode"))
	}
	if m, err := strconv.ParseUint(o.socketMode, 8, 32); err != nil || m > 0o777 {
		bad("--socket-mode %q: want an octal mode such as 0600 or 0660", o.socketMode)
	} else if m&0o600 != 0o600 {
		bad("--socket-mode %04o: the owner needs read and write permission (0600)", m)
	} else if m&0o007 != 0 {
		bad("--socket-mode %04o: other users would be able to use the proxy and its secrets; allow a group instead (0660)", m)
	} else {
		o.mode = os.FileMode(m)
	}
	if cmd.Flags().Changed("socket-mode") && !unix && len(o.specs) > 0 {
		bad("--socket-mode applies to unix listeners, and there is none")
	}
	if (o.caCert == "") != (o.caKey == "") {
		bad("--ca-cert and --ca-key go together: give both or neither")
	}
	if o.caCert != "" && cmd.Flags().Changed("state-dir") {
		bad("--state-dir and --ca-cert/--ca-key cannot be used together: the CA comes from one place")
	}
	if o.admin != "" {
		if host, _, err := net.SplitHostPort(o.admin); err != nil || host == "" {
			bad("--admin %q: want HOST:PORT, such as 127.0.0.1:9090", o.admin)
		}
	}
	if o.audit == "" {
		bad("--audit is empty: give a file, or - for stderr")
	}
	if o.auditBatch < 0 || o.auditBatch > maxAuditBatch {
		bad("--audit-batch %s: want 0 (each record at once) up to %s", o.auditBatch, maxAuditBatch)
	}
	if o.watchInterval < 0 {
		bad("--watch-interval %s is negative; 0 disables watching", o.watchInterval)
	}
	if o.drainTimeout <= 0 {
		bad("--drain-timeout %s: must be positive", o.drainTimeout)
	}
	return errs
}

// maxAuditBatch bounds --audit-batch, and so what a killed process can
// lose of its audit log.
const maxAuditBatch = time.Minute

// defaultStateDir is $XDG_STATE_HOME/tokproxy, or ~/.local/state/tokproxy.
func defaultStateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "tokproxy"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("cannot find the state directory: neither $XDG_STATE_HOME nor $HOME is set; give --state-dir")
	}
	return filepath.Join(home, ".local", "state", "tokproxy"), nil
}

// serve runs the daemon. Signals are caught before anything is loaded,
// so that a SIGHUP or SIGTERM sent while the proxy starts is acted on
// once it serves rather than killing it half-started (package earlyhup
// ignores SIGHUP until then, from about 2 ms after exec).
func (e *env) serve(cmd *cobra.Command, o *serveOptions) error {
	if errs := o.check(cmd); len(errs) > 0 {
		e.reportAll(errs)
		fmt.Fprintf(e.stderr, "tokproxy: hint: run '%s --help'\n", cmd.CommandPath())
		return exitStatus(exitError)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	d, errs := e.startDaemon(o)
	if len(errs) > 0 {
		e.reportAll(errs)
		return exitStatus(exitError)
	}
	if status := d.run(sigs); status != exitOK {
		return exitStatus(status)
	}
	return nil
}

// reportAll prints every startup problem in the tokproxy grammar: an
// invalid policy one line per problem, each error followed by its hints.
func (e *env) reportAll(errs []error) {
	for _, err := range errs {
		var ce *cli.Error
		var hints []string
		if errors.As(err, &ce) {
			hints = ce.Hints
			err = ce.Err
		}
		var problems policy.Errors
		var joined interface{ Unwrap() []error }
		switch {
		case errors.As(err, &problems):
			for _, p := range problems {
				e.errorf("%s", p)
			}
		case errors.As(err, &joined):
			e.reportAll(joined.Unwrap())
		default:
			e.errorf("%s", err)
		}
		for _, h := range hints {
			fmt.Fprintf(e.stderr, "tokproxy: hint: %s\n", h)
		}
	}
}
