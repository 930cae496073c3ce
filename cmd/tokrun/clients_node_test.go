package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// nodeAgent calls the API with Node's built-in fetch, the way SDKs built
// on fetch do, and prints what it got.
const nodeAgent = `
const key = process.env.DEMO_API_KEY;
console.log("node", process.version);
fetch(process.argv[2], { headers: { Authorization: "Bearer " + key } }).then(async (r) => {
  console.log("status", r.status, JSON.stringify(await r.json()));
  console.log("key", key);
}, (e) => {
  console.log("fetch failed:", e.message, e.cause && e.cause.code);
  process.exitCode = 1;
});
`

// nodeModules is where .ci/run installs the test's npm packages
// (testdata/node/package-lock.json).
const nodeModules = "testdata/node/node_modules"

// needNodeModules skips t unless the pinned npm packages are installed,
// and returns the absolute path of node_modules.
func needNodeModules(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs(nodeModules)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(abs, "undici", "package.json")); err != nil {
		t.Skipf("the undici npm package is not installed: run npm ci --prefix cmd/tokrun/testdata/node (.ci/run does): %v", err)
	}
	return abs
}

// nodeMajor returns the major version of the sandbox's node.
func nodeMajor(t *testing.T) int {
	t.Helper()
	v := needHostCommand(t, "Node.js is needed (Debian package nodejs)", "node", "--version")
	major, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(v, "v"), ".", 2)[0])
	if err != nil {
		t.Fatalf("node --version printed %q", v)
	}
	return major
}

// Node's built-in fetch ignores HTTPS_PROXY before Node 24 (and
// NODE_USE_ENV_PROXY, which tokrun sets, is unknown to it): the sandbox
// has no other way out, so the plain call fails. With the preload
// testdata/node/proxy-preload.cjs (undici's EnvHttpProxyAgent as the
// global dispatcher) the unchanged program goes through the proxy and
// the API gets the injected secret.
func TestClientNodeFetch(t *testing.T) {
	major := nodeMajor(t)
	modules := needNodeModules(t)
	w := newWorld(t)
	w.script("agent.js", nodeAgent)
	preload, err := os.ReadFile("testdata/node/proxy-preload.cjs")
	if err != nil {
		t.Fatal(err)
	}
	w.script("proxy-preload.cjs", string(preload))
	mount := []string{"--mount", modules + ":" + filepath.Join(w.project, "node_modules") + ":ro"}

	t.Run("plain", func(t *testing.T) {
		if major >= 22 {
			t.Skipf("node %d may honour NODE_USE_ENV_PROXY; the plain call is checked on Node.js 18 and 20, whose fetch ignores proxy variables", major)
		}
		r := w.run("", append(mount, "--", "node", "agent.js", w.apiURL("/v1/plain"))...)
		if r.code == 0 || !strings.Contains(r.stdout, "fetch failed:") {
			t.Fatalf("plain fetch on node %d did not fail; if it now honours HTTPS_PROXY, update the README:\n%s", major, r)
		}
		if auths := w.seenAuths(); len(auths) != 0 {
			t.Fatalf("the API was reached without the proxy: %q", auths)
		}
	})

	// The preload as a flag, and through NODE_OPTIONS for node programs
	// started by other tools (npx, an agent's own launcher).
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"require", []string{"--", "node", "--require", "./proxy-preload.cjs", "agent.js", w.apiURL("/v1/node")}},
		{"NODE_OPTIONS", []string{"--env", "NODE_OPTIONS=--require=./proxy-preload.cjs", "--", "node", "agent.js", w.apiURL("/v1/node")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.mu.Lock()
			w.auths = nil
			w.mu.Unlock()
			r := w.run("", append(mount, tc.args...)...)
			if r.code != 0 {
				t.Fatalf("run failed:\n%s", r)
			}
			checkNoSecret(t, r)
			for _, want := range []string{`status 200 {"authorized":true,"method":"GET","path":"/v1/node"}`, "key tokrun_placeholder_"} {
				if !strings.Contains(r.stdout, want) {
					t.Fatalf("output lacks %q:\n%s", want, r)
				}
			}
			checkInjectedOnce(t, w)
			t.Log(strings.SplitN(r.stdout, "\n", 2)[0])
		})
	}
}
