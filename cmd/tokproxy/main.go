// Command tokproxy is the tokrun proxy daemon: it holds the private key,
// opens sealed secrets and injects them into the requests its policy
// allows.
//
// It is a thin command-line layer over package policy (and, for the
// daemon, package proxy): run "tokproxy --help" for the manual. The
// policy commands check a policy file and explain the decision it makes
// for one request, without starting the proxy.
package main

import (
	"os"

	_ "github.com/tokrun/tokrun/internal/earlyhup" // SIGHUP ignored while serve starts
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
