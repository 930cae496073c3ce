package examples

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const unitFile = "deploy/systemd/tokproxy.service"

// unit is a parsed systemd unit file: section -> key -> values, in order.
type unit map[string]map[string][]string

// parseUnit parses the subset of systemd's unit syntax the example uses:
// sections, Key=Value lines, comments and backslash continuations.
func parseUnit(data []byte) (unit, error) {
	u := unit{}
	var section, pending string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: not Key=Value in a section: %q", i+1, line)
		}
		u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	return u, nil
}

// last returns the value in force for a key (the last assignment).
func (u unit) last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

func loadUnit(t *testing.T) unit {
	t.Helper()
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(data)
	if err != nil {
		t.Fatalf("%s: %v", unitFile, err)
	}
	return u
}

// execStart returns ExecStart split into words. The example uses no
// quoting, which keeps this split exact; the test refuses quotes.
func execStart(t *testing.T, u unit) []string {
	t.Helper()
	v, ok := u.last("Service", "ExecStart")
	if !ok {
		t.Fatal("no ExecStart")
	}
	if strings.ContainsAny(v, `"'`) {
		t.Fatalf("ExecStart uses quotes, which this test does not parse: %s", v)
	}
	return strings.Fields(v)
}

// flagValues returns the values of every --flag VALUE or --flag=VALUE.
func flagValues(args []string) map[string][]string {
	m := map[string][]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			continue
		}
		if k, v, ok := strings.Cut(a, "="); ok {
			m[k] = append(m[k], v)
		} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			m[a] = append(m[a], args[i+1])
			i++
		} else {
			m[a] = append(m[a], "")
		}
	}
	return m
}

func TestSystemdUnitHardening(t *testing.T) {
	u := loadUnit(t)
	want := map[string]string{
		"NoNewPrivileges":         "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"RestrictNamespaces":      "yes",
		"RestrictSUIDSGID":        "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"StateDirectory":          "tokproxy",
		"RuntimeDirectory":        "tokproxy",
		"UMask":                   "0077",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
	}
	for k, v := range want {
		got, ok := u.last("Service", k)
		if !ok {
			t.Errorf("[Service] %s is missing, want %q", k, v)
		} else if got != v {
			t.Errorf("[Service] %s=%s, want %q", k, got, v)
		}
	}
	if !slices.Contains(u["Service"]["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter = %q, want @system-service", u["Service"]["SystemCallFilter"])
	}
	user, ok := u.last("Service", "User")
	dynamic, _ := u.last("Service", "DynamicUser")
	if (!ok || user == "root" || user == "0") && dynamic != "yes" {
		t.Errorf("the service runs as root (User=%q, DynamicUser=%q)", user, dynamic)
	}
	// The key reaches the service as a credential only.
	for _, k := range []string{"Environment", "EnvironmentFile", "SetCredential"} {
		if vs := u["Service"][k]; len(vs) > 0 {
			t.Errorf("[Service] %s=%q: the key must come from LoadCredential only", k, vs)
		}
	}
	if got := u["Service"]["LoadCredential"]; len(got) != 1 {
		t.Errorf("LoadCredential = %q, want one credential for the key", got)
	}
	// Stopping waits longer than tokproxy's drain.
	stop, _ := u.last("Service", "TimeoutStopSec")
	stopD, err1 := time.ParseDuration(stop)
	drain := flagValues(execStart(t, u))["--drain-timeout"]
	if len(drain) != 1 {
		t.Fatalf("ExecStart has no single --drain-timeout: %q", drain)
	}
	drainD, err2 := time.ParseDuration(drain[0])
	if err1 != nil || err2 != nil || stopD <= drainD {
		t.Errorf("TimeoutStopSec=%s must exceed --drain-timeout %s", stop, drain[0])
	}
}

