package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// --audit writes one JSON line per decision, and --metrics serves the
// embedded proxy's metrics while the run lasts; neither holds a secret or
// a placeholder.
func TestAuditAndMetrics(t *testing.T) {
	w := newWorld(t)
	audit := filepath.Join(t.TempDir(), "audit.log")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w.script("agent.py", `
import os, time, urllib.request, urllib.error
key = os.environ["DEMO_API_KEY"]
urllib.request.urlopen(urllib.request.Request("`+w.apiURL("/v1/a")+`", headers={"Authorization": key}), timeout=30).read()
try:
    urllib.request.urlopen("https://127.0.0.1:`+portString(w.apiPort)+`/admin", timeout=30)
except urllib.error.HTTPError as e:
    pass
print("called", key, flush=True)
while not os.path.exists("scraped"):
    time.sleep(0.05)
`)
	pr, pw := io.Pipe()
	cmd := w.start(nil, pw, nil, "--audit", audit, "--metrics", addr, "--", "python3", "agent.py")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(pr)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "called ") {
		cmd.Process.Kill()
		t.Fatalf("agent did not call: %q", sc.Text())
	}
	placeholder := strings.TrimPrefix(sc.Text(), "called ")
	go io.Copy(io.Discard, pr)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("scrape: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	writeFile(t, filepath.Join(w.project, "scraped"), "", 0o644)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: %v", err)
	}
	pw.Close()
	metrics := string(body)
	for _, want := range []string{
		// Two CONNECTs (urllib opens a connection per request) and the request.
		`tokrun_decisions_total{decision="allow",reason="allowed",rule="api"} 3`,
		`tokrun_injections_total{rule="api",secret="demo"} 1`,
		`tokrun_decisions_total{decision="deny",reason="path_not_allowed",rule=""} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	text, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(audit); st.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v, want 0600", st.Mode().Perm())
	}
	var allowed, denied int
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line is not JSON: %q", line)
		}
		switch {
		case rec["decision"] == "allow" && rec["path"] == "/v1/a":
			allowed++
			if s, _ := rec["secrets"].([]any); len(s) != 1 || s[0] != "demo" {
				t.Errorf("allowed record without the injected secret's name: %s", line)
			}
		case rec["decision"] == "deny" && rec["path"] == "/admin":
			denied++
		}
	}
	if allowed != 1 || denied != 1 {
		t.Errorf("audit: %d allowed and %d denied records, want 1 and 1:\n%s", allowed, denied, text)
	}
	for _, bad := range []string{testSecret, placeholder} {
		if strings.Contains(string(text), bad) || strings.Contains(metrics, bad) {
			t.Errorf("the audit log or the metrics hold %q", bad)
		}
	}

	// An audit log the sandbox could see is refused, and a refused run
	// leaves no audit file behind.
	inside := filepath.Join(w.project, "audit.log")
	r := w.run("", "--audit", inside, "--", "/bin/true")
	if r.code != 125 || !strings.Contains(r.stderr, "would be visible inside the sandbox") {
		t.Errorf("an audit log in the working directory: want a refusal, got\n%s", r)
	}
	if _, err := os.Stat(inside); err == nil {
		t.Errorf("the refused run left %s behind", inside)
	}
}

func portString(p int) string { return strconv.Itoa(p) }
