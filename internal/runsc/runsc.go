// Package runsc hands a re-executed tokrun process over to gVisor's runsc.
//
// tokrun embeds gVisor: when it starts a sandbox, runsc re-executes the
// running binary (through /proc/self/exe) as the sandbox, the gofer and a few
// helpers, naming each in argv[0] ("runsc-sandbox", "runsc-gofer", ...).
// [IsReexec] recognises those invocations and [Main] runs them with a trimmed
// command set: only the internal commands a sandbox needs, so the binary
// carries neither runsc's user-facing CLI nor its prebuilt sidecar blobs.
package runsc

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/google/subcommands"
	"gvisor.dev/gvisor/runsc/cli"
	"gvisor.dev/gvisor/runsc/cmd"
	"gvisor.dev/gvisor/runsc/cmd/sentry/sentrycmd"
	"gvisor.dev/gvisor/runsc/cmd/util"
)

// selfExe is the argv[0] runsc uses when it re-executes itself without
// naming the role (exec helpers and the /proc umounter).
const selfExe = "/proc/self/exe"

// IsReexec reports whether args (normally os.Args) are an invocation by
// runsc of its own binary rather than one by a user.
func IsReexec(args []string) bool {
	if len(args) == 0 {
		return false
	}
	if args[0] == selfExe {
		return true
	}
	return strings.HasPrefix(filepath.Base(args[0]), "runsc")
}

// Main runs runsc's command line with the commands a sandbox uses and exits.
func Main() {
	cmds := map[util.SubCommand]string{
		new(sentrycmd.Boot):   "internal",
		new(sentrycmd.Umount): "internal",
		new(cmd.Gofer):        "internal",
	}
	cli.Run(nil, cmds, []subcommands.Command{})
	os.Exit(1) // cli.Run exits; this is not reached.
}
