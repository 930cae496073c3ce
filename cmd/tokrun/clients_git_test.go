package main

import (
	"bufio"
	"encoding/json"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// gitPolicy allows what git clone and fetch need over smart HTTP (ref
// discovery and git-upload-pack), with the credential injected, and
// nothing else: git-receive-pack (push) matches no rule.
const gitPolicy = `version: 1
secrets:
  demo:
    sealed: SEALED
    env: DEMO_API_KEY
rules:
  - name: git-refs
    host: 127.0.0.1
    port: GITPORT
    methods: [GET]
    paths: ["/repo.git/info/refs"]
    inject: [demo]
    unsafe_allow_private_network: true
  - name: git-fetch
    host: 127.0.0.1
    port: GITPORT
    methods: [POST]
    paths: ["/repo.git/git-upload-pack"]
    inject: [demo]
    unsafe_allow_private_network: true
`

// gitScript clones, then tries to push a commit back.
const gitScript = `
git clone -q URL work || exit 1
echo "cloned: $(cat work/README)"
cd work
git -c user.name=agent -c user.email=agent@example.com commit -q --allow-empty -m "from the sandbox"
if git push origin HEAD:main >push.log 2>&1; then echo "push: ok"; else echo "push: failed"; fi
cat push.log
`

// hostGit runs git on the host with no user or system configuration.
func hostGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	git, err := lookSandboxPath("git")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(git, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + sandboxPath, "HOME=" + t.TempDir(), "GIT_CONFIG_NOSYSTEM=1"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// auditLines reads the JSON lines of a tokrun --audit file.
func auditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// git clone works through the proxy with the credential injected (the
// server refuses requests without it); git push is refused by the
// policy's method and path rules before the server sees it, although the
// server itself would accept it.
func TestClientGitCloneAndPush(t *testing.T) {
	w := newWorld(t)
	needHostCommand(t, "git is needed (Debian package git)", "git", "--version")
	backend := needHostCommand(t, "git http-backend is needed (Debian package git)", "git", "--exec-path")
	backend = filepath.Join(backend, "git-http-backend")

	root := t.TempDir()
	bare := filepath.Join(root, "repo.git")
	hostGit(t, root, "init", "-q", "--bare", "-b", "main", bare)
	hostGit(t, bare, "config", "http.receivepack", "true") // the server would take a push
	seed := t.TempDir()
	hostGit(t, seed, "init", "-q", "-b", "main")
	writeFile(t, filepath.Join(seed, "README"), "hello from the git server", 0o644)
	hostGit(t, seed, "add", "README")
	hostGit(t, seed, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "seed")
	hostGit(t, seed, "push", "-q", bare, "main")
	head := hostGit(t, bare, "rev-parse", "main")

	srv := w.recordingServer(true, &cgi.Handler{
		Path: backend,
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	})
	w.usePolicy(gitPolicy, "GITPORT", strconv.Itoa(srv.port))
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	r := w.run("", "--audit", audit, "--", "sh", "-c", strings.ReplaceAll(gitScript, "URL", srv.url("/repo.git")))
	if r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	checkNoSecret(t, r)
	for _, want := range []string{"cloned: hello from the git server", "push: failed", "403"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, r)
		}
	}

	var refs, uploads int
	for _, s := range srv.seen() {
		path, _, _ := strings.Cut(s.uri, "?")
		switch {
		case s.auth != "Bearer "+testSecret:
			t.Errorf("the server got %s %s without the injected secret (%q)", s.method, s.uri, s.auth)
		case strings.HasSuffix(path, "/git-receive-pack"):
			t.Errorf("the server saw a push: %s %s", s.method, s.uri)
		case s.method == "GET" && s.uri == "/repo.git/info/refs?service=git-upload-pack":
			refs++
		case s.method == "POST" && path == "/repo.git/git-upload-pack":
			uploads++
		}
	}
	if refs == 0 || uploads == 0 {
		t.Errorf("the server did not serve a clone: %v", srv.seen())
	}
	if got := hostGit(t, bare, "rev-parse", "main"); got != head {
		t.Errorf("the push landed: main is %s, was %s", got, head)
	}
	var denied bool
	for _, l := range auditLines(t, audit) {
		if l["method"] == "POST" && l["path"] == "/repo.git/git-receive-pack" {
			denied = l["decision"] == "deny" && l["reason"] == "path_not_allowed"
			if !denied {
				t.Errorf("audit of the push: %v, want deny path_not_allowed", l)
			}
		}
	}
	if !denied && !t.Failed() {
		t.Errorf("no audit line for POST /repo.git/git-receive-pack")
	}
	if t.Failed() {
		t.Logf("server saw %v\n%s", srv.seen(), r)
	}
}
