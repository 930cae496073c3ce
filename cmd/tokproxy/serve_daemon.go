package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/netutil"

	"github.com/tokrun/tokrun/internal/regfile"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tokrun/tokrun/internal/cli"
	"github.com/tokrun/tokrun/policy"
	"github.com/tokrun/tokrun/proxy"
	"github.com/tokrun/tokrun/sealing"
)

// daemon is a started proxy: listeners bound, policy loaded.
type daemon struct {
	opts    *serveOptions
	log     *slog.Logger
	store   *policy.Store
	metrics *proxy.Metrics
	srv     *proxy.Server
	health  health

	listeners []*boundListener
	admin     *http.Server
	adminLn   net.Listener
	audit     *proxy.AuditFile // nil when the audit log is stderr
	auditLog  *proxy.AuditLog
	// reopenFailing is set while the audit log's path cannot be opened
	// again (only the files goroutine uses it).
	reopenFailing bool
	newCA         string // the certificate of a CA created at this start

	// lastSum is the SHA-256 of the policy file's content as last loaded
	// or rejected, so that the watcher reloads once per change. It and
	// the fields below are the files goroutine's.
	lastSum [32]byte
	// changedSum is new content the watcher saw, first at changedSince;
	// it is loaded once it has stayed the same for watchSettle.
	changedSum   [32]byte
	changedSince time.Time
	// beforeReload, if set, runs before each reload (tests use it to
	// hold a reload as a hung file system would).
	beforeReload func()
}

// watchSettle is how long a changed policy file must stay the same before
// the watcher loads it: a file written in place (not renamed into place)
// is not put into force half-written, which could be a valid policy that
// lacks the deny rules still to come.
const watchSettle = time.Second

// adminMaxConns bounds the admin listener's open connections.
const adminMaxConns = 128

