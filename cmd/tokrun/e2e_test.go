package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The main job: Python inside reaches the local HTTPS API through the
// proxy with the credential injected, and sees only the placeholder.
func TestPythonCallsAPIWithInjectedSecret(t *testing.T) {
	w := newWorld(t)
	w.script("agent.py", `
import json, os, urllib.request
key = os.environ["DEMO_API_KEY"]
req = urllib.request.Request("`+w.apiURL("/v1/hello")+`", headers={"Authorization": "Bearer " + key})
with urllib.request.urlopen(req, timeout=30) as r:
    body = json.load(r)
print("authorized", body["authorized"])
print("key", key)
print("openai", os.environ.get("OPENAI_API_KEY"))
`)
	r := w.run("", "--debug", "--", "python3", "agent.py")
	if r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	if !strings.Contains(r.stdout, "authorized True") {
		t.Fatalf("the API did not see the real credential:\n%s", r)
	}
	if strings.Contains(r.stdout+r.stderr, testSecret) {
		t.Fatalf("the real secret reached the sandbox:\n%s", r)
	}
	if !strings.Contains(r.stdout, "key tokrun_placeholder_") {
		t.Fatalf("the sandbox did not get a placeholder:\n%s", r)
	}
	if !strings.Contains(r.stdout, "openai None") {
		t.Fatalf("the host's OPENAI_API_KEY passed into the sandbox:\n%s", r)
	}
	// Neither the secret nor a private key is left anywhere tokrun writes,
	// gVisor's debug logs included; the run's CA key lives in memory only.
	for _, dir := range []string{w.stateDir, w.project} {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte(testSecret)) || bytes.Contains(b, []byte("PRIVATE KEY")) {
				t.Errorf("%s holds the secret or a private key", p)
			}
			return nil
		})
	}
	auths := w.seenAuths()
	if len(auths) != 1 || auths[0] != "Bearer "+testSecret {
		t.Fatalf("API saw Authorization %q, want the injected secret once", auths)
	}
}
