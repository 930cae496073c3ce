package runner

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/runsc/specutils"
)

// DefaultStateDir is $XDG_RUNTIME_DIR/tokrun when XDG_RUNTIME_DIR is set,
// otherwise /run/tokrun for root and ~/.cache/tokrun for other users
// (rootless runs), who cannot write /run.
func DefaultStateDir() string {
	return defaultStateDir(realRoot(), os.Getenv)
}

func defaultStateDir(root bool, getenv func(string) string) string {
	if d := getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "tokrun")
	}
	if h := getenv("HOME"); !root && filepath.IsAbs(h) {
		return filepath.Join(h, ".cache", "tokrun")
	}
	return "/run/tokrun"
}

// state is the layout of the state directory:
//
//	runsc/      gVisor's container state (runsc --root)
//	runs/ID/    one directory per live run, locked while it lives
//	logs/ID/    gVisor's logs of a run, kept for the last keepLogs runs
type state struct {
	dir     string
	history string // the history of runs (history.go): in dir, or persistent
}

const (
	idPrefix = "tokrun-"
	keepLogs = 20
)

func (s state) runscRoot() string       { return filepath.Join(s.dir, "runsc") }
func (s state) runDir(id string) string { return filepath.Join(s.dir, "runs", id) }
func (s state) logDir(id string) string { return filepath.Join(s.dir, "logs", id) }

// openState opens the state directory dir ("" for the default) and the
// persistent history of runs (or, where there is none, the state
// directory's).
func openState(dir string) (state, error) {
	history := persistentHistory()
	if history != "" && os.MkdirAll(filepath.Dir(history), 0o700) != nil {
		history = "" // no usable home: the state directory keeps it
	}
	given := dir != ""
	if !given {
		dir = DefaultStateDir()
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return state{}, err
	}
	for _, d := range []string{dir, filepath.Join(dir, "runs"), filepath.Join(dir, "logs"), filepath.Join(dir, "runsc")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			if !given {
				return state{}, fmt.Errorf("state directory: %w (give one with --state-dir, or set XDG_RUNTIME_DIR)", err)
			}
			return state{}, fmt.Errorf("state directory: %w", err)
		}
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return state{}, fmt.Errorf("state directory: %w", err)
	}
	if !st.IsDir() {
		return state{}, fmt.Errorf("state directory %s is not a directory", dir)
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return state{}, fmt.Errorf("state directory: %w", err)
		}
	}
	if history == "" {
		history = filepath.Join(dir, historyFile)
	}
	return state{dir: dir, history: history}, nil
}

func newID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return idPrefix + hex.EncodeToString(b[:])
}

// runLock is held, with flock, for the life of a run: a run directory
// whose lock can be taken belongs to a crashed run.
type runLock struct{ f *os.File }

func lockRun(dir string) (*runLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return &runLock{f: f}, nil
}

func (l *runLock) release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// stale returns the IDs of runs whose owner is gone, taking their locks
// so that no other tokrun cleans them at the same time.
func (s state) stale() (map[string]*runLock, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "runs"))
	if err != nil {
		return nil, err
	}
	out := map[string]*runLock{}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), idPrefix) {
			continue
		}
		l, err := lockRun(s.runDir(e.Name()))
		if err != nil {
			continue // alive, or not ours to judge
		}
		out[e.Name()] = l
	}
	return out, nil
}

// pruneLogs keeps the log directories of the newest keepLogs runs.
func (s state) pruneLogs() {
	dir := filepath.Join(s.dir, "logs")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type aged struct {
		name string
		mod  int64
	}
	var all []aged
	for _, e := range entries {
		if info, err := e.Info(); err == nil && e.IsDir() {
			all = append(all, aged{e.Name(), info.ModTime().UnixNano()})
		}
	}
	if len(all) <= keepLogs {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod > all[j].mod })
	for _, a := range all[keepLogs:] {
		os.RemoveAll(filepath.Join(dir, a.name))
	}
}

// removeRunDir removes a run directory, which holds no mounts: gVisor
// mounts inside its own mount namespaces.
func removeRunDir(dir string) error {
	err := os.RemoveAll(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// RemoveState removes a state directory that no run uses any more: it
// unmounts the network namespace gVisor pins there for its gofers, then
// deletes everything.
func RemoveState(dir string) error {
	specutils.UnmountNullNetNS(filepath.Join(dir, "runsc"))
	return os.RemoveAll(dir)
}
