package runner

import (
	"bufio"
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
	path := filepath.Join(st.dir, historyFile)
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

func (st state) trimHistory(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	half := b[len(b)/2:]
	if i := indexByte(half, '\n'); i >= 0 {
		half = half[i+1:]
	}
	tmp := path + ".tmp"
	if os.WriteFile(tmp, half, 0o600) == nil {
		os.Rename(tmp, path)
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// windows reads the history: one window per run, open-ended (until now)
// for a run that is still going.
func (st state) windows(now time.Time) ([]Window, error) {
	f, err := os.Open(filepath.Join(st.dir, historyFile))
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

// ChangedDuringRun reports the run, if any, during which the file at path
// (or the symlink that names it) changed under a place that run's command
// could write. stateDir is the state directory of those runs ("" for the
// default).
func ChangedDuringRun(stateDir, path string) (*Window, error) {
	if stateDir == "" {
		stateDir = DefaultStateDir()
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	ws, err := state{dir: abs}.windows(time.Now())
	if err != nil || len(ws) == 0 {
		return nil, err
	}
	type changed struct {
		path  string
		ctime time.Time
	}
	var cs []changed
	if p, err := filepath.Abs(path); err == nil {
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) == nil {
			cs = append(cs, changed{p, time.Unix(st.Ctim.Unix())})
		}
	}
	if p, err := resolve(path); err == nil {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil {
			cs = append(cs, changed{p, time.Unix(st.Ctim.Unix())})
		}
	}
	for _, w := range ws {
		for _, c := range cs {
			if c.ctime.Before(w.Start) || c.ctime.After(w.End) {
				continue
			}
			for _, place := range w.Places {
				if _, ok := within(c.path, place); ok {
					return &w, nil
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
