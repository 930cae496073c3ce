package runner

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tokrun/tokrun/internal/atomicfile"
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

// historyPath is where the history of runs is kept, whatever the state
// directory (a run with --state-dir is recorded where every later check
// reads): a place that outlives the default state directory, which is a
// tmpfs (/run) or goes at logout ($XDG_RUNTIME_DIR). That is
// /var/lib/tokrun for root, and ~/.local/state/tokrun for others,
// rootless runs included (root of their user namespace only), with home
// the user's home directory from the user database, so that every shell
// of the user, whatever its environment, finds the same history. "" means
// there is no such place: the state directory's history is used.
func historyPath(root bool, home string) string {
	switch {
	case root:
		return filepath.Join("/var/lib/tokrun", historyFile)
	case filepath.IsAbs(home):
		return filepath.Join(home, ".local", "state", "tokrun", historyFile)
	}
	return ""
}

// persistentHistory is historyPath for this process: its user's home
// directory from the user database, when that is a directory (service
// users such as nobody have none), else $HOME. Inside tokrun's user
// namespace the user is the one mapped to its root. (A variable, so that
// tests never touch the machine's history.)
var persistentHistory = func() string {
	home := os.Getenv("HOME")
	if u, err := user.LookupId(strconv.Itoa(outerUID())); err == nil && u.HomeDir != "" {
		if fi, err := os.Stat(u.HomeDir); err == nil && fi.IsDir() {
			home = u.HomeDir
		}
	}
	return historyPath(realRoot(), home)
}

// outerUID is this process's user ID outside its user namespace (from
// /proc/self/uid_map; the ID itself if that cannot be read).
func outerUID() int {
	uid := os.Getuid()
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return uid
	}
	for line := range strings.Lines(string(b)) {
		var in, out, n int
		if _, err := fmt.Sscan(line, &in, &out, &n); err == nil && uid >= in && uid < in+n {
			return out + uid - in
		}
	}
	return uid
}

type historyRecord struct {
	ID     string    `json:"id"`
	Places []string  `json:"places,omitempty"` // writable host directories, on start
	Start  time.Time `json:"start,omitzero"`
	End    time.Time `json:"end,omitzero"`
	// On start, who runs it: the boot, and tokrun's process (its ID and
	// start time, in clock ticks since boot), so that a run whose end was
	// never recorded (a reboot, a kill) is known to be over.
	Machine  string `json:"machine,omitempty"`
	Boot     string `json:"boot,omitempty"`
	PIDNS    string `json:"pidns,omitempty"`
	PID      int    `json:"pid,omitempty"`
	PIDStart uint64 `json:"pid_start,omitempty"`
}

// Window is a span of time in which a run's command could write to Places.
type Window struct {
	ID         string
	Places     []string
	Start, End time.Time

	machine, boot, pidns string
	pid                  int
	pidStart             uint64
	unrecorded           bool // its end was not in the history read
	foundFinished        bool // its end was not recorded: windows found the run over
}

// clockLag is how far behind the clock file times may be: they come from
// a coarse clock, a tick or so behind. A window opens that much earlier.
const clockLag = 50 * time.Millisecond

// startRecord is the history's record of a run starting now.
func startRecord(id string, places []string) historyRecord {
	r := historyRecord{ID: id, Places: places, Start: time.Now().Add(-clockLag), Machine: machineID(), Boot: bootID(), PIDNS: pidNS(), PID: os.Getpid()}
	r.PIDStart, _ = processStart(r.PID)
	return r
}

// machineID identifies this machine ("" if unknown): a history in a home
// directory may be shared with others (NFS).
func machineID() string { return firstLine("/etc/machine-id") }

// pidNS identifies this process's PID namespace ("" if unknown): a PID
// means a process only there.
func pidNS() string {
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return ns
}

// bootID identifies this boot of the machine ("" if unknown).
func bootID() string { return firstLine("/proc/sys/kernel/random/boot_id") }

// firstLine returns the content of a one-line file, or "".
func firstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// bootTime is when this boot began.
func bootTime() (time.Time, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, err
			}
			return time.Unix(n, 0), nil
		}
	}
	return time.Time{}, errors.New("/proc/stat: no btime")
}

