package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A policy learned with --learn lets the same run succeed without --learn.
func TestLearnedPolicyAllowsTheSameRun(t *testing.T) {
	w := newWorld(t)
	w.script("agent.py", `
import os, urllib.request, urllib.error
key = os.environ.get("DEMO_API_KEY", "none")
def call(method, url, headers={}):
    req = urllib.request.Request(url, method=method, headers=headers, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return "%s %d %s" % (method, r.status, r.read().decode().strip())
    except urllib.error.HTTPError as e:
        return "%s %d %s" % (method, e.code, e.headers.get("X-Tokrun-Reason"))
for item in ("12345", "67890"):
    print(call("GET", "`+w.apiURL("/v1/items/")+`" + item, {"Authorization": "Bearer " + key}))
print(call("POST", "`+w.apiURL("/v1/chat")+`", {"Authorization": "Bearer " + key}))
print(call("GET", "`+w.otherURL("/status")+`"))
print(call("GET", "`+w.apiURL("/v1/check/key=")+`" + key))
`)
	learned := filepath.Join(w.project, "learned.yaml")
	r := w.run("", "--learn", learned, "--", "python3", "agent.py")
	if r.code != 0 {
		t.Fatalf("learn run failed:\n%s", r)
	}
	if strings.Contains(r.stdout, testSecret) || strings.Contains(strings.Join(w.seenAuths(), ""), testSecret) {
		t.Fatalf("a secret was injected in learn mode:\n%s\nAPI saw %q", r, w.seenAuths())
	}
	text, err := os.ReadFile(learned)
	if err != nil {
		t.Fatalf("no learned policy: %v\n%s", err, r)
	}
	for _, bad := range []string{"tokrun_placeholder_", testSecret, "12345", "67890"} {
		if strings.Contains(string(text), bad) {
			t.Errorf("the learned policy holds %q:\n%s", bad, text)
		}
	}
	// Used where it was written, as tokrun's message says: tokrun wrote
	// it, after the run's window, so it is not taken for a planted file.
	r = w.runRaw("", "--key", w.keyFile, "--policy", learned, "--upstream-ca", w.caFile, "--state-dir", w.stateDir, "--", "python3", "agent.py")
	if r.code != 0 {
		t.Fatalf("run with the learned policy failed:\n%s\npolicy:\n%s", r, text)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 5 results:\n%s", r)
	}
	for _, l := range append(lines[:3:3], lines[4]) {
		if !strings.Contains(l, " 200 ") || !strings.Contains(l, `"authorized":true`) {
			t.Errorf("API call not allowed with the secret under the learned policy: %s\npolicy:\n%s", l, text)
		}
	}
	if !strings.HasPrefix(lines[3], "GET 200 other") {
		t.Errorf("the second host is not allowed under the learned policy: %s\npolicy:\n%s", lines[3], text)
	}
}

// The command cannot redirect the learned policy by replacing the output
// directory with a symlink: tokrun opened the directory before the run.
func TestLearnOutputCannotBeRedirected(t *testing.T) {
	w := newWorld(t)
	elsewhere := t.TempDir()
	os.Mkdir(filepath.Join(w.project, "out"), 0o755)
	r := w.run("", "--learn", "out/learned.yaml", "--", "/bin/sh", "-c", "mv out out.old && ln -s "+elsewhere+" out")
	if r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "learned.yaml")); err == nil {
		t.Errorf("the learned policy followed the command's symlink")
	}
	if _, err := os.Stat(filepath.Join(w.project, "out.old", "learned.yaml")); err != nil {
		t.Errorf("the learned policy is not in the directory tokrun opened: %v", err)
	}
}