// TestSystemdUnitPaths checks that everything tokproxy writes is in a
// directory systemd creates for it and ProtectSystem=strict leaves
// writable, and that the key is the credential systemd loads.
func TestSystemdUnitPaths(t *testing.T) {
	u := loadUnit(t)
	args := execStart(t, u)
	if args[0] != "/usr/local/bin/tokproxy" || len(args) < 2 || args[1] != "serve" {
		t.Fatalf("ExecStart = %q, want /usr/local/bin/tokproxy serve ...", args)
	}
	f := flagValues(args[2:])
	dir := func(key, root string) string {
		v, ok := u.last("Service", key)
		if !ok {
			t.Fatalf("[Service] %s is missing", key)
		}
		return filepath.Join(root, v) + "/"
	}
	runtime, state, logs, conf := dir("RuntimeDirectory", "/run"), dir("StateDirectory", "/var/lib"), dir("LogsDirectory", "/var/log"), dir("ConfigurationDirectory", "/etc")
	one := func(flag string) string {
		if len(f[flag]) != 1 {
			t.Fatalf("ExecStart: %s given %d times, want once", flag, len(f[flag]))
		}
		return f[flag][0]
	}
	for _, l := range f["--listen"] {
		p, ok := strings.CutPrefix(l, "unix:")
		if !ok {
			t.Errorf("--listen %s: the unit should serve local sandboxes on a Unix socket", l)
		} else if !strings.HasPrefix(p, runtime) {
			t.Errorf("--listen %s: not in RuntimeDirectory %s", l, runtime)
		}
	}
	if got := one("--state-dir"); got+"/" != state {
		t.Errorf("--state-dir %s, want the StateDirectory %s", got, state)
	}
	if got := one("--audit"); !strings.HasPrefix(got, logs) {
		t.Errorf("--audit %s: not in LogsDirectory %s", got, logs)
	}
	if got := one("--policy"); !strings.HasPrefix(got, conf) {
		t.Errorf("--policy %s: not in ConfigurationDirectory %s", got, conf)
	}
	cred, _ := u.last("Service", "LoadCredential")
	name, _, _ := strings.Cut(cred, ":")
	if got := one("--key"); got != "%d/"+name {
		t.Errorf("--key %s, want the credential %%d/%s", got, name)
	}
	if host, _, err := net.SplitHostPort(one("--admin")); err != nil || !net.ParseIP(host).IsLoopback() {
		t.Errorf("--admin %s: want a loopback address", one("--admin"))
	}
	if m := one("--socket-mode"); m != "0660" && m != "0600" {
		t.Errorf("--socket-mode %s: want 0600 or 0660", m)
	}
}

// TestSystemdUnitFlags checks that every flag in ExecStart is one that
// `tokproxy serve --help` documents.
func TestSystemdUnitFlags(t *testing.T) {
	args := execStart(t, loadUnit(t))
	known := serveFlags(t)
	for f := range flagValues(args[2:]) {
		if !known[f] {
			t.Errorf("ExecStart uses %s, which tokproxy serve does not have", f)
		}
	}
}

// TestSystemdUnitExecStartServes runs the unit's ExecStart, with its
// directories moved into a temporary directory and the admin listener on
// a free loopback port, and checks that it serves: /readyz answers, the
// socket refuses a request the policy denies and audits it, ExecReload's
// SIGHUP reloads the policy, and SIGTERM stops it cleanly.
func TestSystemdUnitExecStartServes(t *testing.T) {
	u := loadUnit(t)
	args := execStart(t, u)
	tmp := t.TempDir()
	// Unix socket paths are short; the temporary directory may not be.
	if len(tmp) > 60 {
		t.Skipf("temporary directory %s too long for a Unix socket path", tmp)
	}
	moves := map[string]string{}
	for key, root := range map[string]string{"RuntimeDirectory": "/run", "StateDirectory": "/var/lib", "LogsDirectory": "/var/log", "ConfigurationDirectory": "/etc"} {
		v, _ := u.last("Service", key)
		moves[filepath.Join(root, v)] = filepath.Join(tmp, strings.ToLower(key))
	}
	moves["%d"] = filepath.Join(tmp, "credentials")
	for _, d := range moves {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f := flagValues(args[2:])
	cred, _ := u.last("Service", "LoadCredential")
	credName, _, _ := strings.Cut(cred, ":")
	copyFile(t, testKey, filepath.Join(moves["%d"], credName), 0o400)
	policyPath := remap(f["--policy"][0], moves)
	copyFile(t, "policies/openai.yaml", policyPath, 0o644)
	copyFile(t, "policies/openai.sealed", filepath.Join(filepath.Dir(policyPath), "openai.sealed"), 0o644)

	var run []string
	for i, a := range args[1:] {
		if args[i] == "--admin" {
			a = "127.0.0.1:0"
		} else {
			a = remap(a, moves)
		}
		run = append(run, a)
	}
	d := startTokproxy(t, run...)

	sock := strings.TrimPrefix(remap(f["--listen"][0], moves), "unix:")
	st, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if want := f["--socket-mode"][0]; fmt.Sprintf("%04o", st.Mode().Perm()) != want {
		t.Errorf("socket mode %04o, want %s", st.Mode().Perm(), want)
	}
	resp := proxyRequest(t, sock, "GET http://api.openai.com/v1/models HTTP/1.1\r\nHost: api.openai.com\r\n\r\n")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Tokrun-Reason") == "" {
		t.Errorf("plain http through the socket: %s, reason %q; want 403 with a reason", resp.Status, resp.Header.Get("X-Tokrun-Reason"))
	}
	// The audit record may be written just after the response.
	var audit []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if audit, err = os.ReadFile(remap(f["--audit"][0], moves)); err == nil && bytes.Contains(audit, []byte(`"decision":"deny"`)) {
			break
		}
	}
	if !bytes.Contains(audit, []byte(`"decision":"deny"`)) {
		t.Errorf("audit log %q (%v): want the denial", audit, err)
	}
	if _, err := os.Stat(filepath.Join(remap(f["--state-dir"][0], moves), "ca.pem")); err != nil {
		t.Errorf("no CA in the state directory: %v", err)
	}

	// ExecReload.
	d.signal(t, syscall.SIGHUP)
	waitFor(t, "http://"+d.admin+"/metrics", `tokrun_policy_reloads_total{result="success"} 1`)

	// Stop.
	d.signal(t, syscall.SIGTERM)
	if err := d.wait(t); err != nil {
		t.Errorf("tokproxy after SIGTERM: %v\n%s", err, d.logs())
	}
}

