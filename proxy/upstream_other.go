//go:build !linux

package proxy

import "net"

// quietProbe cannot peek on this platform; a pooled connection the
// upstream closed is found out when it is used (and a request that may be
// repeated is sent again).
type quietProbe struct{}

func (*quietProbe) init(net.Conn) {}

func (*quietProbe) quietNow() bool { return true }
