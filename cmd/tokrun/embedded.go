package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokrun/tokrun/internal/atomicfile"
	"github.com/tokrun/tokrun/policy"
	"github.com/tokrun/tokrun/proxy"
	"github.com/tokrun/tokrun/runner"
)

var errTripwire = errors.New("tripwire")

// embedded is the proxy tokrun runs in its own process for one run.
type embedded struct {
	pol      *policy.Policy
	noPolicy bool
	ca       *proxy.CA
	srv      *proxy.Server
	env      []string        // placeholders for the sandbox
	hidden   []runner.Hidden // host files the sandbox must not see
	readOnly []runner.Mount  // policy files shown read-only inside
	learner  *policy.Learner
	// learnDir and learnName are where --learn writes.
	learnDir  *os.Root
	learnName string
	audit     *os.File
	// auditCreated: the audit file did not exist before this run, and is
	// removed if the run never starts.
	auditCreated bool
	admin        *http.Server

	mu      sync.Mutex
	denied  []refused // requests refused for want of a rule, for the hint
	tripped []proxy.TripwireEvent
}

func (e *env) startEmbedded(o *runOptions, envs []string, cancel context.CancelCauseFunc) (*embedded, error) {
	keys, keyFile, err := e.loadKeys(o)
	if err != nil {
		return nil, err
	}
	pol, policyFile, err := loadPolicy(o, keys)
	if err != nil {
		return nil, err
	}
	em := &embedded{pol: pol, noPolicy: policyFile == ""}
	if keyFile != "" {
		em.hidden = append(em.hidden, runner.Hidden{Path: keyFile, What: "the private key", Hint: keyHint})
	}
	if policyFile != "" {
		abs, err := filepath.Abs(policyFile)
		if err == nil {
			// The sandbox may read its policy but never change it for the
			// next run.
			em.readOnly = append(em.readOnly, runner.Mount{Source: abs, Dest: abs, ReadOnly: true})
		}
	}
	var byName map[string]string
	if em.env, byName, err = placeholders(pol, envs); err != nil {
		return nil, err
	}
	if em.ca, err = proxy.NewCA(time.Now()); err != nil {
		return nil, err
	}
	var roots *x509.CertPool
	if o.upstreamCA != "" {
		if roots, err = proxy.LoadRoots(o.upstreamCA); err != nil {
			return nil, fmt.Errorf("--upstream-ca: %w", err)
		}
	}
	var auditLog *proxy.AuditLog
	switch o.audit {
	case "":
	case "-":
		auditLog = proxy.NewAuditLog(e.stderr)
	default:
		f, created, err := proxy.OpenAuditFile(o.audit)
		if err != nil {
			return nil, fmt.Errorf("--audit: %w", err)
		}
		em.audit, em.auditCreated = f, created
		em.hidden = append(em.hidden, runner.Hidden{Path: o.audit, What: "the audit log", Hint: "write the audit log outside the working directory and the mounts, where the command cannot change it"})
		auditLog = proxy.NewAuditLog(f)
	}
	var metrics *proxy.Metrics
	if o.metrics != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		metrics = proxy.NewMetrics(reg)
		metrics.PolicyLoaded(pol)
		ln, err := net.Listen("tcp", o.metrics)
		if err != nil {
			return em.fail(fmt.Errorf("--metrics: %w", err))
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		em.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
		go em.admin.Serve(ln)
	}
	if o.learn != "" {
		// The directory is opened now, before the command runs: the
		// command may replace the path to it, not the directory itself.
		root, err := os.OpenRoot(filepath.Dir(o.learn))
		if err != nil {
			return em.fail(fmt.Errorf("--learn: %w", err))
		}
		em.learnDir, em.learnName = root, filepath.Base(o.learn)
		em.learner = policy.NewLearner()
		for _, ph := range byName {
			em.learner.Redact(ph) // the command sees them; a path may carry one
		}
	}
	em.srv, err = proxy.New(proxy.Config{
		Policy:        func() *policy.Policy { return pol },
		CA:            em.ca,
		UpstreamRoots: roots,
		Audit:         auditLog,
		Metrics:       metrics,
		OnRecord:      em.record,
		OnTripwire: func(ev proxy.TripwireEvent) {
			em.mu.Lock()
			em.tripped = append(em.tripped, ev)
			em.mu.Unlock()
			if o.onTripwire == "kill" {
				cancel(errTripwire)
			}
		},
	})
	if err != nil {
		return em.fail(err)
	}
	for name, ph := range byName {
		if err := em.srv.AddPlaceholders(name, ph); err != nil {
			return em.fail(err)
		}
	}
	return em, nil
}

