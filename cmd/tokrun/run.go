package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tokrun/tokrun/internal/cli"
	"github.com/tokrun/tokrun/internal/regfile"
	"github.com/tokrun/tokrun/policy"
	"github.com/tokrun/tokrun/runner"
	"github.com/tokrun/tokrun/sealing"
)

type runOptions struct {
	policyFile string
	keyFile    string
	proxy      string
	proxyCA    string
	upstreamCA string
	audit      string
	metrics    string
	learn      string
	stateDir   string
	onTripwire string
	allow      []string
	mounts     []string
	envs       []string
	tty        bool
	noTTY      bool
	maxProcs   int
	debug      bool
}

func (o *runOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.policyFile, "policy", "", "policy `FILE` (default ./tokrun.yaml when it exists, otherwise deny all)")
	f.StringVar(&o.keyFile, "key", "", "private key `FILE` that opens the policy's sealed secrets (default $XDG_CONFIG_HOME/tokrun/key.txt)")
	f.StringVar(&o.proxy, "proxy", "", "use a running tokproxy at `unix:PATH` instead of the embedded proxy")
	f.StringVar(&o.proxyCA, "proxy-ca", "", "CA certificate `FILE` of the tokproxy named by --proxy")
	f.StringVar(&o.upstreamCA, "upstream-ca", "", "also trust the CA certificates in `FILE` for upstream servers (a local API with its own CA)")
	f.StringArrayVar(&o.allow, "allow", nil, "allow HTTPS to `HOST[:PORT]` without credentials (repeatable)")
	f.StringArrayVar(&o.mounts, "mount", nil, "expose host path SRC at DST inside, read-write unless :ro is added (`SRC:DST[:ro]`; repeatable)")
	f.StringArrayVar(&o.envs, "env", nil, "set `K=V` inside, or pass K from your environment with --env K (repeatable)")
	f.BoolVar(&o.tty, "tty", false, "give the command a terminal even when stdout is not one (stdin must be a terminal)")
	f.BoolVar(&o.noTTY, "no-tty", false, "use pipes even when stdin and stdout are terminals")
	f.IntVar(&o.maxProcs, "max-procs", runner.DefaultMaxProcs, "at most `N` processes and threads inside; each is a process on the host, so this bounds a fork bomb")
	f.StringVar(&o.onTripwire, "on-tripwire", "deny", "what a leaked placeholder does (`MODE`): deny refuses the request; kill also ends the run with exit 124")
	f.StringVar(&o.audit, "audit", "", "append one JSON line per proxy decision to `FILE` (- for stderr)")
	f.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics of the embedded proxy at http://`ADDR`/metrics")
	f.StringVar(&o.learn, "learn", "", "allow all public egress, inject no secrets, and write a policy of what was used to `FILE`")
	f.StringVar(&o.stateDir, "state-dir", "", "sandbox state and logs in `DIR` (default $XDG_RUNTIME_DIR/tokrun, /run/tokrun for root or ~/.cache/tokrun); the history of runs is kept apart whatever DIR")
	f.BoolVar(&o.debug, "debug", false, "write gVisor's debug logs and say where they are")
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// check validates the flags before any work starts. It returns the
// environment --env adds and the parsed mounts.
func (o *runOptions) check() ([]string, []runner.Mount, error) {
	if o.onTripwire != "deny" && o.onTripwire != "kill" {
		return nil, nil, cli.Usagef("--on-tripwire must be deny or kill, not %q", o.onTripwire)
	}
	if o.tty && o.noTTY {
		return nil, nil, cli.Usagef("--tty and --no-tty cannot be used together")
	}
	if o.maxProcs < 1 {
		return nil, nil, cli.Usagef("--max-procs must be at least 1, not %d", o.maxProcs)
	}
	if o.proxy != "" {
		if !strings.HasPrefix(o.proxy, "unix:") || len(o.proxy) == len("unix:") {
			return nil, nil, cli.Usagef("--proxy must be unix:PATH, the socket of a running tokproxy")
		}
		if o.proxyCA == "" {
			return nil, nil, cli.Usagef("--proxy needs --proxy-ca, the CA certificate of that tokproxy (ca.pem in its state directory)")
		}
		for name, set := range map[string]bool{"--learn": o.learn != "", "--allow": len(o.allow) > 0, "--audit": o.audit != "", "--metrics": o.metrics != "", "--upstream-ca": o.upstreamCA != "", "--key": o.keyFile != "", "--on-tripwire kill": o.onTripwire == "kill", "--policy": o.policyFile != ""} {
			if set {
				return nil, nil, cli.Usagef("%s applies to the embedded proxy and cannot be used with --proxy; configure the tokproxy daemon instead", name)
			}
		}
	} else if o.proxyCA != "" {
		return nil, nil, cli.Usagef("--proxy-ca is only for --proxy")
	}
	for _, a := range o.allow {
		if err := policy.CheckAllow(a); err != nil {
			return nil, nil, cli.Usagef("%s", err)
		}
	}
	var mounts []runner.Mount
	for _, s := range o.mounts {
		m, err := runner.ParseMount(s)
		if err != nil {
			return nil, nil, cli.Usagef("--mount: %v", err)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return nil, nil, cli.Usagef("--mount %s: %v", s, errors.Unwrap(err))
		}
		mounts = append(mounts, m)
	}
	var envs []string
	for _, kv := range o.envs {
		k, v, hasValue := strings.Cut(kv, "=")
		if !envNameRE.MatchString(k) {
			return nil, nil, cli.Usagef("--env: %q is not a variable name", k)
		}
		switch {
		case strings.EqualFold(k, "NO_PROXY"):
			return nil, nil, cli.Usagef("--env %s: refused: every request, to loopback too, must go through the proxy", k)
		case runner.IsPlumbing(k):
			return nil, nil, cli.Usagef("--env %s: tokrun sets %s itself to keep the proxy the only way out", k, k)
		}
		if !hasValue {
			var ok bool
			if v, ok = os.LookupEnv(k); !ok {
				return nil, nil, cli.Usagef("--env %s: %s is not set in your environment", k, k)
			}
		}
		envs = append(envs, k+"="+v)
	}
	return envs, mounts, nil
}

