package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// ErrForbiddenAddress reports a destination that resolves to an address
// the proxy never dials for rules without unsafe_allow_private_network.
var ErrForbiddenAddress = errors.New("destination address is not public")

// blockedPrefixes are refused in addition to what netip classifies as
// loopback, private, link-local, multicast or unspecified.
var blockedPrefixes = mustPrefixes(
	"0.0.0.0/8",        // "this network"
	"100.64.0.0/10",    // CGNAT (also Alibaba Cloud metadata 100.100.100.200)
	"192.0.0.0/24",     // IETF protocol assignments
	"192.0.2.0/24",     // documentation
	"198.18.0.0/15",    // benchmarking
	"198.51.100.0/24",  // documentation
	"203.0.113.0/24",   // documentation
	"240.0.0.0/4",      // reserved, and 255.255.255.255
	"168.63.129.16/32", // Azure wire server / metadata
	"100::/64",         // discard
	"2001:db8::/32",    // documentation
	"64:ff9b:1::/48",   // local-use NAT64
	"::/96",            // IPv4-compatible (deprecated), e.g. ::7f00:1
	"fec0::/10",        // site-local (deprecated)
)

// embeddingPrefixes carry an IPv4 address inside an IPv6 one; the
// embedded address is checked too.
var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	siit    = netip.MustParsePrefix("::ffff:0:0:0/96") // IPv4-translated (RFC 2765)
	sixTo4  = netip.MustParsePrefix("2002::/16")
	teredo  = netip.MustParsePrefix("2001::/32")
	ipv4Map = netip.MustParsePrefix("::ffff:0:0/96")
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// PublicAddress reports whether a is an address the proxy may dial without
// an explicit private-network allowance: not loopback, private, link-local,
// CGNAT, multicast, unspecified, reserved, documentation or a known cloud
// metadata address, in IPv4 or IPv6 (including IPv4 embedded in IPv6).
func PublicAddress(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return false
		}
	}
	if a.Is6() {
		b := a.As16()
		switch {
		case ipv4Map.Contains(a):
			return false // unreachable after Unmap; kept for clarity
		case nat64.Contains(a), siit.Contains(a):
			return PublicAddress(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixTo4.Contains(a):
			return PublicAddress(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		case teredo.Contains(a):
			return PublicAddress(netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}))
		}
	}
	return true
}

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