// processStart returns the start time of process pid, in clock ticks
// since boot (field 22 of /proc/PID/stat).
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold spaces and parentheses
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// finished reports when an open window's run was over, if it is known to
// be: it ran in an earlier boot (over by this boot's start), or its
// tokrun process is gone (over by now, when that is found).
//
// Both are judged only for a run of this machine (another's boot and
// processes are not known here), and the process only in this boot and
// PID namespace.
func (w *Window) finished(here host, now time.Time) (time.Time, bool) {
	if w.machine == "" || w.machine != here.machine || w.boot == "" || here.boot == "" {
		return time.Time{}, false
	}
	if w.boot != here.boot {
		if !here.bootStart.IsZero() && w.Start.Before(here.bootStart) {
			return here.bootStart, true
		}
		return time.Time{}, false
	}
	// A start time not read at the start leaves the process unknown.
	if w.pid > 0 && w.pidStart != 0 && w.pidns != "" && w.pidns == here.pidns {
		if start, err := processStart(w.pid); err != nil || start != w.pidStart {
			return now, true
		}
	}
	return time.Time{}, false
}

// host is what finished compares a run with: this machine, boot and PID
// namespace.
type host struct {
	machine, boot, pidns string
	bootStart            time.Time
}

func thisHost() host {
	h := host{machine: machineID(), boot: bootID(), pidns: pidNS()}
	h.bootStart, _ = bootTime()
	return h
}

// appendHistory adds a record to the history of runs. Runs append and
// trim it at once: a lock file next to it (the history itself is replaced
// when trimmed) keeps a record from being lost between a trim's read and
// its rename.
func (st state) appendHistory(r historyRecord) error {
	path := st.history
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN) //nolint:errcheck // closing releases it too
	if info, err := os.Stat(path); err == nil && info.Size() > historyMax {
		if err := trimHistory(path); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// trimHistory drops the older half of the history, but for the start of
// a run that has not ended: its window is still open. The caller holds
// the history's lock.
func trimHistory(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
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
	return atomicfile.Write(path, 0o600, func(w io.Writer) error {
		_, err := w.Write(append(kept, b[cut:]...))
		return err
	})
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
			w.machine, w.boot, w.pidns, w.pid, w.pidStart = r.Machine, r.Boot, r.PIDNS, r.PID, r.PIDStart
		}
		if r.End.After(w.End) { // the latest: a reader that found the run over may write after the run's own end
			w.End = r.End
		}
	}
	var out []Window
	here := thisHost()
	for _, id := range order {
		w := byID[id]
		if w.Start.IsZero() {
			continue
		}
		if w.End.IsZero() {
			w.End, w.unrecorded = now, true
			if end, ok := w.finished(here, now); ok {
				w.End, w.foundFinished = end, true
			}
		}
		out = append(out, *w)
	}
	return out, sc.Err()
}

// closeFinished records the end of the windows that windows found over
// without one, so that the end stays put: a policy saved again after it
// is then trusted.
func (st state) closeFinished(ws []Window) {
	for _, w := range ws {
		if w.foundFinished {
			st.appendHistory(historyRecord{ID: w.ID, End: w.End})
		}
	}
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
	if p := persistentHistory(); p != "" {
		files = append(files, p)
	}
	if stateDir == "" {
		stateDir = DefaultStateDir() // where earlier versions kept it
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	files = append(files, filepath.Join(abs, historyFile))
	perFile := make([][]Window, len(files))
	now := time.Now()
	for i, f := range files {
		w, err := state{history: f}.windows(now)
		if err != nil {
			return nil, err
		}
		perFile[i] = w
	}
	// A run whose end one history recorded ended then in all of them,
	// not when a reader of another found it over: that would move its
	// end later at every reading.
	recorded := map[string]time.Time{}
	for _, w := range slices.Concat(perFile...) {
		if !w.unrecorded && w.End.After(recorded[w.ID]) {
			recorded[w.ID] = w.End
		}
	}
	var ws []Window
	for i, f := range files {
		for j, w := range perFile[i] {
			if end, ok := recorded[w.ID]; ok && w.unrecorded {
				perFile[i][j].End, perFile[i][j].foundFinished = end, true
			}
		}
		state{history: f}.closeFinished(perFile[i])
		ws = append(ws, perFile[i]...)
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