// defaultKeyFile is $XDG_CONFIG_HOME/tokrun/key.txt.
func defaultKeyFile() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "tokrun", "key.txt")
}

// loadKeys loads the key file, or returns nil when the default one does
// not exist.
func (e *env) loadKeys(o *runOptions) (*sealing.KeyRing, string, error) {
	path := o.keyFile
	if path == "" {
		path = defaultKeyFile()
		if _, err := os.Stat(path); err != nil {
			return nil, path, nil
		}
	}
	keys, err := sealing.LoadKeyFile(path, func(msg string) { e.warnf("%s", msg) })
	if errors.Is(err, os.ErrNotExist) {
		return nil, path, cli.WithHints(err, "make a key with: sealctl keygen -o "+path)
	}
	if err != nil {
		return nil, path, err
	}
	return keys, path, nil
}

// loadPolicy loads --policy, or ./tokrun.yaml, or a deny-all policy; it
// reports which file was used ("" for none).
func loadPolicy(o *runOptions, keys *sealing.KeyRing) (*policy.Policy, string, error) {
	opts := policy.Options{Keys: keys, Allow: o.allow, Learn: o.learn != ""}
	file := o.policyFile
	if file == "" {
		if st, err := os.Stat("tokrun.yaml"); err == nil && st.Mode().IsRegular() {
			file = "tokrun.yaml"
		}
	}
	if file == "" {
		p, err := policy.Parse("(no policy)", []byte("version: 1\nrules: []\n"), opts)
		return p, "", err
	}
	// A policy an earlier run's command could have written (a new
	// ./tokrun.yaml, say) is not trusted until someone saves it again.
	if c, err := runner.ChangedDuringRun(o.stateDir, file); err != nil {
		return nil, file, err
	} else if c != nil {
		what := file + " was changed"
		abs, _ := filepath.Abs(file)
		if phys, err := filepath.EvalSymlinks(abs); err != nil || phys != c.Path {
			what = file + " was changed on its way (" + c.Path + ")"
		}
		return nil, file, cli.WithHints(fmt.Errorf("%s during an earlier sandboxed run (%s), so the command of that run may have written it", what, &c.Window),
			"review it; once it is as you want it, save it again (or run: touch -h "+c.Path+", which changes a symlink itself, not what it points to) and tokrun will use it")
	}
	p, err := policy.Load(file, opts)
	if err != nil && keys == nil && o.keyFile == "" && strings.Contains(err.Error(), "key") {
		err = cli.WithHints(err, "secrets are opened with the key in "+defaultKeyFile()+"; give another with --key")
	}
	return p, file, err
}