// startDaemon loads everything the proxy needs and binds its listeners.
// It returns every problem it finds; on error nothing is left behind
// (no socket, no new audit file).
func (e *env) startDaemon(o *serveOptions) (*daemon, []error) {
	var errs []error
	d := &daemon{opts: o}
	d.log = slog.New(slog.NewTextHandler(e.stderr, nil))
	// net/http's transport writes to the standard logger, quoting up to
	// 4 KiB of what an upstream sent out of turn, which can echo an
	// injected secret. The daemon's own logging is slog; the standard
	// logger is silenced.
	log.SetOutput(io.Discard)

	var keys *sealing.KeyRing
	keyOK := true
	if o.keyFile != "" {
		var err error
		keys, err = sealing.LoadKeyFile(o.keyFile, func(msg string) { e.warnf("%s", msg) })
		if err != nil {
			keyOK = false
			errs = append(errs, cli.WithHints(err, "a key file holds TOKRUN-SECRET-KEY-1... lines, as written by 'sealctl keygen -o FILE'"))
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.metrics = proxy.NewMetrics(reg)

	// Without its key the policy's secrets would only add noise to the
	// key's own error.
	if keyOK {
		d.lastSum = fileSum(o.policyFile)
		store, err := policy.NewStore(o.policyFile, policy.Options{Keys: keys, Now: e.now}, d.reloaded)
		if err != nil {
			errs = append(errs, cli.WithHints(err, keyHints(err, o.keyFile)...))
		} else {
			d.store = store
			for _, w := range store.Policy().Warnings() {
				e.warnf("%s", w)
			}
		}
	}

	var tokens []proxy.Token
	if o.tokenFile != "" {
		var err error
		if tokens, err = parseTokenFile(o.tokenFile); err != nil {
			errs = append(errs, err)
		}
		if !hasTCP(o.specs) {
			e.warnf("--token-file is not used: there is no tcp listener")
		}
	}

	var roots *x509.CertPool
	if o.upstreamCA != "" {
		var err error
		if roots, err = proxy.LoadRoots(o.upstreamCA); err != nil {
			errs = append(errs, fmt.Errorf("--upstream-ca: %w", err))
		}
	}

	// An existing CA is loaded now, so that its problems are reported with
	// the others; a new one is created only once everything else is good.
	var ca *proxy.CA
	stateDir := o.stateDir
	if o.caCert != "" {
		var err error
		if ca, err = proxy.LoadCA(o.caCert, o.caKey); err != nil {
			errs = append(errs, fmt.Errorf("loading the CA: %w", err))
		}
	} else {
		if stateDir == "" {
			var err error
			if stateDir, err = defaultStateDir(); err != nil {
				errs = append(errs, err)
			}
		}
		if stateDir != "" {
			if _, err := os.Stat(filepath.Join(stateDir, "ca-key.pem")); err == nil {
				if ca, err = proxy.LoadOrCreateCA(stateDir); err != nil {
					errs = append(errs, fmt.Errorf("loading the CA from %s: %w", stateDir, err))
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}

	// Bind everything, open the audit log, then create the CA (last, so
	// that a failure before it leaves no new CA behind); undo it all on
	// failure.
	for _, spec := range o.specs {
		b, err := listen(spec, o.mode)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d.listeners = append(d.listeners, b)
	}
	if o.admin != "" {
		ln, err := net.Listen("tcp", o.admin)
		if err != nil {
			errs = append(errs, fmt.Errorf("--admin %s: %w", o.admin, unwrapOpError(err)))
		} else {
			// Unauthenticated by design, so bounded: a flood of idle
			// connections waits for a slot instead of using up memory
			// and the process's file descriptors.
			d.adminLn = netutil.LimitListener(ln, adminMaxConns)
		}
	}
	var auditW io.Writer = e.stderr
	createdAudit := false
	if len(errs) == 0 && o.audit != "-" {
		f, created, err := proxy.OpenAuditFileAt(o.audit)
		if err != nil {
			errs = append(errs, fmt.Errorf("--audit: %w", err))
		} else {
			d.audit, auditW, createdAudit = f, f, created
		}
	}
	if len(errs) == 0 && ca == nil {
		var err error
		if ca, err = proxy.LoadOrCreateCA(stateDir); err != nil {
			errs = append(errs, fmt.Errorf("creating the CA in %s: %w", stateDir, err))
		} else {
			d.newCA = filepath.Join(stateDir, "ca.pem")
		}
	}
	if len(errs) == 0 {
		var err error
		d.auditLog = proxy.NewBatchedAuditLog(auditW, o.auditBatch)
		d.srv, err = proxy.New(proxy.Config{
			Policy:        d.store.Policy,
			CA:            ca,
			UpstreamRoots: roots,
			Audit:         d.auditLog,
			Metrics:       d.metrics,
			Logger:        d.log,
			Tokens:        tokens,
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		d.closeListeners()
		if d.audit != nil {
			d.audit.Close()
			if createdAudit {
				os.Remove(o.audit)
			}
		}
		return nil, errs
	}
	d.metrics.PolicyLoaded(d.store.Policy())
	if d.adminLn != nil {
		d.admin = newAdminServer(reg, &d.health)
	}
	return d, nil
}

// keyHints is the advice for a policy that cannot load for want of --key.
func keyHints(err error, keyFile string) []string {
	var problems policy.Errors
	if keyFile != "" || !errors.As(err, &problems) {
		return nil
	}
	for _, p := range problems {
		if strings.Contains(p.Msg, "without a key file") {
			return []string{"give the proxy's private key file with --key KEYFILE"}
		}
	}
	return nil
}

func hasTCP(specs []listenSpec) bool {
	for _, s := range specs {
		if s.network == "tcp" {
			return true
		}
	}
	return false
}

// fileSum is the SHA-256 of a file's content; an unreadable file sums as
// its error, so that a file that disappears and comes back is a change.
func fileSum(path string) [32]byte {
	data, err := regfile.ReadFile(path, 64<<20)
	if err != nil {
		return sha256.Sum256([]byte("error: " + err.Error()))
	}
	return sha256.Sum256(data)
}

// reloaded is the store's callback after every reload.
func (d *daemon) reloaded(p *policy.Policy, err error) {
	if err != nil {
		d.metrics.PolicyReloads.WithLabelValues("failure").Inc()
		var problems policy.Errors
		if errors.As(err, &problems) {
			for _, pr := range problems {
				d.log.Error("policy problem", "problem", pr.String())
			}
		} else {
			d.log.Error("policy problem", "problem", err.Error())
		}
		d.log.Warn("policy reload failed; the previous policy stays in force", "file", d.opts.policyFile, "hash", p.Hash())
		return
	}
	d.metrics.PolicyReloads.WithLabelValues("success").Inc()
	d.metrics.PolicyLoaded(p)
	for _, w := range p.Warnings() {
		d.log.Warn("policy warning", "problem", w.String())
	}
	d.log.Info("policy reloaded", "file", d.opts.policyFile, "hash", p.Hash(), "rules", len(p.Rules()), "deny_rules", len(p.DenyRules()), "secrets", len(p.Secrets()))
}

// watch checks the policy file for a change, and loads a change once the
// content has stayed the same for watchSettle.
func (d *daemon) watch(now time.Time) {
	switch sum := fileSum(d.opts.policyFile); {
	case sum == d.lastSum:
		d.changedSince = time.Time{}
	case sum != d.changedSum || d.changedSince.IsZero():
		d.changedSum, d.changedSince = sum, now
	case now.Sub(d.changedSince) >= watchSettle:
		d.log.Info("policy file changed; reloading", "file", d.opts.policyFile)
		d.reload()
		d.changedSince = time.Time{}
	}
}

// reload loads the policy file again, noting the content it saw.
func (d *daemon) reload() {
	if d.beforeReload != nil {
		d.beforeReload()
	}
	d.lastSum = fileSum(d.opts.policyFile)
	d.store.Reload() //nolint:errcheck // reported by reloaded
}

// files runs the policy watcher and the reloads and audit reopens SIGHUP
// asks for, one at a time, until stop is closed. They read and open files,
// which can block in the kernel (a policy on a hung network mount): on a
// goroutine of their own they hold up only each other, never a stop.
func (d *daemon) files(tick <-chan time.Time, hup, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case now := <-tick:
			d.watch(now)
			d.reopenAudit()
		case <-hup:
			select {
			case <-stop: // no reloads once stopping
				return
			default:
			}
			d.log.Info("SIGHUP; reloading the policy", "file", d.opts.policyFile)
			d.reload()
			d.reopenAudit()
		}
	}
}

// run serves until a signal stops the daemon and returns the exit
// status.
func (d *daemon) run(sigs <-chan os.Signal) int {
	if d.newCA != "" {
		d.log.Info("created the interception CA; clients must trust its certificate", "cert", d.newCA)
	}
	serveErr := make(chan error, len(d.listeners)+1)
	for _, b := range d.listeners {
		go func() {
			err := d.srv.Serve(b.ln, proxy.ServeOptions{RequireAuth: b.spec.network == "tcp"})
			if !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("listener %s: %w", b.spec, err)
			}
		}()
		attrs := []any{"listen", b.spec.String()}
		if b.spec.network == "tcp" {
			// The address bound, which differs from the flag for port 0.
			attrs = []any{"listen", "tcp:" + b.ln.Addr().String(), "auth", "token"}
			if !isLoopback(b.spec.addr) {
				d.log.Warn("tcp listener on a non-loopback address: clients' tokens and plain-HTTP requests cross the network unencrypted", "listen", b.spec.String())
			}
		} else {
			attrs = append(attrs, "auth", "socket mode", "mode", fmt.Sprintf("%04o", d.opts.mode))
		}
		d.log.Info("serving", attrs...)
	}
	if d.admin != nil {
		go func() {
			if err := d.admin.Serve(d.adminLn); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("admin listener: %w", err)
			}
		}()
		d.log.Info("admin serving", "listen", d.adminLn.Addr().String(), "paths", "/metrics /healthz /readyz")
	}
	// Ready before the log line says so, which scripts (and the tests)
	// wait for.
	d.health.ready.Store(true)
	p := d.store.Policy()
	d.log.Info("policy loaded", "file", d.opts.policyFile, "hash", p.Hash(), "rules", len(p.Rules()), "deny_rules", len(p.DenyRules()), "secrets", len(p.Secrets()))

	var tick <-chan time.Time
	if d.opts.watchInterval > 0 {
		t := time.NewTicker(d.opts.watchInterval)
		defer t.Stop()
		tick = t.C
	}
	// A SIGHUP during a reload asks for one more after it (the file may
	// have changed since that one read it); more are the same one.
	hup := make(chan struct{}, 1)
	stopFiles := make(chan struct{})
	filesDone := make(chan struct{})
	go func() {
		defer close(filesDone)
		d.files(tick, hup, stopFiles)
	}()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				select {
				case hup <- struct{}{}:
				default:
				}
				continue
			}
			close(stopFiles)
			d.log.Info("stopping: draining requests in flight; a second signal stops at once", "signal", sig.String(), "timeout", d.opts.drainTimeout.String())
			return d.drain(sigs, filesDone)
		case err := <-serveErr:
			close(stopFiles)
			d.log.Error("stopping after a listener failed", "error", err.Error())
			d.health.draining.Store(true)
			d.srv.Close()
			d.shutdownAdmin()
			d.closeListeners()
			d.waitFiles(filesDone)
			d.closeAudit()
			return exitError
		}
	}
}

