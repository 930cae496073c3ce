package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs the main job as `make demo` does: a local API, a key, a
// sealed credential, a policy, and the demo agent in a real tokrun sandbox.
func TestDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the demo runs a gVisor sandbox, tested as root (CI runs as root)")
	}
	bin := t.TempDir()
	for name, pkg := range map[string]string{"tokrun": "../cmd/tokrun", "tokproxy": "../cmd/tokproxy", "sealctl": "../cmd/sealctl", "demo-api": "./demo/api"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", name, err, out)
		}
	}
	cmd := exec.Command("bash", "demo/demo.sh")
	cmd.Env = append(os.Environ(), "BIN="+bin, "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, text)
	}
	for _, want := range []string{
		"[agent] my DEMO_API_KEY is tokrun_placeholder_",
		"[agent] the API answered 200: it received the real credential",
		"[agent] sending my key to another server was blocked: 403, reason tripwire",
		"[api] GET /v1/whoami: the request carried the real credential",
		"The demo succeeded.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(text, "[collector] RECEIVED") || strings.Contains(text, "demo-sk-") {
		t.Errorf("the collector received something, or the credential was printed")
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", text)
	}
}
