#!/usr/bin/env bash
# tokrun's main job, offline, start to finish: `make demo`.
#
# It starts a local HTTPS "API" (examples/demo/api) with its own CA, makes a
# key, seals the API's credential to it, writes a policy, and runs an agent
# (examples/demo/agent.py) in tokrun. Everything stays on 127.0.0.1.
#
# BIN names a directory holding tokrun, tokproxy, sealctl and demo-api
# built with CGO_ENABLED=0 (make demo builds them into bin/).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../../bin}
BIN=$(cd "$BIN" && pwd)
for b in tokrun tokproxy sealctl demo-api; do
  [ -x "$BIN/$b" ] || { echo "demo: $BIN/$b is missing; run 'make demo'" >&2; exit 1; }
done
if [ "$(id -u)" != 0 ]; then
  echo "demo: note: not root; tokrun will try a rootless sandbox ('$BIN/tokrun doctor' says whether that works here)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tokrun-demo.XXXXXX")
api_pid=
cleanup() {
  [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null || true
  # gVisor pins a network namespace in its state directory.
  umount "$work/state/runsc/null-netns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/api" "$work/keys" "$work/project" "$work/state"

say() { printf '\n== %s\n' "$*"; }

say "1. Start a local HTTPS API with its own test CA (it stands for a real provider)."
"$BIN/demo-api" "$work/api" > "$work/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 100); do [ -s "$work/api/env" ] && break; sleep 0.05; done
[ -s "$work/api/env" ] || { echo "demo: the API did not start:"; cat "$work/api.log"; exit 1; }
# shellcheck disable=SC1091
. "$work/api/env"
echo "   API at $API_URL; a second server, the 'collector', at $COLLECTOR_URL"
echo "   The API issued a credential, as a provider's dashboard would: $work/api/credential"

say "2. Make the proxy's key pair. The private key stays outside the project."
"$BIN/sealctl" keygen -o "$work/keys/key.txt" > "$work/keys/key.pub" 2>/dev/null
echo "   public key: $(cat "$work/keys/key.pub")"

say "3. Seal the credential to the public key, bound to the API's host and header."
"$BIN/sealctl" seal --to-file "$work/keys/key.pub" --name demo --host 127.0.0.1 \
  --header Authorization --format 'Bearer {}' --in "$work/api/credential" \
  > "$work/project/demo.sealed" 2> "$work/seal.log"
echo "   $(cat "$work/seal.log")"
echo "   demo.sealed is safe to commit: only the proxy's private key opens it."

say "4. Write the policy: the API's /v1/ paths get the credential; the collector is reachable, without it."
api_port=${API_URL##*:}
collector_port=${COLLECTOR_URL##*:}
cat > "$work/project/tokrun.yaml" <<POLICY
version: 1
secrets:
  demo:
    sealed_file: demo.sealed
    env: DEMO_API_KEY        # the agent gets a placeholder in this variable
rules:
  - name: demo-api
    host: 127.0.0.1
    port: $api_port
    paths: ["/v1/**"]
    inject: [demo]
    # Only because the demo API runs on this machine: the proxy refuses
    # loopback and private addresses unless a rule says this.
    unsafe_allow_private_network: true
  - name: collector
    host: localhost
    port: $collector_port
    unsafe_allow_private_network: true
POLICY
cp "$here/agent.py" "$work/project/agent.py"
"$BIN/tokproxy" policy check "$work/project/tokrun.yaml" --key "$work/keys/key.txt" | sed 's/^/   /'

say "5. Run the agent in tokrun: a gVisor sandbox whose only way out is the proxy."
echo "   \$ tokrun -- python3 agent.py"
cd "$work/project"
set +e
"$BIN/tokrun" --key "$work/keys/key.txt" --upstream-ca "$work/api/ca.pem" --state-dir "$work/state" \
  --env DEMO_API_URL="$API_URL" --env DEMO_COLLECTOR_URL="$COLLECTOR_URL" -- python3 agent.py
code=$?
set -e
sleep 0.2
echo "   What the servers saw:"
cat "$work/api.log"

say "6. What happened"
if [ "$code" = 0 ] && grep -q 'the request carried the real credential' "$work/api.log" && ! grep -q 'RECEIVED' "$work/api.log"; then
  cat <<'DONE'
   - The agent held only a placeholder (tokrun_placeholder_...), never the key.
   - The proxy injected the real credential into the API request: the API
     confirmed it received the real one.
   - The agent's attempt to send its key to another server was refused by
     the tripwire, and the collector received nothing.
   The demo succeeded.
DONE
else
  echo "   The demo FAILED (tokrun exited $code); see the output above."
  exit 1
fi
