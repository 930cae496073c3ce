// Command sealctl creates tokrun keys and seals secrets to them.
//
// It is a thin command-line layer over package sealing: run "sealctl --help"
// for the manual. Secrets are read from stdin, a file or a no-echo terminal
// prompt, never from the command line.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
