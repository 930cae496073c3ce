package runner

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// The history of runs records, in the state directory, when each run's
// command could write to the host: from just before its sandbox starts
// until it has exited, and where (the working directory and read-write
// mounts). A file whose status changed inside such a window, under such a
// place, may have been written by a sandboxed command. tokrun uses it to
// refuse a policy that an earlier run could have planted for the next one.
// Change times (ctime) cannot be set by a process, unlike modification
// times.

const (
	historyFile = "history.jsonl"
	historyMax  = 1 << 20 // bytes; beyond this the oldest half is dropped
)

// historyPath is where the history of runs is kept. With a state
// directory given, it is there. Otherwise it must outlive the default
// state directory, which is a tmpfs (/run) or goes at logout
// ($XDG_RUNTIME_DIR): /var/lib/tokrun for root, $XDG_STATE_HOME/tokrun
// (~/.local/state/tokrun) for others, rootless runs included (root of
// their user namespace only). "" means the state directory's.
func historyPath(stateDir string, root bool, getenv func(string) string) string {
	if stateDir != "" {
		return ""
	}
	if root {
		return filepath.Join("/var/lib/tokrun", historyFile)
	}
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "tokrun", historyFile)
	}
	if h := getenv("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".local", "state", "tokrun", historyFile)
	}
	return ""
}

type historyRecord struct {
	ID     string    `json:"id"`
	Places []string  `json:"places,omitempty"` // writable host directories, on start
	Start  time.Time `json:"start,omitzero"`
	End    time.Time `json:"end,omitzero"`
}

// Window is a span of time in which a run's command could write to Places.
type Window struct {
	ID         string
	Places     []string
	Start, End time.Time
}

func (st state) appendHistory(r historyRecord) {
	path := st.history
	if info, err := os.Stat(path); err == nil && info.Size() > historyMax {
		st.trimHistory(path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	b, _ := json.Marshal(r)
	f.Write(append(b, '\n'))
}

// trimHistory drops the older half of the history, but for the start of
// a run that has not ended: its window is still open.
func (st state) trimHistory(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	cut := len(b) / 2
	if i := bytes.IndexByte(b[cut:], '\n'); i >= 0 {
		cut += i + 1
	}
	ended := map[string]bool{}
	for line := range bytes.Lines(b) {
		var r historyRecord
		if json.Unmarshal(line, &r) == nil && !r.End.IsZero() {
			ended[r.ID] = true
		}
	}
	var kept []byte
	for line := range bytes.Lines(b[:cut]) {
		var r historyRecord
		if json.Unmarshal(line, &r) == nil && !r.Start.IsZero() && !ended[r.ID] {
			kept = append(kept, line...)
		}
	}
	tmp := path + ".tmp"
	if os.WriteFile(tmp, append(kept, b[cut:]...), 0o600) == nil {
		os.Rename(tmp, path)
	}
}

// windows reads the history: one window per run, open-ended (until now)
// for a run that is still going.
func (st state) windows(now time.Time) ([]Window, error) {
	f, err := os.Open(st.history)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	byID := map[string]*Window{}
	var order []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r historyRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.ID == "" {
			continue
		}
		w := byID[r.ID]
		if w == nil {
			w = &Window{ID: r.ID}
			byID[r.ID] = w
			order = append(order, r.ID)
		}
		if !r.Start.IsZero() {
			w.Start, w.Places = r.Start, r.Places
		}
		if !r.End.IsZero() {
			w.End = r.End
		}
	}
	var out []Window
	for _, id := range order {
		w := byID[id]
		if w.Start.IsZero() {
			continue
		}
		if w.End.IsZero() {
			w.End = now
		}
		out = append(out, *w)
	}
	return out, sc.Err()
}

// Change is an entry on the way to a file that changed during a run.
type Change struct {
	Window
	Path string // the entry that changed: the file, a symlink or a directory on the way
}

// ChangedDuringRun reports the run, if any, during which the file at path
// could have been put there by that run's command: the file, or any entry
// on the way to it (a symlink, a directory that was swapped in), changed
// below a place the command could write. Each entry is judged where it
// really is (its directory resolved), so a working directory reached
// through a symlink hides nothing. The runs are those of the persistent
// history and of the state directory stateDir ("" for the default).
func ChangedDuringRun(stateDir, path string) (*Change, error) {
	// The persistent history, whatever the state directory: reading more
	// history only refuses more.
	var files []string
	if p := historyPath("", realRoot(), os.Getenv); p != "" {
		files = append(files, p)
	}
	if stateDir == "" {
		stateDir = DefaultStateDir() // where earlier versions kept it
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	var ws []Window
	for _, f := range append(files, filepath.Join(abs, historyFile)) {
		w, err := state{history: f}.windows(time.Now())
		if err != nil {
			return nil, err
		}
		ws = append(ws, w...)
	}
	if len(ws) == 0 {
		return nil, nil
	}
	type changed struct {
		path  string
		ctime time.Time
	}
	var cs []changed
	// entries adds every entry from p up to the root, each with its own
	// change time (a symlink's, not its target's).
	entries := func(p string) {
		for cur := p; cur != "/" && cur != "."; cur = filepath.Dir(cur) {
			dir, err := filepath.EvalSymlinks(filepath.Dir(cur))
			if err != nil {
				continue
			}
			phys := filepath.Join(dir, filepath.Base(cur))
			var st syscall.Stat_t
			if syscall.Lstat(phys, &st) == nil {
				cs = append(cs, changed{phys, time.Unix(st.Ctim.Unix())})
			}
		}
	}
	if p, err := filepath.Abs(path); err == nil {
		entries(p)
	}
	if p, err := resolve(path); err == nil {
		entries(p)
	}
	for _, w := range ws {
		for _, c := range cs {
			if c.ctime.Before(w.Start) || c.ctime.After(w.End) {
				continue
			}
			for _, place := range w.Places {
				// Below the place, not the place itself: its change time
				// moves with every file the command makes in it.
				if rest, ok := within(c.path, place); ok && rest != "" {
					return &Change{Window: w, Path: c.path}, nil
				}
			}
		}
	}
	return nil, nil
}

// String describes the window for messages.
func (w *Window) String() string {
	where := "?"
	if len(w.Places) > 0 {
		where = w.Places[0]
	}
	return fmt.Sprintf("run %s in %s, %s to %s", w.ID, where, w.Start.Format(time.TimeOnly), w.End.Format(time.TimeOnly))
}

// realRoot reports whether tokrun runs as root of the host, not of a user
// namespace of its own.
func realRoot() bool { return os.Geteuid() == 0 && !InUserns() }