// placeholders makes a random per-run placeholder for every secret with
// an env name, as env entries and by secret name.
func placeholders(p *policy.Policy, envs []string) ([]string, map[string]string, error) {
	byName := map[string]string{}
	var out []string
	for _, s := range p.Secrets() {
		if s.Env == "" {
			continue
		}
		for _, kv := range envs {
			if k, _, _ := strings.Cut(kv, "="); k == s.Env {
				return nil, nil, cli.Usagef("--env %s would replace the placeholder of secret %s", k, s.Name)
			}
		}
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, nil, err
		}
		ph := "tokrun_placeholder_" + hex.EncodeToString(b[:])
		byName[s.Name] = ph
		out = append(out, s.Env+"="+ph)
	}
	return out, byName, nil
}

// wantTTY reports whether the command gets a terminal: by default when
// both stdin and stdout are terminals (a terminal merges stdout and
// stderr, which must not happen to output redirected to a file).
func (e *env) wantTTY(o *runOptions) (bool, error) {
	stdinTerm, stdoutTerm := isTerminal(e.stdin), isTerminal(e.stdout)
	switch {
	case o.noTTY:
		return false, nil
	case o.tty && !stdinTerm:
		return false, cli.Usagef("--tty needs stdin to be a terminal")
	case o.tty:
		return true, nil
	default:
		return stdinTerm && stdoutTerm, nil
	}
}

