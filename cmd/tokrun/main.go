// Command tokrun runs untrusted code (an AI agent, a build, a script) in a
// gVisor sandbox whose only way out is tokrun's credential-injecting proxy.
// The command sees placeholders where it expects API keys; the proxy puts
// the real, sealed secrets into the requests the policy allows.
//
// The binary is multi-call: gVisor re-executes it as the sandbox and its
// helpers (see internal/runsc), and inside the sandbox it is the init that
// relays the proxy (see runner.Init). Run "tokrun --help" for the manual.
package main

import (
	"os"

	"github.com/tokrun/tokrun/runner"
)

func main() {
	runner.HandleReexec()
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
