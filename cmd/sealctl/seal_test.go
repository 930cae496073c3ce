package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokrun/tokrun/sealing"
)

// testNow is the clock of in-process runs.
var testNow = time.Date(2026, 3, 15, 10, 30, 0, 0, time.UTC)

// runSealctl runs sealctl in-process with stdin and returns the exit
// status and outputs.
func runSealctl(t *testing.T, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{stdin: stdin, stdout: &out, stderr: &errOut, now: func() time.Time { return testNow }}
	code = e.run(args)
	return code, out.String(), errOut.String()
}

// testKey writes a new key file and its public key file into a temporary
// directory and returns the key and both paths.
func testKey(t *testing.T) (k *sealing.PrivateKey, keyFile, pubFile string) {
	t.Helper()
	k, err := sealing.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile = filepath.Join(dir, "key.txt")
	if err := sealing.WriteKeyFile(keyFile, k, testNow); err != nil {
		t.Fatal(err)
	}
	pubFile = filepath.Join(dir, "key.pub")
	if err := os.WriteFile(pubFile, []byte(k.Public().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return k, keyFile, pubFile
}

func sealArgs(pubFile string, extra ...string) []string {
	return append([]string{"seal", "--to-file", pubFile, "--name", "n", "--host", "example.com",
		"--header", "X-Key", "--format", "{}"}, extra...)
}

// failReader fails the test if the command reads its input.
type failReader struct{ t *testing.T }

func (r failReader) Read([]byte) (int, error) {
	r.t.Error("the secret was read before the command line was checked")
	return 0, io.EOF
}

func TestSealChecksFlagsBeforeReadingInput(t *testing.T) {
	_, _, pubFile := testKey(t)
	pub := strings.TrimSpace(readFile(t, pubFile))
	base := []string{"--name", "n", "--host", "example.com", "--header", "X-Key", "--format", "{}"}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"both keys", append([]string{"seal", "--to", pub, "--to-file", pubFile}, base...), "--to and --to-file are mutually exclusive"},
		{"no key", append([]string{"seal"}, base...), "one of --to or --to-file is required"},
		{"empty --to", append([]string{"seal", "--to", ""}, base...), "--to: invalid key"},
		{"bad --to", append([]string{"seal", "--to", pub + "x"}, base...), "--to: invalid key"},
		{"missing --to-file", append([]string{"seal", "--to-file", pubFile + ".missing"}, base...), "no such file"},
		{"missing flags", []string{"seal", "--to", pub}, "missing required flag --name, --host, --header, --format"},
		{"past expiry", sealArgs(pubFile, "--expires", "2026-03-15"), "is not in the future"},
		{"bad expiry", sealArgs(pubFile, "--expires", "soon"), "want a duration"},
		{"bad header", sealArgs(pubFile, "--header", "Transfer-Encoding"), "header: Transfer-Encoding cannot carry a secret"},
		{"bad format", sealArgs(pubFile, "--format", "Bearer"), "format: must contain exactly one {}"},
		{"bad method", sealArgs(pubFile, "--method", "PSOT"), `unknown method "PSOT"`},
		{"bad host", sealArgs(pubFile, "--host", "*.com"), "hosts[1]: "},
		{"bad path", sealArgs(pubFile, "--path", "v1/chat"), "paths[0]: "},
		{"bad name", sealArgs(pubFile, "--name", "a/b"), "name: "},
		{"argument", sealArgs(pubFile, "value"), "seal takes no arguments"},
		{"no room for the value", sealArgs(pubFile, "--path", "/"+strings.Repeat("a", 6000), "--path", "/"+strings.Repeat("b", 6000), "--path", "/"+strings.Repeat("c", 6000)), "leave no room for the secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runSealctl(t, failReader{t}, tt.args...)
			if code != 1 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 1 and nothing", code, stdout)
			}
			if !strings.HasPrefix(stderr, "sealctl: error: ") || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr = %q, want a sealctl error containing %q", stderr, tt.wantErr)
			}
		})
	}
}

