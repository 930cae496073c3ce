// Command rawsandbox runs a command in tokrun's gVisor sandbox without
// tokrun's proxy, policy or CLI: the baseline of tokrun's benchmarks.
//
//	rawsandbox STATE-DIR CMD [ARGS...]
//
// The sandbox's proxy socket listens but never answers. It is built by the
// benchmarks, with CGO_ENABLED=0 as gVisor requires, and is not installed.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/tokrun/tokrun/runner"
)

func main() {
	runner.HandleReexec()
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: rawsandbox STATE-DIR CMD [ARGS...]")
		os.Exit(2)
	}
	os.Exit(run(os.Args[1], os.Args[2:]))
}

func run(state string, cmd []string) int {
	dir, err := os.MkdirTemp("", "rawsandbox-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return runner.ExitFailure
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "proxy.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return runner.ExitFailure
	}
	defer ln.Close()
	sb, err := runner.New(runner.Config{Command: cmd, Dir: dir, ProxySocket: sock, StateDir: state, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return runner.ExitFailure
	}
	defer sb.Close()
	code, err := sb.Run(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return runner.ExitFailure
	}
	return code
}