// filesWait bounds how long a stop waits for a reload or audit reopen
// under way before closing the audit log without it.
const filesWait = 2 * time.Second

// waitFiles waits up to filesWait for the files goroutine to end, so that
// no reopen of the audit log races its closing.
func (d *daemon) waitFiles(done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(filesWait):
		d.log.Warn("a policy reload or audit log reopen is still blocked reading a file; stopping without it", "file", d.opts.policyFile)
	}
}

// drain stops accepting, waits for requests in flight up to the drain
// timeout or a second stopping signal, then closes everything.
func (d *daemon) drain(sigs <-chan os.Signal, filesDone <-chan struct{}) int {
	d.health.draining.Store(true)
	// Close the listeners first: Server.Shutdown stops accepting only
	// after the requests in flight inside tunnels have finished.
	d.closeProxyListeners()
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.drainTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.srv.Shutdown(ctx) }()
	status := exitOK
wait:
	for {
		select {
		case err := <-done:
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				d.log.Error("drain timed out; closing the remaining connections", "timeout", d.opts.drainTimeout.String())
				status = exitError
			case err != nil && !errors.Is(err, net.ErrClosed): // closed above
				d.log.Error("drain failed; closing the remaining connections", "error", err.Error())
				status = exitError
			}
			break wait
		case sig := <-sigs:
			if sig == syscall.SIGHUP { // logrotate's, say: no reload, and no stop either
				d.log.Info("SIGHUP while draining: no reload; still draining")
				continue
			}
			d.log.Warn("second signal; stopping at once", "signal", sig.String())
			status = exitError
			break wait
		}
	}
	d.srv.Close()
	d.shutdownAdmin()
	d.closeListeners()
	d.waitFiles(filesDone)
	d.closeAudit()
	d.log.Info("stopped")
	return status
}