// TestSealRejectsControlCharacters covers what a script cannot easily
// write: CR, LF and NUL in a flag, and CR in the secret.
func TestSealRejectsControlCharacters(t *testing.T) {
	_, _, pubFile := testKey(t)
	for _, format := range []string{"Bearer {}\r\nX-Injected: 1", "{}\r", "\n{}", "{}\x00", "Bearer\t{}\x7f"} {
		code, stdout, stderr := runSealctl(t, failReader{t}, sealArgs(pubFile, "--format", format)...)
		if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "sealctl: error: invalid binding: format: ") {
			t.Errorf("--format %q: exit %d, stdout %q, stderr %q; want a format error", format, code, stdout, stderr)
		}
	}
	for _, value := range []string{"sk-SENTINEL\r", "sk-SENTINEL\n\n", "sk-SENTINEL\r\r\n", "sk-\x00SENTINEL", "sk-SENTINEL\nX-Injected: 1"} {
		code, stdout, stderr := runSealctl(t, strings.NewReader(value), sealArgs(pubFile)...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "control characters") {
			t.Errorf("value %q: exit %d, stdout %q, stderr %q; want a control character error", value, code, stdout, stderr)
		}
		if strings.Contains(stderr, "SENTINEL") {
			t.Errorf("value %q: stderr shows the value: %q", value, stderr)
		}
	}
}

