// Package runner runs a command in an embedded gVisor sandbox whose only
// way out is a proxy's Unix socket.
//
// Use it in three steps:
//
//	sb, err := runner.New(runner.Config{Command: []string{"python3", "agent.py"}, CACert: ca.CertPEM()})
//	ln, err := net.Listen("unix", sb.ProxySocket()) // serve the proxy here
//	code, err := sb.Run(ctx)                         // the command's exit status
//	sb.Close()
//
// The binary that calls Run must also be gVisor's: runsc re-executes it
// as the sandbox and the gofer (see internal/runsc), and inside the sandbox
// it runs as the init ([IsInit], [Init]). It must be built with
// CGO_ENABLED=0.
//
// What the sandbox gets:
//
//   - Network: none (gVisor's --network=none: only the sandbox's own
//     loopback). The proxy socket is bind-mounted as one file, and the init
//     relays 127.0.0.1:3128 inside to it; HTTP_PROXY and HTTPS_PROXY point
//     there. Direct TCP or UDP to the host, DNS and raw sockets fail.
//   - Files: a skeleton root in the state directory with an in-memory
//     overlay; /usr and /etc read-only, sensitive files under /etc masked,
//     the working directory read-write at its own path, /tmp a private
//     tmpfs, and Config.Mounts. [New] refuses a run in which a mount would
//     show one of Config.Hidden (the private key, the CA key).
//   - Environment: built from scratch by [Environment]; the caller's
//     environment never passes through.
//   - Trust: Config.CACert appended to the system bundle, mounted over it.
//   - Stdio: pipes, or a pseudo-terminal with Config.TTY; never the
//     caller's own files.
//
// Exit statuses: the command's own; 128+N when signal N killed it;
// [ExitTripwire] and [ExitFailure] are reserved for tokrun.
//
// State lives in [DefaultStateDir]: gVisor's container state, one locked
// directory per live run, and the logs of the last runs. [New] destroys the
// sandboxes, cgroups and directories of runs whose tokrun died. As root,
// the sandbox runs with gVisor's systrap platform and a cgroup per run;
// rootless, the caller must first enter a user namespace
// ([ReexecInUserns]).
package runner
