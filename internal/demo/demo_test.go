package demo

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

const routes = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
	"eth1\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
	"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"

func TestICEAddrDefaultRoute(t *testing.T) {
	addrs := func(name string) ([]net.Addr, error) {
		if name != "eth0" {
			t.Fatalf("asked for %s, want eth0 (the default route's)", name)
		}
		return []net.Addr{
			&net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)},
			&net.IPNet{IP: net.ParseIP("169.254.3.3").To4(), Mask: net.CIDRMask(16, 32)},
			&net.IPNet{IP: net.ParseIP("192.0.2.2").To4(), Mask: net.CIDRMask(24, 32)},
		}, nil
	}
	ip, err := ICEAddr(strings.NewReader(routes), addrs)
	if err != nil || !ip.Equal(net.ParseIP("192.0.2.2")) {
		t.Fatalf("ICEAddr = %v, %v; want 192.0.2.2", ip, err)
	}
}

func TestICEAddrNoDefaultRoute(t *testing.T) {
	noDefault := strings.Join(strings.Split(routes, "\n")[:2], "\n")
	_, err := ICEAddr(strings.NewReader(noDefault), func(string) ([]net.Addr, error) { return nil, nil })
	if !errors.Is(err, ErrNoAddress) {
		t.Fatalf("err = %v, want ErrNoAddress", err)
	}
}

func TestCalendar(t *testing.T) {
	now := time.Date(2026, 3, 2, 15, 4, 30, 0, time.UTC)
	const link = "janus+ws://127.0.0.1:40000/?room=4242"
	ics := string(Calendar(now, link))
	for _, want := range []string{
		"DTSTART:20260302T150200Z\r\nDTEND:20260302T160400Z\r\nSUMMARY:Demo meeting\r\nURL:" + link + "\r\n",
		"LOCATION:https://zoom.us/j/",
		"STATUS:CANCELLED",
	} {
		if !strings.Contains(ics, want) {
			t.Errorf("calendar lacks %q:\n%s", want, ics)
		}
	}
	for _, l := range strings.Split(strings.TrimSuffix(ics, "\r\n"), "\r\n") {
		if len(l) > 75 {
			t.Errorf("line longer than 75 octets: %q", l)
		}
	}
}
