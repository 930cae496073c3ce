// Package addrguard classifies the addresses tokproxy never dials unless a
// rule allows private networks: the proxy's dialer checks every resolved
// address, and the policy tools warn of rules whose IP literal it would
// refuse.
package addrguard

import "net/netip"

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

// Public reports whether a is an address the proxy may dial without an
// explicit private-network allowance: not loopback, private, link-local,
// CGNAT, multicast, unspecified, reserved, documentation or a known cloud
// metadata address, in IPv4 or IPv6 (including IPv4 embedded in IPv6).
func Public(a netip.Addr) bool {
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
			return Public(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixTo4.Contains(a):
			return Public(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		case teredo.Contains(a):
			return Public(netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}))
		}
	}
	return true
}
