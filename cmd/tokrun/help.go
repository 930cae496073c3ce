package main

const rootLong = `tokrun runs a command in a gVisor sandbox whose only way out to the network
is tokrun's proxy, so untrusted code (an AI agent above all) can use real API
credentials without ever holding them.

  tokrun -- python3 agent.py

Inside, the command sees placeholders where it expects API keys: for every
secret of the policy with an env name, a random per-run placeholder in that
variable. Its HTTP and HTTPS requests go through the proxy (HTTP_PROXY and
HTTPS_PROXY point to it; its CA is trusted inside). The proxy decides each
request by the policy (default deny), and for the requests a rule allows it
injects the real secret, sealed to your key with sealctl, into the header the
secret is bound to. A placeholder sent anywhere else trips the tripwire: the
request is refused, and with --on-tripwire kill the run ends.

The sandbox:
  network      none but the proxy: no direct TCP or UDP, no DNS, no raw
               sockets; 127.0.0.1:3128 inside is the proxy
  files        /usr and /etc read-only (with /etc/shadow and whatever
               other users may not read masked), the current directory
               read-write at the same path (the command starts there), /tmp
               empty and private, the rest in memory and gone after the
               run; --mount adds more
  user         the owner of the current directory (root only if root owns
               it), so what the command creates there is the owner's
  environment  built from scratch: PATH, HOME, LANG, TERM, the proxy and CA
               variables, the placeholders and --env; nothing else of
               yours, so a real OPENAI_API_KEY in your shell stays outside
  key          the private key file and the proxy's CA key are never
               visible inside; tokrun refuses to start if a mount would
               show them

Policy: --policy FILE, or ./tokrun.yaml when it exists (see "tokproxy policy
check --help" for the format). Without a policy every request is refused,
except the hosts named with --allow. The key that opens the policy's sealed
secrets is --key, by default $XDG_CONFIG_HOME/tokrun/key.txt
(~/.config/tokrun/key.txt); make one with "sealctl keygen".

Examples:
  # Allow one API, credential-free, and nothing else:
  tokrun --allow api.github.com -- curl -s https://api.github.com/zen

  # Run an agent with ./tokrun.yaml; end the run if it leaks a placeholder:
  tokrun --on-tripwire kill -- python3 agent.py

  # Learn what an agent needs, then review and use the policy:
  tokrun --learn learned.yaml -- python3 agent.py
  tokrun --policy learned.yaml -- python3 agent.py

  # Share a host directory read-only, pass one variable through:
  tokrun --mount ~/datasets:/data:ro --env MODEL=small -- python3 train.py

  # Use a tokproxy daemon that already serves a Unix socket:
  tokrun --proxy unix:/run/tokproxy/proxy.sock --proxy-ca /var/lib/tokproxy/ca.pem -- ./agent

Stdio: stdout and stderr pass through pipes, complete and in order; stdin
is passed as it is (a file or pipe is read only as far as the command
reads it). When stdin and stdout are both terminals (or with --tty), the
command gets a terminal of its own, so "tokrun -- python3" is interactive.

Exit status: the command's own status; 128+N when signal N killed it;
124 when the tripwire ended the run (--on-tripwire kill); 125 when tokrun
itself failed (bad flags, no sandbox), with the reason on stderr.
SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to the command; a second
SIGINT or SIGTERM kills the sandbox.

Messages go to stderr as "tokrun: error: ...", "tokrun: hint: ..." and
"tokrun: warning: ..."; stdout carries only the command's output. gVisor's
own logs go to the state directory (--state-dir, default
$XDG_RUNTIME_DIR/tokrun, /run/tokrun for root or ~/.cache/tokrun);
--debug prints where. As root it also holds gVisor's network namespace
mount (runsc/null-netns): umount it before removing the directory. The
history of runs, which later runs check, is kept apart whatever the state
directory: /var/lib/tokrun as root, ~/.local/state/tokrun otherwise.

Check what this machine supports with "tokrun doctor".`