func (d *daemon) shutdownAdmin() {
	if d.admin == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if d.admin.Shutdown(ctx) != nil {
		d.admin.Close()
	}
}

// closeListeners closes the listeners (the proxy closes the ones it
// served; a listener it had not started on yet is closed here) and
// removes the sockets this process created.
func (d *daemon) closeListeners() {
	d.closeProxyListeners()
	if d.adminLn != nil {
		d.adminLn.Close()
	}
}

// closeProxyListeners closes the proxy's listeners, not the admin one.
func (d *daemon) closeProxyListeners() {
	for _, b := range d.listeners {
		b.close()
	}
}

// closeAudit writes the audit records held and closes the file. Records
// of exchanges still running (a drain cut short) are written at once
// after it, and fail if the file was closed.
func (d *daemon) closeAudit() {
	if err := d.auditLog.Close(); err != nil {
		d.auditFailed(err)
	}
	if d.audit == nil {
		return
	}
	if err := d.audit.Close(); err != nil {
		d.log.Error("audit log", "error", err.Error())
	}
}

// auditFailed logs and counts the records a write of held ones lost.
func (d *daemon) auditFailed(err error) {
	n := proxy.LostRecords(err)
	d.metrics.AuditErrors.Add(float64(n))
	d.log.Error("audit write failed", "records", n, "error", err.Error())
}

// reopenAudit opens the audit log's path again when it no longer names
// the open file (rotated, removed or replaced). A failure is counted as
// an audit write error, as the records that follow may be lost.
func (d *daemon) reopenAudit() {
	if d.audit == nil {
		return
	}
	// What is held belongs to the file the path named when it was held.
	if err := d.auditLog.Flush(); err != nil {
		d.auditFailed(err)
	}
	reopened, err := d.audit.Reopen()
	switch {
	case err != nil:
		// Said and counted once, not at every check while it lasts.
		if !d.reopenFailing {
			d.reopenFailing = true
			d.metrics.AuditErrors.Inc()
			d.log.Error("the audit log's path no longer names its file, and it cannot be opened again; records may be lost", "file", d.opts.audit, "error", err.Error())
		}
	case reopened:
		d.reopenFailing = false
		d.log.Info("audit log reopened: its path named another file or none", "file", d.opts.audit)
	}
}
