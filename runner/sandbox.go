package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/runsc/config"
	"gvisor.dev/gvisor/runsc/container"
)

// Sandbox is one run of a command in gVisor. Make it with [New], serve the
// proxy on [Sandbox.ProxySocket] unless Config.ProxySocket was given, then
// call [Sandbox.Run] once and [Sandbox.Close].
type Sandbox struct {
	cfg    Config
	st     state
	id     string
	runDir string
	logDir string
	socket string
	lock   *runLock
	// uid and gid run the command: the owner of the working directory, so
	// that what it creates there is the owner's (never a set-user-ID root
	// file made by a run as root in someone's project).
	uid, gid int
	// started and ended track the run's entries in the history.
	started, ended bool
	end            time.Time // when the window closed
	spec           *specs.Spec
	conf           *config.Config

	// pidfds hold the sandbox's and gofer's processes while Run waits
	// (see holdProcs).
	pidfds []int

	mu sync.Mutex
	c  *container.Container
}

// New checks cfg, cleans up after crashed runs, and prepares a run: its
// directory, skeleton root and spec. Nothing runs yet.
func New(cfg Config) (*Sandbox, error) {
	if len(cfg.Command) == 0 {
		return nil, errors.New("no command to run")
	}
	if cfg.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("working directory: %w", err)
		}
		cfg.Dir = wd
	}
	dir, err := resolve(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("working directory: %w", err)
	}
	if dir == "/" {
		return nil, errors.New("the working directory is /, which would give the command write access to the whole host; run tokrun from a project directory")
	}
	cfg.Dir = dir
	if home, err := os.UserHomeDir(); err == nil {
		if h, err := resolve(home); err == nil && h != "/" {
			if _, ok := within(h, dir); ok {
				return nil, fmt.Errorf("the working directory %s holds your home directory, which would give the command write access to your dotfiles and credentials; run tokrun from a project directory", dir)
			}
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the tokrun binary: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return nil, fmt.Errorf("finding the tokrun binary: %w", err)
	}
	// Mount sources are resolved once, here, and the resolved paths go
	// into the spec: a symlink changed later cannot redirect a mount.
	cfg.Mounts = slices.Clone(cfg.Mounts)
	for i, m := range cfg.Mounts {
		if cfg.Mounts[i].Source, err = resolve(m.Source); err != nil {
			return nil, fmt.Errorf("mount %s: %w", m.Source, err)
		}
	}
	stateDir := cfg.StateDir
	if stateDir == "" {
		stateDir = DefaultStateDir()
	}
	if stateDir, err = filepath.Abs(stateDir); err != nil {
		return nil, err
	}
	// Checked before the state directory is created, so that a refused
	// run leaves nothing in the working directory.
	userMounts := []specs.Mount{bind(dir, dir, false)}
	for _, m := range cfg.Mounts {
		userMounts = append(userMounts, bind(m.Source, m.Dest, m.ReadOnly))
	}
	// Even read-only, a visible state directory would let the command
	// connect to other runs' proxy sockets.
	systemMounts := []specs.Mount{bind("/usr", "/usr", true), bind("/etc", "/etc", true)}
	if inside, through, err := exposure(existingAncestor(stateDir), append(systemMounts, userMounts...), false); err != nil || inside != "" {
		if err != nil {
			return nil, err
		}
		return nil, &VisibleError{Hidden: Hidden{Path: stateDir, What: "the state directory", Hint: "give --state-dir a directory outside the working directory and the mounts"}, Inside: inside, Through: through}
	}
	// The history of runs must not be writable inside either: the command
	// could erase its own run from it before planting a policy.
	if h := persistentHistory(); h != "" { // read by every check, whatever the state directory
		if inside, through, err := exposure(existingAncestor(filepath.Dir(h)), userMounts, true); err != nil || inside != "" {
			if err != nil {
				return nil, err
			}
			return nil, &VisibleError{Hidden: Hidden{Path: filepath.Dir(h), What: "the history of runs", Hint: "run tokrun from a directory, and with mounts, that do not hold it"}, Inside: inside, Through: through, Writable: true}
		}
	}
	if inside, _, err := exposure(exe, userMounts, true); err != nil || inside != "" {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("the tokrun binary %s would be writable inside the sandbox at %s, so the command could replace it for the next run; install tokrun outside the working directory and read-write mounts", exe, inside)
	}
	st, err := openState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	cleanStale(st)

	s := &Sandbox{cfg: cfg, st: st, id: newID()}
	s.runDir = st.runDir(s.id)
	s.logDir = st.logDir(s.id)
	for _, d := range []string{s.runDir, s.logDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	if s.lock, err = lockRun(s.runDir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	s.socket = cfg.ProxySocket
	if s.socket == "" {
		s.socket = filepath.Join(s.runDir, "proxy.sock")
		// The mount needs its source to exist before the proxy listens.
	}
	s.uid, s.gid, err = commandUser(cfg)
	if err != nil {
		return nil, err
	}
	l, err := buildLayout(s.runDir, exe, s.socket, cfg.Dir, cfg.Mounts, cfg.CACert)
	if err != nil {
		return nil, fmt.Errorf("preparing the sandbox root: %w", err)
	}
	if err := checkHidden(cfg.Hidden, l.mounts); err != nil {
		return nil, err
	}
	if err := checkProtected(cfg.Protected, l.mounts); err != nil {
		return nil, err
	}
	home := "/root"
	if s.uid != 0 {
		if home, err = l.addHome(s.uid, s.gid); err != nil {
			return nil, err
		}
	}
	env, err := Environment(l.bundle, append([]string{"HOME=" + home}, cfg.Env...))
	if err != nil {
		return nil, err
	}
	args := []string{insideInit}
	if cfg.TTY {
		args = append(args, "--tty")
	}
	args = append(append(args, "--"), cfg.Command...)
	maxProcs := cfg.MaxProcs
	if maxProcs <= 0 {
		maxProcs = DefaultMaxProcs
	}
	s.spec = buildSpec(l, args, env, cfg.Dir, cfg.TTY, s.uid, s.gid, maxProcs)
	b, err := json.Marshal(s.spec)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(s.runDir, "config.json"), b, 0o600); err != nil {
		return nil, err
	}
	if s.conf, err = gvisorConfig(st.runscRoot(), s.logDir, cfg.Rootless, cfg.Debug); err != nil {
		return nil, fmt.Errorf("gVisor configuration: %w", err)
	}
	ok = true
	return s, nil
}

// commandUser returns who runs the command: root of the user namespace in
// rootless mode (the caller on the host), otherwise the owner of the
// working directory.
func commandUser(cfg Config) (int, int, error) {
	if cfg.Rootless {
		return 0, 0, nil
	}
	st, err := os.Stat(cfg.Dir)
	if err != nil {
		return 0, 0, fmt.Errorf("working directory: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, errors.New("working directory: no owner")
	}
	return int(sys.Uid), int(sys.Gid), nil
}

// ID is the run's sandbox ID.
func (s *Sandbox) ID() string { return s.id }

// ProxySocket is the host path of the Unix socket the sandbox reaches as
// its proxy. Unless Config.ProxySocket was given, the caller must listen
// on it before Run.
func (s *Sandbox) ProxySocket() string { return s.socket }

// LogDir is where gVisor's logs of this run are written.
func (s *Sandbox) LogDir() string { return s.logDir }

// Run starts the sandbox and waits for the command. It returns the exit
// code (128+N for a command killed by signal N). When ctx ends, the
// sandbox is killed and Run returns ctx's error. SIGINT, SIGTERM, SIGHUP
// and SIGQUIT sent to tokrun are forwarded to the command; a second SIGINT
// or SIGTERM kills the sandbox.
func (s *Sandbox) Run(ctx context.Context) (int, error) {
	setLogTarget(s.logDir)
	// Caught from the start, so that a signal during startup is forwarded
	// rather than killing tokrun.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGWINCH)
	defer signal.Stop(sigs)

	if s.cfg.ProxySocket == "" && s.uid != 0 {
		// The run's own socket: the command's user must be able to open it.
		if err := os.Chown(s.socket, s.uid, s.gid); err != nil {
			return ExitFailure, fmt.Errorf("proxy socket: %w", err)
		}
	}
	std, err := newStdio(s.cfg, s.runDir)
	if err != nil {
		return ExitFailure, err
	}
	defer std.close()
	// Without its start in the history, what the command plants could
	// pass for the user's own next time: no record, no run.
	if err := s.recordStart(); err != nil {
		return ExitFailure, fmt.Errorf("recording the run in the history of runs %s: %w", s.st.history, err)
	}
	defer s.recordEnd()
	c, err := createContainer(s.conf, s.id, s.spec, s.runDir, std.consoleSocket, std.in, std.out, std.err)
	if err != nil {
		return ExitFailure, fmt.Errorf("creating the sandbox: %w", err)
	}
	s.mu.Lock()
	s.c = c
	s.mu.Unlock()
	std.started()
	if err := c.Start(s.conf); err != nil {
		return ExitFailure, fmt.Errorf("starting the sandbox: %w", err)
	}
	s.holdProcs(c)
	defer s.releaseProcs()
	if err := std.attach(); err != nil {
		_ = c.SignalContainer(unix.SIGKILL, true)
		return ExitFailure, err
	}

	type result struct {
		ws  unix.WaitStatus
		err error
	}
	done := make(chan result, 1)
	stops := 0
	go func() {
		ws, err := c.Wait()
		done <- result{ws, err}
	}()
	// Signals reach the sandbox through one goroutine, in the order they
	// came: a stuck sandbox holds that goroutine, not this loop, which
	// must still hear the second request to stop.
	fwd := make(chan syscall.Signal, 8)
	fwdDone := make(chan struct{})
	go func() {
		defer close(fwdDone)
		for sig := range fwd {
			if sig == unix.SIGKILL {
				_ = c.SignalContainer(unix.SIGKILL, true)
				continue
			}
			_ = c.SignalContainer(sig, false)
			// The command may have stopped init (kill -STOP 1): wake it
			// so that it can forward the signal.
			_ = c.SignalContainer(unix.SIGCONT, false)
		}
	}()
	defer func() {
		// Once the sandbox has ended, or was killed on the host, a call
		// in progress fails at once.
		close(fwd)
		select {
		case <-fwdDone:
		case <-time.After(killGrace):
		}
	}()
	send := func(sig syscall.Signal) {
		select {
		case fwd <- sig:
		default: // the sandbox does not take signals: a kill follows if asked twice
		}
	}
	kill := func() <-chan time.Time {
		send(unix.SIGKILL)
		return time.After(killGrace)
	}
	var force <-chan time.Time // after a kill, when to kill on the host
	for {
		select {
		case <-force:
			s.killHost()
		case r := <-done:
			s.recordEnd() // before the caller writes anything, --learn output say
			std.drain()
			if r.err != nil {
				return ExitFailure, fmt.Errorf("waiting for the sandbox: %w", r.err)
			}
			if r.ws.Signaled() {
				return 128 + int(r.ws.Signal()), nil
			}
			return r.ws.ExitStatus(), nil
		case sig := <-sigs:
			if sig == unix.SIGWINCH {
				std.resize()
				continue
			}
			if sig == unix.SIGINT || sig == unix.SIGTERM {
				if stops++; stops > 1 {
					// A second request to stop: the command (or a stopped
					// init) did not end, so the sandbox is killed.
					if force == nil {
						force = kill()
					}
					continue
				}
			}
			send(sig.(syscall.Signal))
		case <-ctx.Done():
			select {
			case <-done:
			case <-kill():
				s.killHost()
				<-done
			}
			std.drain()
			return ExitFailure, ctx.Err()
		}
	}
}

// recordStart writes the start of the window in which the command can
// write to the host, with where it can write.
func (s *Sandbox) recordStart() error {
	places := []string{s.cfg.Dir}
	for _, m := range s.cfg.Mounts {
		if !m.ReadOnly {
			places = append(places, m.Source)
		}
	}
	if err := s.st.appendHistory(startRecord(s.id, places)); err != nil {
		return err
	}
	s.started = true
	return nil
}

// recordEnd closes the window once the command can no longer write. If
// the end cannot be written, the window stays open, which refuses more,
// until the run is known to be over (see Window.finished).
func (s *Sandbox) recordEnd() {
	if s.started && !s.ended {
		s.ended = true
		s.end = time.Now()
		s.st.appendHistory(historyRecord{ID: s.id, End: s.end}) //nolint:errcheck // see above
	}
}

// WindowEnd is when the run's command could no longer write to the host
// (the end of its window in the history of runs), once Run has returned.
func (s *Sandbox) WindowEnd() time.Time { return s.end }

// killGrace is how long a killed sandbox has to end before its
// processes are killed on the host (its kernel stuck in a call its gofer
// never answers, say).
const killGrace = 5 * time.Second

// holdProcs opens pidfds of the sandbox's and the gofer's processes, once
// they have started, so that killHost cannot signal a process that took
// a PID of theirs after they were reaped.
func (s *Sandbox) holdProcs(c *container.Container) {
	for _, pid := range []int{c.Sandbox.Getpid(), c.GoferPid.Load()} {
		if pid <= 0 {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			log.Warningf("tokrun: pidfd of PID %d: %v; a stuck sandbox cannot be killed on the host", pid, err)
			continue
		}
		s.pidfds = append(s.pidfds, fd)
	}
}

// killHost kills the sandbox's and the gofer's processes on the host.
func (s *Sandbox) killHost() {
	for _, fd := range s.pidfds {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
}

// releaseProcs closes the pidfds of holdProcs.
func (s *Sandbox) releaseProcs() {
	for _, fd := range s.pidfds {
		unix.Close(fd)
	}
	s.pidfds = nil
}

// Close destroys the sandbox and removes the run's directory. gVisor's
// logs stay in LogDir.
func (s *Sandbox) Close() error {
	s.mu.Lock()
	c := s.c
	s.c = nil
	s.mu.Unlock()
	var err error
	if c != nil {
		err = c.Destroy()
	}
	s.recordEnd()
	if s.runDir != "" {
		if e := removeRunDir(s.runDir); err == nil {
			err = e
		}
	}
	s.lock.release()
	s.st.pruneLogs()
	return err
}

// cleanStale destroys the sandboxes of runs whose tokrun died and removes
// their directories, cgroups and state.
func cleanStale(st state) {
	runs, err := st.stale()
	if err != nil {
		return
	}
	for id, l := range runs {
		if c, err := container.Load(st.runscRoot(), container.FullID{SandboxID: id, ContainerID: id}, container.LoadOpts{Exact: true, SkipCheck: true}); err == nil {
			_ = c.Destroy()
		}
		_ = removeRunDir(st.runDir(id))
		st.appendHistory(historyRecord{ID: id, End: time.Now()})
		l.release()
	}
	// Sandboxes whose run directory is gone.
	ids, err := container.ListSandboxes(st.runscRoot())
	if err != nil {
		return
	}
	for _, id := range ids {
		if !strings.HasPrefix(id.SandboxID, idPrefix) {
			continue
		}
		if _, err := os.Stat(st.runDir(id.SandboxID)); err == nil {
			continue
		}
		if c, err := container.Load(st.runscRoot(), id, container.LoadOpts{Exact: true, SkipCheck: true}); err == nil {
			_ = c.Destroy()
		}
	}
}
