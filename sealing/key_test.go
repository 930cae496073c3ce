package sealing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestKeyTextRoundTrip(t *testing.T) {
	k := mustKey(t, "round trip")
	text := k.Reveal()
	if !strings.HasPrefix(text, "TOKRUN-SECRET-KEY-1") {
		t.Fatalf("private key text %q lacks prefix", text[:20])
	}
	k2, err := ParsePrivateKey(text)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Equal(k2) || k2.Public() != k.Public() {
		t.Fatal("parsed private key differs")
	}
	pub := k.Public().String()
	if !strings.HasPrefix(pub, "tokrunpub1") {
		t.Fatalf("public key %q lacks prefix", pub)
	}
	p2, err := ParsePublicKey(pub)
	if err != nil || p2 != k.Public() {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	if mustKey(t, "other").Equal(k) {
		t.Fatal("different keys compare equal")
	}
}

func TestParseKeyRejects(t *testing.T) {
	k := mustKey(t, "reject")
	priv, pub := k.Reveal(), k.Public().String()
	for _, s := range []string{"", priv[:len(priv)-1], strings.ToLower(priv), pub, " " + priv, priv[:30] + "q" + priv[31:]} {
		_, err := ParsePrivateKey(s)
		if !errors.Is(err, ErrKey) {
			t.Errorf("ParsePrivateKey accepted bad input (err %v)", err)
			continue
		}
		if len(s) > 20 && strings.Contains(err.Error(), s[19:]) {
			t.Errorf("error echoes key material: %v", err)
		}
	}
	for _, s := range []string{"", strings.ToUpper(pub), priv, pub + "q", pub[:len(pub)-1]} {
		if _, err := ParsePublicKey(s); !errors.Is(err, ErrKey) {
			t.Errorf("ParsePublicKey(%q) accepted", s)
		}
	}
}

func TestPrivateKeyHasNoPrintableForm(t *testing.T) {
	k := mustKey(t, "printing")
	material := k.Reveal()[len("TOKRUN-SECRET-KEY-1"):]
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, k), fmt.Sprintf(verb, *k))
	}
	outs = append(outs, fmt.Sprint(struct{ k *PrivateKey }{k}), fmt.Sprintf("%+v", struct{ k PrivateKey }{*k}))
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("key", "k", k)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("key", "k", *k)
	outs = append(outs, logBuf.String())
	if _, err := json.Marshal(k); err == nil {
		t.Error("json.Marshal(private key) succeeded")
	} else {
		outs = append(outs, err.Error())
	}
	raw := fmt.Sprintf("%x", *k.k)
	for _, o := range outs {
		if containsAny(strings.ToUpper(o), material) || containsAny(o, raw, strings.ToLower(material)) {
			t.Errorf("key material printed: %s", o)
		}
	}
	if !strings.Contains(logBuf.String(), k.Public().ID().String()) {
		t.Error("slog output lacks the key id")
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := mustKey(t, "one"), mustKey(t, "two")
	path := filepath.Join(dir, "key.txt")
	if err := WriteKeyFile(path, k1, t0); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, err %v", st.Mode(), err)
	}
	before, _ := os.ReadFile(path)
	if err := WriteKeyFile(path, k2, t0); !errors.Is(err, os.ErrExist) {
		t.Fatalf("overwrite: err %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("refused overwrite still changed the file")
	}
	// No temporary file is left behind, after a success or a refusal.
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %v, want the key file alone", entries)
	}

	// Two keys and comments: rotation.
	both := append(KeyFileText(k1, t0), "\n# rotated in\n\n"...)
	both = append(both, KeyFileText(k2, t0)...)
	r, err := ParseKeyFile("both.txt", both)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.PublicKeys(); len(got) != 2 || got[0] != k1.Public() || got[1] != k2.Public() {
		t.Fatalf("public keys %v", got)
	}
	// Warning for group/other access, none for 0600.
	var warned []string
	warn := func(s string) { warned = append(warned, s) }
	if _, err := LoadKeyFile(path, warn); err != nil || len(warned) != 0 {
		t.Fatalf("0600 file: err %v, warnings %q", err, warned)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyFile(path, warn); err != nil || len(warned) != 1 || !strings.Contains(warned[0], "chmod 600") {
		t.Fatalf("0644 file: err %v, warnings %q", err, warned)
	}
}

// TestKeyFileByteOrderMark: a key file saved with a UTF-8 byte order mark
// loads.
func TestKeyFileByteOrderMark(t *testing.T) {
	k := mustKey(t, "bom")
	r, err := ParseKeyFile("k.txt", []byte("\uFEFF"+k.Reveal()+"\n"))
	if err != nil || len(r.PublicKeys()) != 1 {
		t.Fatalf("ParseKeyFile: %v", err)
	}
}

// TestKeyGivenForItsFile: a private key passed where its file's path
// belongs (--key "$KEY") is refused without being quoted.
func TestKeyGivenForItsFile(t *testing.T) {
	priv := mustKey(t, "argv").Reveal()
	for _, path := range []string{priv, strings.ToLower(priv), "/tmp/" + priv} {
		_, err := LoadKeyFile(path, nil)
		if err == nil || !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), "a private key was given where the path of its key file belongs") {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(strings.ToUpper(err.Error()), priv[19:40]) {
			t.Fatalf("error echoes key material: %v", err)
		}
	}
}

// TestKeyFileModeDespiteUmask: the key file is 0600 even under a umask
// that would leave it unreadable (0777) or readable by all (0).
func TestKeyFileModeDespiteUmask(t *testing.T) {
	for _, mask := range []int{0o777, 0} {
		old := syscall.Umask(mask)
		path := filepath.Join(t.TempDir(), "key.txt")
		err := WriteKeyFile(path, mustKey(t, "umask"), t0)
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("umask %04o: mode %v, err %v", mask, st.Mode(), err)
		}
	}
}

func TestKeyFileErrors(t *testing.T) {
	k := mustKey(t, "errors")
	priv := k.Reveal()
	tests := []struct {
		name, content, want string
	}{
		{"empty", "# nothing here\n", "k.txt: invalid key: no private keys"},
		{"bad line", "# c\n\n" + priv[:40] + "\n", "k.txt:3: invalid key: private key text:"},
		{"public key", k.Public().String() + "\n", "k.txt:1: invalid key: not a tokrun private key"},
		{"duplicate", priv + "\n#\n" + priv + "\n", "k.txt:3: invalid key: key " + k.Public().ID().String() + " appears twice (first on line 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKeyFile("k.txt", []byte(tt.content))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want prefix %q", err, tt.want)
			}
			if strings.Contains(err.Error(), priv[19:40]) {
				t.Fatalf("error echoes key material: %v", err)
			}
		})
	}
}
