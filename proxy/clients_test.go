package proxy

import (
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// writeCA writes the proxy's CA certificate for external clients.
func (h *harness) writeCA(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.ca.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// lookPath finds a client program or skips: CI installs curl and python3
// (.ci/run), so a skip only happens on a developer machine without them.
func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (CI installs it): %v", name, err)
	}
	return p
}

// cleanEnv is an environment without proxy variables or other settings
// from the caller that could change a client's behaviour.
func cleanEnv(extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "LANG=C"}
	return append(env, extra...)
}

func TestCurlThroughProxy(t *testing.T) {
	curl := lookPath(t, "curl")
	h := newHarness(t, basicPolicy, nil)
	ca := h.writeCA(t)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(curl, append([]string{"--silent", "--show-error", "--proxy", h.proxyURL.String(), "--cacert", ca}, args...)...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("-H", "Authorization: Bearer from-curl", "https://api.example.com/v1/models")
	if err != nil || !strings.Contains(out, `auth="INJECTED"`) {
		t.Fatalf("allowed request: %v\n%s", err, out)
	}
	out, err = run("--include", "https://api.example.com/admin")
	if err != nil || !strings.Contains(out, "403") || !strings.Contains(strings.ToLower(out), "x-tokrun-reason: path_not_allowed") {
		t.Fatalf("denied path: %v\n%s", err, out)
	}
	out, err = run("--path-as-is", "--include", "https://api.example.com/v1/../admin")
	if err != nil || !strings.Contains(out, "path_not_allowed") {
		t.Fatalf("dot-segment path: %v\n%s", err, out)
	}
	// A denied host fails at CONNECT; curl reports the proxy's 403.
	out, err = run("https://evil.example.net/")
	if err == nil || !strings.Contains(out, "403") {
		t.Fatalf("denied host: %v\n%s", err, out)
	}
	h.checkNoSecret()
}

func TestPythonURLLibThroughProxy(t *testing.T) {
	python := lookPath(t, "python3")
	h := newHarness(t, basicPolicy, nil)
	ca := h.writeCA(t)
	script := `
import ssl, sys, urllib.request, urllib.error
ctx = ssl.create_default_context(cafile=sys.argv[1])
opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))
req = urllib.request.Request("https://api.example.com/v1/chat", data=b"{}", method="POST",
                             headers={"Authorization": "Bearer placeholder"})
print(opener.open(req).read().decode())
try:
    opener.open("https://api.example.com/v2/other")
except urllib.error.HTTPError as e:
    print("denied", e.code, e.headers["X-Tokrun-Reason"])
`
	cmd := exec.Command(python, "-c", script, ca)
	cmd.Env = cleanEnv("HTTPS_PROXY=" + h.proxyURL.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `method=POST host=api.example.com path=/v1/chat auth="INJECTED"`) ||
		!strings.Contains(string(out), "denied 403 path_not_allowed") {
		t.Fatalf("python output:\n%s", out)
	}
	h.checkNoSecret()
}
