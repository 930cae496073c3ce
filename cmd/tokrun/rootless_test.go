package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nobody is the unprivileged user the rootless test runs tokrun as.
const nobody = 65534

// Without root, tokrun runs the sandbox in a user namespace: the same job
// works, with the same isolation.
func TestRootless(t *testing.T) {
	w := newWorld(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is needed to run tokrun as another user")
	}
	if err := checkUserns(); err != nil {
		t.Skipf("this machine has no unprivileged user namespaces: %v", err)
	}
	home := t.TempDir()
	runtime := filepath.Join(home, "run")
	project := filepath.Join(home, "project")
	for _, d := range []string{runtime, project} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// t.TempDir's parent is private to root.
	for _, d := range []string{filepath.Dir(home), filepath.Dir(filepath.Dir(w.keyFile))} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{home, runtime, project, w.keyFile, filepath.Dir(w.keyFile), w.policy, w.caFile} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	// The tripwire's placeholder check and the key's invisibility hold
	// rootless too.
	script := `
import json, os, urllib.request, urllib.error
with urllib.request.urlopen("` + w.apiURL("/v1/rootless") + `", timeout=30) as r:
    print("authorized", json.load(r)["authorized"])
print("uid", os.getuid())
try:
    open("` + w.keyFile + `").read()
    print("KEY READABLE")
except OSError:
    print("key hidden")
`
	writeFile(t, filepath.Join(project, "agent.py"), script, 0o644)
	os.Chown(filepath.Join(project, "agent.py"), nobody, nobody)
	cmd := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups",
		tokrunBin, "--key", w.keyFile, "--policy", w.policy, "--upstream-ca", w.caFile, "--", "python3", "agent.py")
	cmd.Dir = project
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home, "XDG_RUNTIME_DIR=" + runtime}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	t.Cleanup(func() { removeState(t, filepath.Join(runtime, "tokrun")) })
	if err != nil {
		t.Fatalf("rootless run failed: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	for _, want := range []string{"authorized True", "key hidden"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s\nstderr:\n%s", want, out.String(), errb.String())
		}
	}

	doctor := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", tokrunBin, "doctor")
	doctor.Dir = project
	doctor.Env = cmd.Env
	if b, err := doctor.CombinedOutput(); err != nil || !strings.Contains(string(b), "not root: rootless mode") || !strings.Contains(string(b), "tokrun can run sandboxes here") {
		t.Errorf("tokrun doctor as nobody: %v\n%s", err, b)
	}
}

// checkUserns asks the kernel for a user namespace as nobody would.
func checkUserns() error {
	return exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "unshare", "--user", "--map-root-user", "true").Run()
}