// record watches decisions: the learner learns from them, and a refused
// host without a policy earns a hint.
func (em *embedded) record(r proxy.Record) {
	if em.learner != nil && r.Decision == "allow" && r.Method != "CONNECT" {
		em.learner.Observe(em.pol.Decide(policy.Request{Scheme: r.Scheme, Host: r.Host, Port: r.Port, Method: r.Method, Path: r.Path}))
	}
	if em.noPolicy && r.Decision == "deny" && r.Reason == string(policy.HostNotAllowed) {
		em.mu.Lock()
		if len(em.denied) < 8 {
			em.denied = append(em.denied, refused{r.Scheme, r.Host, r.Port})
		}
		em.mu.Unlock()
	}
}

// serve starts the proxy on the run's socket.
func (em *embedded) serve(socket string) error {
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return fmt.Errorf("proxy socket: %w", err)
	}
	if err := os.Chmod(socket, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("proxy socket: %w", err)
	}
	// Serve returns when close shuts the server down.
	go func() { _ = em.srv.Serve(ln, proxy.ServeOptions{}) }()
	return nil
}

// finish reports what the user should know once the command ended.
func (em *embedded) finish(e *env) {
	em.mu.Lock()
	defer em.mu.Unlock()
	for _, t := range em.tripped {
		e.notef("warning: tripwire: the command sent the placeholder of secret %s to %s (in the %s); the request was refused", t.Secret, t.Host, t.Where)
	}
	seen := map[refused]bool{}
	for _, r := range em.denied {
		if !seen[r] {
			seen[r] = true
			e.hintf("%s", r.hint())
		}
	}
}

// refused is a request the deny-all default refused.
type refused struct {
	scheme, host string
	port         int
}

// hint says how to allow r: --allow where it can (HTTPS to a public
// host), a policy rule where it cannot.
func (r refused) hint() string {
	const head = "no policy (no --policy, no ./tokrun.yaml): the request to "
	where := r.host
	if r.port != 443 || r.scheme != "https" {
		where = r.scheme + "://" + net.JoinHostPort(r.host, strconv.Itoa(r.port))
	}
	allow := r.host
	if r.port != 443 {
		allow = net.JoinHostPort(r.host, strconv.Itoa(r.port))
	}
	if a, err := netip.ParseAddr(r.host); err == nil && !proxy.PublicAddress(a) {
		return head + where + " was refused; --allow never reaches a private address: write a policy with a rule for it that sets unsafe_allow_private_network: true"
	}
	if r.scheme != "https" {
		return head + where + " was refused; --allow covers HTTPS only: write a policy with a rule for it (scheme: http)"
	}
	return head + where + " was refused; allow it with --allow " + allow + ", or write a policy"
}

// writeLearned writes the learned policy, once the run's window (when its
// command could write) has closed at end. Its change time must come after
// end, or the next run would take it for a file the command planted; file
// times come from a coarse clock, which can lag behind end by a tick, so
// the time is moved on until it does.
func (em *embedded) writeLearned(end time.Time) error {
	err := atomicfile.WriteIn(em.learnDir, em.learnName, 0o644, func(w io.Writer) error {
		return em.learner.WritePolicy(w, em.pol)
	})
	if err != nil {
		return err
	}
	for range 100 {
		fi, err := em.learnDir.Lstat(em.learnName)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || time.Unix(st.Ctim.Unix()).After(end) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
		if err := em.learnDir.Chmod(em.learnName, 0o644); err != nil { // a new change time
			return err
		}
	}
	return nil
}

// fail undoes a start that went wrong: nothing it created is left.
func (em *embedded) fail(err error) (*embedded, error) {
	em.close()
	em.discard()
	return nil, err
}

// discard undoes what startEmbedded left on disk for a run that never
// started: an audit file it created is removed.
func (em *embedded) discard() {
	if em.audit != nil && em.auditCreated {
		_ = os.Remove(em.audit.Name())
	}
}

func (em *embedded) close() {
	if em.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = em.srv.Shutdown(ctx)
		cancel()
		_ = em.srv.Close()
	}
	if em.admin != nil {
		_ = em.admin.Close()
	}
	if em.audit != nil {
		_ = em.audit.Close()
	}
	if em.learnDir != nil {
		_ = em.learnDir.Close()
	}
}
