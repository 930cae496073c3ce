//go:build !linux

package proxy

import "net"

// socketQuiet cannot peek on this platform; a pooled connection the
// upstream closed is found out when it is used (and a request that may be
// repeated is sent again).
func socketQuiet(net.Conn) bool { return true }
