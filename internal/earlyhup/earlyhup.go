// Package earlyhup makes "tokproxy serve" ignore SIGHUP from its first
// moments: imported by tokproxy's main package for its side effect, its
// init runs before the heavier packages' (goproxy's, the policy's), a few
// milliseconds before main. Until serve catches SIGHUP (and turns it into
// a reload), the signal would otherwise kill the daemon as it starts, when
// a reload hook races a restart. The policy is loaded after serve catches
// the signal, so an ignored SIGHUP loses nothing.
package earlyhup

import (
	"os"
	"os/signal"
	"syscall"
)

func init() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		signal.Ignore(syscall.SIGHUP)
	}
}
