package policy

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokrun/tokrun/sealing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/policy/bad and testdata/policy/learn")

const policyDir = "../testdata/policy"

var testNow = time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)

func testKeys(t testing.TB) *sealing.KeyRing {
	t.Helper()
	r, err := sealing.LoadKeyFile("../testdata/sealing/key.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testOptions(t testing.TB) Options {
	return Options{Keys: testKeys(t), Now: func() time.Time { return testNow }}
}

func mustLoad(t testing.TB, path string) *Policy {
	t.Helper()
	p, err := Load(path, testOptions(t))
	if err != nil {
		t.Fatalf("Load(%s):\n%v", path, err)
	}
	return p
}

func TestGoodPolicies(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(policyDir, "good", "*.yaml"))
	if len(paths) < 3 {
		t.Fatalf("only %d good policies", len(paths))
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			p := mustLoad(t, path)
			if len(p.Rules()) == 0 {
				t.Fatal("no rules")
			}
		})
	}
}

func TestFullPolicyShape(t *testing.T) {
	p := mustLoad(t, filepath.Join(policyDir, "good", "full.yaml"))
	if got := len(p.Rules()); got != 6 {
		t.Fatalf("%d rules", got)
	}
	r := p.Rules()[2]
	if r.Name != "example-api" || r.Host != "api.example.com" || r.Port != 8443 || r.Scheme != "https" || r.Line != 23 {
		t.Fatalf("rule %+v", r)
	}
	if r := p.Rules()[5]; r.Host != "::1" || r.Scheme != "http" || !r.AllowPrivate {
		t.Fatalf("ipv6 rule %+v", r)
	}
	secrets := p.Secrets()
	if len(secrets) != 2 || secrets[0].Name != "openai" || secrets[0].Env != "OPENAI_API_KEY" || secrets[1].Env != "EXAMPLE_API_KEY" {
		t.Fatalf("secrets %v", secrets)
	}
	if ph := secrets[0].Placeholders; len(ph) != 1 || ph[0] != "sk-tokrun-placeholder-openai" {
		t.Fatalf("placeholders %v", ph)
	}
	if d := p.DenyRules(); len(d) != 2 || d[0].Scheme != "" || d[0].Port != 0 {
		t.Fatalf("deny rules %+v", d)
	}
	if len(p.Warnings()) != 0 {
		t.Fatalf("warnings %v", p.Warnings())
	}
}

func TestExpiredSecretWarns(t *testing.T) {
	p := mustLoad(t, filepath.Join(policyDir, "good", "expired.yaml"))
	w := p.Warnings()
	if len(w) != 1 || !strings.Contains(w[0].String(), "expired.yaml:4: secrets.old: expired at 2026-11-02T00:00:00Z") {
		t.Fatalf("warnings %v", w)
	}
}

