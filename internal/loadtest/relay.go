package loadtest

import (
	"io"
	"net"
)

// Relay copies bytes between each connection accepted on ln and a new
// connection to target, blindly (TLS stays end to end), until ln is
// closed: the least any proxy can do, a yardstick for the others.
func Relay(ln net.Listener, target string) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			go io.Copy(u, c) //nolint:errcheck // ends when either side closes
			io.Copy(c, u)    //nolint:errcheck
		}()
	}
}