// serveFlags returns the long flags `tokproxy serve --help` documents.
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	help, stderr, err := tokproxy(t, "serve", "--help")
	if err != nil {
		t.Fatalf("tokproxy serve --help: %v\n%s", err, stderr)
	}
	_, flagsSection, ok := strings.Cut(help, "\nFlags:\n")
	if !ok {
		t.Fatalf("no Flags section in tokproxy serve --help")
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?(--[a-z-]+)`).FindAllStringSubmatch(flagsSection, -1) {
		known[m[1]] = true
	}
	if !known["--policy"] || !known["--listen"] {
		t.Fatalf("could not read the flags from --help: %v", known)
	}
	return known
}

// remap replaces a leading systemd directory (or the %d specifier) in an
// argument, after an optional "unix:", with its test location.
func remap(arg string, moves map[string]string) string {
	prefix, rest := "", arg
	if p, ok := strings.CutPrefix(arg, "unix:"); ok {
		prefix, rest = "unix:", p
	}
	for from, to := range moves {
		if rest == from || strings.HasPrefix(rest, from+"/") {
			return prefix + to + strings.TrimPrefix(rest, from)
		}
	}
	return arg
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil { // umask
		t.Fatal(err)
	}
}

func proxyRequest(t *testing.T, sock, raw string) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestSystemdAnalyze runs systemd-analyze verify on the unit, which must
// print nothing (it exits 0 even for unknown keys, so silence is the
// check), and systemd-analyze security, whose exposure must stay "OK".
func TestSystemdAnalyze(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian: systemd)")
	}
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart is executable: point it at the build.
	data = bytes.ReplaceAll(data, []byte("/usr/local/bin/tokproxy"), []byte(tokproxyBin))
	path := filepath.Join(t.TempDir(), "tokproxy.service")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// 20 is exposure 2.0, the top of systemd's "OK" band.
	out, err = exec.Command(sa, "security", "--offline=yes", "--threshold=20", "--no-pager", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	}
}

// TestSystemdSysusers creates the unit's user and group from
// tokproxy.sysusers.conf in an empty root, and checks they are the ones
// the unit runs as.
func TestSystemdSysusers(t *testing.T) {
	su, err := exec.LookPath("systemd-sysusers")
	if err != nil {
		t.Skip("systemd-sysusers not installed (Debian: systemd)")
	}
	u := loadUnit(t)
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, err := filepath.Abs("deploy/systemd/tokproxy.sysusers.conf")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(su, "--root="+root, conf).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	group, _ := os.ReadFile(filepath.Join(root, "etc/group"))
	user, _ := u.last("Service", "User")
	grp, _ := u.last("Service", "Group")
	var uid, gid string
	for _, line := range strings.Split(string(passwd), "\n") {
		if f := strings.Split(line, ":"); len(f) == 7 && f[0] == user {
			uid, gid = f[2], f[3]
			if !strings.HasSuffix(f[6], "nologin") {
				t.Errorf("user %s has the shell %s", user, f[6])
			}
		}
	}
	if uid == "" || uid == "0" {
		t.Fatalf("systemd-sysusers made no unprivileged user %s:\n%s", user, passwd)
	}
	var primary string
	for _, line := range strings.Split(string(group), "\n") {
		if f := strings.Split(line, ":"); len(f) == 4 && f[2] == gid {
			primary = f[0]
		}
	}
	if primary != grp {
		t.Errorf("user %s's primary group is %q, want the unit's Group=%s", user, primary, grp)
	}
}