func isTerminal(x any) bool {
	f, ok := x.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// readCA reads the CA certificate of an external proxy.
func readCA(path string) ([]byte, error) {
	b, err := regfile.ReadFile(path, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("--proxy-ca: %w", err)
	}
	if !strings.Contains(string(b), "-----BEGIN CERTIFICATE-----") {
		return nil, fmt.Errorf("--proxy-ca: %s holds no PEM certificate", path)
	}
	return b, nil
}

// runCommand is tokrun's main job.
func (e *env) runCommand(o *runOptions, args []string) error {
	envs, mounts, err := o.check()
	if err != nil {
		return err
	}
	tty, err := e.wantTTY(o)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 && !runner.InUserns() {
		// Rootless: everything below runs as root of a user namespace.
		code, err := runner.ReexecInUserns()
		if err != nil {
			return cli.WithHints(fmt.Errorf("rootless mode needs a user namespace: %w", err), "run 'tokrun doctor' to see what this machine supports, or run tokrun as root")
		}
		return exitStatusOrNil(code)
	}
	cfg := runner.Config{
		Command:  args,
		Mounts:   mounts,
		TTY:      tty,
		MaxProcs: o.maxProcs,
		Stdin:    e.stdin,
		Stdout:   e.stdout,
		Stderr:   e.stderr,
		StateDir: o.stateDir,
		Debug:    o.debug,
		Rootless: runner.InUserns(),
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)

	var emb *embedded
	if o.proxy != "" {
		cfg.ProxySocket = strings.TrimPrefix(o.proxy, "unix:")
		if cfg.CACert, err = readCA(o.proxyCA); err != nil {
			return err
		}
		cfg.Env = envs
		// The daemon's key and CA key are not tokrun's to read, but where
		// they are known they must not be visible either.
		cfg.Hidden = []runner.Hidden{
			{Path: defaultKeyFile(), What: "the private key", Hint: keyHint},
			{Path: filepath.Join(filepath.Dir(o.proxyCA), "ca-key.pem"), What: "the proxy's CA key", Hint: "keep tokproxy's state directory outside the working directory and the mounts"},
		}
		hidden, protected, ok := daemonFiles(cfg.ProxySocket)
		cfg.Hidden, cfg.Protected = append(cfg.Hidden, hidden...), protected
		if !ok {
			e.warnf("cannot tell the tokproxy daemon's files (its process cannot be seen, or what listens on the socket is not 'tokproxy serve'), so cannot check that its key, policy and state are outside the working directory and the mounts; make sure they are")
		}
	} else {
		emb, err = e.startEmbedded(o, envs, cancel)
		if err != nil {
			return err
		}
		defer emb.close()
		cfg.CACert = emb.ca.CertPEM()
		cfg.Env = append(emb.env, envs...)
		cfg.Hidden = emb.hidden
		cfg.Mounts = append(cfg.Mounts, emb.readOnly...)
	}

	cfg.Hidden = append(cfg.Hidden, hostSockets()...)
	sb, err := runner.New(cfg)
	if err != nil {
		if emb != nil {
			emb.discard()
		}
		return runFailure(err, cfg.Dir)
	}
	defer sb.Close()
	if o.debug {
		e.notef("gVisor logs of this run: %s", sb.LogDir())
	}
	if emb != nil {
		if err := emb.serve(sb.ProxySocket()); err != nil {
			return runFailure(err, cfg.Dir)
		}
	}
	code, err := sb.Run(ctx)
	if emb != nil {
		emb.finish(e)
	}
	if errors.Is(context.Cause(ctx), errTripwire) {
		e.notef("error: the run was ended by the tripwire (--on-tripwire kill)")
		return exitStatus(runner.ExitTripwire)
	}
	if err != nil {
		return runFailure(err, cfg.Dir)
	}
	if emb != nil && o.learn != "" {
		if err := emb.writeLearned(sb.WindowEnd()); err != nil {
			return err
		}
		e.notef("wrote the learned policy to %s; review it (each learned rule says what it saw; add secrets and inject: where a host needs a credential), then run with --policy %s", o.learn, o.learn)
	}
	return exitStatusOrNil(code)
}

func exitStatusOrNil(code int) error {
	if code != 0 {
		return exitStatus(code)
	}
	return nil
}

// hostSockets are well-known host Unix sockets that grant powers the
// sandbox must not have. gVisor connects the sandbox's Unix sockets through
// to the host, so none of them may be visible inside.
func hostSockets() []runner.Hidden {
	hint := "run tokrun from a directory, and with mounts, that do not hold it"
	out := []runner.Hidden{
		{Path: "/run/docker.sock", What: "the Docker socket", Hint: hint},
		{Path: "/var/run/docker.sock", What: "the Docker socket", Hint: hint},
	}
	if p := os.Getenv("SSH_AUTH_SOCK"); p != "" {
		out = append(out, runner.Hidden{Path: p, What: "your SSH agent's socket", Hint: hint})
	}
	return out
}

const keyHint = "run tokrun from a directory that does not hold the key, or keep the key elsewhere (the default is ~/.config/tokrun/key.txt)"

// runFailure wraps errors of the sandbox run in dir with advice.
func runFailure(err error, dir string) error {
	var hints []string
	var visible *runner.VisibleError
	switch {
	case errors.As(err, &visible):
		if dir == "" { // the runner's default
			dir, _ = os.Getwd()
		}
		if rdir, rerr := filepath.EvalSymlinks(dir); visible.Through != "" && rerr == nil && visible.Through != rdir && visible.Through != dir {
			// Shown through a --mount, not the working directory.
			hints = append(hints, fmt.Sprintf("leave out the --mount of %s, or mount a directory below it that does not hold %s", visible.Through, visible.What))
		} else if visible.Hint != "" {
			hints = append(hints, visible.Hint)
		}
	case os.Geteuid() != 0:
		hints = append(hints, "run 'tokrun doctor' to see what this machine supports")
	}
	return cli.WithHints(err, hints...)
}
