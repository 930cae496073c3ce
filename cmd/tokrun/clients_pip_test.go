package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// indexPolicy allows one private package index, read-only, with the
// credential injected.
const indexPolicy = `version: 1
secrets:
  demo:
    sealed: SEALED
    env: DEMO_API_KEY
rules:
  - name: index
    host: 127.0.0.1
    port: INDEXPORT
    methods: [GET]
    paths: ["/simple/**", "/files/**"]
    inject: [demo]
    unsafe_allow_private_network: true
`

const wheelName = "tokrun_probe-1.0-py3-none-any.whl"

// buildWheel returns a pure-Python wheel of the package tokrun-probe 1.0,
// whose module says where it came from.
func buildWheel(t *testing.T) []byte {
	t.Helper()
	files := []struct{ name, body string }{
		{"tokrun_probe/__init__.py", "MESSAGE = \"hello from the local index\"\n"},
		{"tokrun_probe-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tokrun-probe\nVersion: 1.0\n"},
		{"tokrun_probe-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: tokrun-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	for _, f := range files {
		fw, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(f.body))
		sum := sha256.Sum256([]byte(f.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.body))
	}
	record.WriteString("tokrun_probe-1.0.dist-info/RECORD,,\n")
	fw, err := zw.Create("tokrun_probe-1.0.dist-info/RECORD")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write([]byte(record.String()))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pip installs from a private HTTPS index (PIP_CERT and HTTPS_PROXY
// from tokrun's environment) that requires the injected credential.
func TestClientPipInstall(t *testing.T) {
	w := newWorld(t)
	needHostCommand(t, "pip is needed (Debian package python3-pip)", "python3", "-m", "pip", "--version")
	wheel := buildWheel(t)
	sum := sha256.Sum256(wheel)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /simple/tokrun-probe/", func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "<!DOCTYPE html>\n<html><body><a href=\"/files/%s#sha256=%s\">%s</a></body></html>\n", wheelName, hex.EncodeToString(sum[:]), wheelName)
	})
	mux.HandleFunc("GET /files/"+wheelName, func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/octet-stream")
		rw.Write(wheel)
	})
	srv := w.recordingServer(true, mux)
	w.usePolicy(indexPolicy, "INDEXPORT", strconv.Itoa(srv.port))

	// /usr is read-only inside: install into the project directory.
	r := w.run("", "--", "sh", "-c", `python3 -m pip install --disable-pip-version-check --no-cache-dir --target site --index-url `+srv.url("/simple/")+` tokrun-probe &&
PYTHONPATH=site python3 -c 'import tokrun_probe; print("imported:", tokrun_probe.MESSAGE)'`)
	if r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	checkNoSecret(t, r)
	for _, want := range []string{"Successfully installed tokrun-probe-1.0", "imported: hello from the local index"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, r)
		}
	}
	var got []string
	for _, s := range srv.seen() {
		if s.auth != "Bearer "+testSecret {
			t.Errorf("the index got %s %s without the injected secret (%q)", s.method, s.uri, s.auth)
		}
		got = append(got, s.method+" "+s.uri)
	}
	if want := []string{"GET /simple/tokrun-probe/", "GET /files/" + wheelName}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the index saw %q, want %q", got, want)
	}
}
