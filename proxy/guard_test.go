package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestPublicAddress(t *testing.T) {
	blocked := []string{
		"127.0.0.1", "127.255.0.9", "::1", "0.0.0.0", "::", "0.1.2.3",
		"10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1", "fc00::1", "fd00:ec2::254",
		"169.254.169.254", "169.254.0.1", "fe80::1", "100.64.0.1", "100.100.100.200", "168.63.129.16",
		"224.0.0.1", "239.255.255.250", "ff02::1", "255.255.255.255", "240.0.0.1",
		"192.0.2.10", "198.18.0.1", "2001:db8::1",
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "2002:a9fe:a9fe::", "::ffff:0:7f00:1", "::ffff:0:a9fe:a9fe",
		"::7f00:1", "::a9fe:a9fe", "fec0::1",
		"2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo carrying 127.0.0.1 (inverted)
		// One address in each further range the guard lists.
		"192.0.0.192", "198.51.100.1", "203.0.113.1", "100::1", "2001:db8:ffff::1",
		"64:ff9b:1::a9fe:a9fe", "64:ff9b:1::808:808", // local-use NAT64 (RFC 8215): translated by a local gateway
		"2606:4700::1%eth0", // a zone: an interface's link, whatever the address
	}
	for _, s := range blocked {
		if PublicAddress(netip.MustParseAddr(s)) {
			t.Errorf("%s considered public", s)
		}
	}
	public := []string{"1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "64:ff9b::808:808", "::ffff:0:808:808", "2002:808:808::", "2001:0:4136:e378:8000:63bf:f7f7:f7f7"}
	for _, s := range public {
		if !PublicAddress(netip.MustParseAddr(s)) {
			t.Errorf("%s considered non-public", s)
		}
	}
}

// A name that resolves to loopback is refused before any connection is
// attempted, unless the rule allows private destinations.
func TestGuardedDialerRefusesPrivateResolution(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	var dialed []string
	d := &GuardedDialer{
		Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed = append(dialed, addr)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	_, err = d.DialContext(context.Background(), "tcp", "rebind.example.com:"+port, false)
	if !errors.Is(err, ErrForbiddenAddress) || len(dialed) != 0 {
		t.Fatalf("err = %v, dialed %v", err, dialed)
	}
	_, err = d.DialContext(context.Background(), "tcp", "127.0.0.1:"+port, false)
	if !errors.Is(err, ErrForbiddenAddress) || len(dialed) != 0 {
		t.Fatalf("IP literal: err = %v, dialed %v", err, dialed)
	}
	c, err := d.DialContext(context.Background(), "tcp", "rebind.example.com:"+port, true)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if len(dialed) != 1 || dialed[0] != "127.0.0.1:"+port {
		t.Fatalf("dialed %v", dialed)
	}
}

// Mixed answers: only the public address is dialled.
func TestGuardedDialerSkipsPrivateAnswers(t *testing.T) {
	var dialed []string
	d := &GuardedDialer{
		Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("203.0.114.7")}, nil
		},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed = append(dialed, addr)
			return nil, errors.New("test dialer: not connecting")
		},
	}
	if _, err := d.DialContext(context.Background(), "tcp", "mixed.example.com:443", false); err == nil {
		t.Fatal("expected the fake dial error")
	}
	if len(dialed) != 1 || dialed[0] != "203.0.114.7:443" {
		t.Fatalf("dialed %v", dialed)
	}
}