// Each bad policy fails with exactly the text in its golden .err file.
func TestBadPolicies(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(policyDir, "bad", "*.yaml"))
	if len(paths) < 15 {
		t.Fatalf("only %d bad policies", len(paths))
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			_, err := Load(path, testOptions(t))
			if err == nil {
				t.Fatal("bad policy loaded")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			got := strings.ReplaceAll(err.Error(), filepath.Join(policyDir, "bad")+"/", "") + "\n"
			golden := strings.TrimSuffix(path, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("errors differ\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

func TestWritableFilesRefused(t *testing.T) {
	dir := t.TempDir()
	tok, err := os.ReadFile("../testdata/sealing/good/minimal.sealed")
	if err != nil {
		t.Fatal(err)
	}
	sealed := filepath.Join(dir, "api.sealed")
	pol := filepath.Join(dir, "policy.yaml")
	write := func(path, content string, mode os.FileMode) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(sealed, string(tok), 0o644)
	write(pol, "version: 1\nsecrets:\n  api:\n    sealed_file: api.sealed\nrules:\n  - name: a\n    host: api.example.com\n    inject: [api]\n", 0o644)
	mustLoad(t, pol)

	write(sealed, string(tok), 0o666)
	_, err = Load(pol, testOptions(t))
	if err == nil || !strings.Contains(err.Error(), "policy.yaml:4: secrets.api.sealed_file: "+sealed+" is writable by anyone (mode 0666)") {
		t.Fatalf("world-writable sealed_file: %v", err)
	}
	write(sealed, string(tok), 0o644)
	write(pol, "version: 1\nrules:\n  - name: a\n    host: a.example.com\n", 0o646)
	if _, err := Load(pol, testOptions(t)); err == nil || !strings.Contains(err.Error(), "policy file is writable by anyone") {
		t.Fatalf("world-writable policy: %v", err)
	}

	// A directory anyone can write lets anyone rename another file over
	// the policy or the token, whatever their own modes; its sticky bit
	// stops that.
	write(pol, "version: 1\nsecrets:\n  api:\n    sealed_file: api.sealed\nrules:\n  - name: a\n    host: api.example.com\n    inject: [api]\n", 0o644)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(pol, testOptions(t)); err == nil || !strings.Contains(err.Error(), "the policy's directory "+dir+" is writable by anyone (mode 0777)") {
		t.Fatalf("policy in a world-writable directory: %v", err)
	}
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	mustLoad(t, pol)
	tokDir := filepath.Join(dir, "open")
	if err := os.Mkdir(tokDir, 0o700); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(tokDir, "api.sealed"), string(tok), 0o644)
	if err := os.Chmod(tokDir, 0o777); err != nil {
		t.Fatal(err)
	}
	write(pol, "version: 1\nsecrets:\n  api:\n    sealed_file: open/api.sealed\nrules:\n  - name: a\n    host: api.example.com\n    inject: [api]\n", 0o644)
	if _, err := Load(pol, testOptions(t)); err == nil || !strings.Contains(err.Error(), "which is writable by anyone (mode 0777), so anyone could swap the secret") {
		t.Fatalf("sealed_file in a world-writable directory: %v", err)
	}
}

func TestSecretsNeedKeys(t *testing.T) {
	_, err := Load(filepath.Join(policyDir, "good", "full.yaml"), Options{})
	if err == nil || !strings.Contains(err.Error(), "full.yaml:6: secrets.openai: cannot open sealed secrets without a key file") {
		t.Fatalf("err = %v", err)
	}
}

// No error text from loading a policy with secrets contains a value.
func TestLoadErrorsNeverLeakValues(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(policyDir, "*", "*.yaml"))
	values := []string{"k-minimal-0001", "sk-proj-vector-0002", "ghp_vector0003", "k-unicode-0004"}
	for _, path := range paths {
		p, err := Load(path, testOptions(t))
		text := ""
		if err != nil {
			text = err.Error()
		} else {
			for _, w := range p.Warnings() {
				text += w.String()
			}
		}
		for _, v := range values {
			if strings.Contains(text, v) {
				t.Errorf("%s: error text contains a secret value", path)
			}
		}
	}
}

// A FIFO in place of the policy is refused at once, not waited on.
// TestSealedFileSwappedForFIFO: a sealed_file renamed back and forth
// between a token and a FIFO never makes a load hang: the file is checked
// through the descriptor it is read from, not by its path first.
func TestSealedFileSwappedForFIFO(t *testing.T) {
	dir := t.TempDir()
	tok, err := os.ReadFile("../testdata/sealing/good/minimal.sealed")
	if err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte("version: 1\nsecrets:\n  api:\n    sealed_file: s.sealed\nrules:\n  - name: a\n    host: api.example.com\n    inject: [api]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sealed, token, fifo := filepath.Join(dir, "s.sealed"), filepath.Join(dir, "token"), filepath.Join(dir, "fifo")
	stop := make(chan struct{})
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			os.Remove(token)
			os.Remove(fifo)
			next := token
			if i%2 == 0 {
				if err := os.WriteFile(token, tok, 0o600); err != nil {
					t.Error(err)
					return
				}
			} else {
				if err := syscall.Mkfifo(fifo, 0o600); err != nil {
					t.Error(err)
					return
				}
				next = fifo
			}
			os.Rename(next, sealed) //nolint:errcheck // a failed swap is just no swap
		}
	}()
	defer func() {
		close(stop)
		<-swapped
	}()
	loaded := make(chan error)
	var refused, ok int
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		go func() {
			_, err := Load(pol, testOptions(t))
			loaded <- err
		}()
		select {
		case err := <-loaded:
			if err != nil {
				refused++
			} else {
				ok++
			}
		case <-time.After(5 * time.Second):
			// Let the hung open go: give the FIFO a writer.
			if w, err := os.OpenFile(sealed, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
			t.Fatalf("a load hung on a sealed_file swapped for a FIFO (after %d loads)", refused+ok)
		}
	}
	if refused == 0 || ok == 0 {
		t.Logf("the swap raced no load either way (%d refused, %d loaded)", refused, ok)
	}
}

func TestLoadRefusesFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "policy.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if _, err := Load(fifo, Options{}); err == nil || !strings.HasSuffix(err.Error(), "policy.yaml: not a regular file") {
		t.Fatalf("err = %v", err)
	}
}

// A syntax error deep in a large file is reported quickly, at the line
// yaml.v3 gives, when finding its own line would mean parsing too much.
func TestSyntaxErrorLineBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n  - name: a\n    host: a.example.com\n    methods: [GET]\n  paths: x\n")
	for b.Len() < 3<<20 {
		b.WriteString("# padding padding padding padding padding padding padding padding\n")
	}
	_, err := Parse("big.yaml", []byte(b.String()), Options{})
	if err == nil || !strings.Contains(err.Error(), "big.yaml:2: YAML syntax") {
		t.Fatalf("err = %v, want the line yaml.v3 reports", err)
	}
	// Small enough to search: the line itself.
	_, err = Parse("small.yaml", []byte("version: 1\nrules:\n  - name: a\n    host: a.example.com\n    methods: [GET]\n  paths: x\n# end\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "small.yaml:6: YAML syntax") {
		t.Fatalf("err = %v, want line 6", err)
	}
}

// No secret's placeholder may take the name of a variable tokrun sets (its
// proxy and CA settings, the loader's) or one in its TOKRUN_ namespace,
// in any case. The names are written out here, not taken from the code.
func TestReservedEnvNames(t *testing.T) {
	tok, err := os.ReadFile("../testdata/sealing/good/minimal.sealed")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"PATH", "HOME", "LANG", "TERM", "USER", "SHELL", "PWD",
		"HTTP_PROXY", "https_proxy", "NO_PROXY", "ALL_PROXY",
		"SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
		"NODE_EXTRA_CA_CERTS", "NODE_USE_ENV_PROXY", "GIT_SSL_CAINFO", "PIP_CERT", "AWS_CA_BUNDLE",
		"LD_PRELOAD", "LD_LIBRARY_PATH", "TOKRUN_ANYTHING",
	} {
		text := "version: 1\nsecrets:\n  api:\n    sealed: " + strings.TrimSpace(string(tok)) + "\n    env: " + name + "\n"
		_, err := Parse("p.yaml", []byte(text), testOptions(t))
		if err == nil || !strings.Contains(err.Error(), "is set by tokrun itself") {
			t.Errorf("env %s: %v", name, err)
		}
	}
}
