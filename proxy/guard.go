package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/tokrun/tokrun/internal/addrguard"
)

// ErrForbiddenAddress reports a destination that resolves to an address
// the proxy never dials for rules without unsafe_allow_private_network.
var ErrForbiddenAddress = errors.New("destination address is not public")

// PublicAddress reports whether a is an address the proxy may dial without
// an explicit private-network allowance: not loopback, private, link-local,
// CGNAT, multicast, unspecified, reserved, documentation or a known cloud
// metadata address, in IPv4 or IPv6 (including IPv4 embedded in IPv6).
func PublicAddress(a netip.Addr) bool { return addrguard.Public(a) }

// Resolver looks up the addresses of a host name.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// DialFunc dials a network address; it has the shape of
// net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// GuardedDialer resolves a host itself, checks every address with
// PublicAddress, and dials only addresses that pass, by IP, so that the
// address checked is the address connected to (DNS rebinding between check
// and connect is impossible). The zero value is ready to use.
type GuardedDialer struct {
	// Resolve looks up host names. If nil, net.DefaultResolver is used.
	Resolve Resolver
	// Dial connects to an IP address and port. If nil, a net.Dialer with
	// Timeout is used.
	Dial DialFunc
	// Timeout bounds each connection attempt. If zero, 10 seconds.
	Timeout time.Duration
}

// DialContext dials addr ("host:port"). If allowPrivate is false, non-public
// addresses are refused with an error wrapping ErrForbiddenAddress.
func (d *GuardedDialer) DialContext(ctx context.Context, network, addr string, allowPrivate bool) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		resolve := d.Resolve
		if resolve == nil {
			resolve = func(ctx context.Context, h string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", h)
			}
		}
		addrs, err = resolve(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %w", host, err)
		}
	}
	timeout := d.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	dial := d.Dial
	if dial == nil {
		nd := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
		dial = nd.DialContext
	}
	var firstErr error
	for _, a := range addrs {
		if !allowPrivate && !PublicAddress(a) {
			if firstErr == nil {
				firstErr = fmt.Errorf("%w: %s resolves to a private, loopback, link-local or metadata address", ErrForbiddenAddress, host)
			}
			continue
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		c, err := dial(actx, network, net.JoinHostPort(a.Unmap().String(), port))
		cancel()
		if err == nil {
			return c, nil
		}
		if firstErr == nil || errors.Is(firstErr, ErrForbiddenAddress) {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("resolving %s: no addresses", host)
	}
	return nil, firstErr
}