// TestSealStripsOneNewline checks that exactly one trailing "\n" or
// "\r\n" is removed, by opening the token and by the fingerprint shown.
func TestSealStripsOneNewline(t *testing.T) {
	k, _, pubFile := testKey(t)
	ring, err := sealing.NewKeyRing(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, input := range []string{"abcdefgh", "abcdefgh\n", "abcdefgh\r\n"} {
		code, stdout, stderr := runSealctl(t, strings.NewReader(input), sealArgs(pubFile)...)
		if code != 0 {
			t.Fatalf("input %q: exit %d, stderr %q", input, code, stderr)
		}
		s, err := ring.Open(strings.TrimSuffix(stdout, "\n"), "n")
		if err != nil {
			t.Fatalf("input %q: %v", input, err)
		}
		if s.Reveal() != "abcdefgh" {
			t.Errorf("input %q sealed %q, want %q", input, s.Reveal(), "abcdefgh")
		}
		if fp := sealing.Fingerprint("abcdefgh"); !strings.Contains(stderr, "("+fp+")") {
			t.Errorf("input %q: stderr %q does not show %s", input, stderr, fp)
		}
		if !strings.HasSuffix(stdout, "\n") || strings.Count(stdout, "\n") != 1 {
			t.Errorf("input %q: stdout %q is not one token line", input, stdout)
		}
	}
}

func TestSealInputLimit(t *testing.T) {
	k, _, pubFile := testKey(t)
	ring, err := sealing.NewKeyRing(k)
	if err != nil {
		t.Fatal(err)
	}
	value := func(n int) string { return strings.Repeat("SENTINEL", n/8+1)[:n] }
	tests := []struct {
		input   string
		wantErr string // "" for success
	}{
		{value(sealing.MaxValueSize), ""},
		{value(sealing.MaxValueSize) + "\n", ""},
		{value(sealing.MaxValueSize) + "\r\n", ""},
		{value(sealing.MaxValueSize + 1), "4097 bytes, limit 4096"},
		{value(sealing.MaxValueSize+1) + "\n", "4097 bytes, limit 4096"},
		{value(sealing.MaxValueSize + 3), "the secret on stdin is larger than 4096 bytes"},
		{value(1 << 20), "the secret on stdin is larger than 4096 bytes"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runSealctl(t, strings.NewReader(tt.input), sealArgs(pubFile)...)
		if tt.wantErr == "" {
			if code != 0 {
				t.Errorf("%d bytes: exit %d, stderr %q", len(tt.input), code, stderr)
				continue
			}
			s, err := ring.Open(strings.TrimSpace(stdout), "n")
			if err != nil || len(s.Reveal()) != sealing.MaxValueSize {
				t.Errorf("%d bytes: opened %v", len(tt.input), err)
			}
		} else if code != 1 || stdout != "" || !strings.Contains(stderr, tt.wantErr) {
			t.Errorf("%d bytes: exit %d, stdout %d bytes, stderr %q; want error %q", len(tt.input), code, len(stdout), stderr, tt.wantErr)
		}
		if strings.Contains(stderr, "SENTINEL") {
			t.Errorf("%d bytes: stderr shows the value", len(tt.input))
		}
	}
}

// TestInspectNeverShowsValue opens a token in every output form.
func TestInspectNeverShowsValue(t *testing.T) {
	_, keyFile, pubFile := testKey(t)
	code, token, stderr := runSealctl(t, strings.NewReader("sk-live-SENTINEL-4242\n"),
		sealArgs(pubFile, "--method", "GET", "--path", "/v1/**", "--expires", "24h")...)
	if code != 0 {
		t.Fatalf("seal: exit %d, stderr %q", code, stderr)
	}
	for _, args := range [][]string{
		{"inspect", "-i", keyFile, "-"},
		{"inspect", "-i", keyFile, "--json", "-"},
		{"inspect", "-i", keyFile, strings.TrimSpace(token)},
	} {
		code, stdout, stderr := runSealctl(t, strings.NewReader("\n "+token+"\n\n"), args...)
		if code != 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
		if !strings.Contains(stdout, sealing.Fingerprint("sk-live-SENTINEL-4242")) {
			t.Errorf("%q: no fingerprint in %q", args, stdout)
		}
		if strings.Contains(stdout+stderr, "SENTINEL") {
			t.Errorf("%q: the value is in the output: %q %q", args, stdout, stderr)
		}
	}
}

func TestPubkeyStdinModeWarning(t *testing.T) {
	k, keyFile, _ := testKey(t)
	for _, mode := range []os.FileMode{0o600, 0o640, 0o604} {
		if err := os.Chmod(keyFile, mode); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runSealctl(t, f, "pubkey")
		f.Close()
		if code != 0 || stdout != k.Public().String()+"\n" {
			t.Errorf("mode %04o: exit %d, stdout %q, stderr %q", mode, code, stdout, stderr)
		}
		warned := strings.HasPrefix(stderr, "sealctl: warning: the key file on stdin is accessible by group or others")
		if warned != (mode != 0o600) {
			t.Errorf("mode %04o: stderr %q", mode, stderr)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A secret put in a flag by mistake (curl's -H habit, or the value given
// to --in) is never echoed on stderr, which CI systems log.
func TestFlagErrorsDoNotEchoSecret(t *testing.T) {
	_, _, pubFile := testKey(t)
	const secret = "sk-SENTINEL-0123456789"
	const b64 = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSENTINEL" // a value alone, with no space or colon
	for _, args := range [][]string{
		sealArgs(pubFile, "--header", "Authorization: Bearer "+secret),
		sealArgs(pubFile, "--header", b64),
		sealArgs(pubFile, "--in", secret),
		append([]string{"seal", "--to-file", secret}, sealArgs(pubFile)[3:]...),
		{secret},
	} {
		code, _, errOut := runSealctl(t, strings.NewReader(""), args...)
		if code == 0 || strings.Contains(errOut, "SENTINEL") {
			t.Errorf("%q: exit %d, stderr:\n%s", args, code, errOut)
		}
	}
}

// The value is one line of printable text: an invisible character (a
// byte-order mark left by Notepad, a zero-width space from a copy) is
// refused, not sealed with the key.
func TestValueRejectsInvisibleCharacters(t *testing.T) {
	_, _, pubFile := testKey(t)
	for name, in := range map[string]string{
		"BOM":  "\ufeffsk-live-1234567890\n",
		"ZWSP": "sk-live-1234567890\u200b\n",
		"ZWJ":  "sk-live-\u200d1234567890\n",
		"NBSP": "sk-live-\u00a01234567890\n",
	} {
		code, out, errOut := runSealctl(t, strings.NewReader(in), sealArgs(pubFile)...)
		if code == 0 || out != "" || !strings.Contains(errOut, "invisible character") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", name, code, out, errOut)
		}
	}
	if code, out, errOut := runSealctl(t, strings.NewReader("pass phrase with spaces é ü\n"), sealArgs(pubFile)...); code != 0 {
		t.Errorf("a printable value with spaces and accents: exit %d %s%s", code, out, errOut)
	}
}
