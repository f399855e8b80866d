package netwatch

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// msg builds one netlink message: header, the fixed struct, attributes.
func msg(typ uint16, fixed any, attrs ...[]byte) []byte {
	body, err := binary.Append(nil, binary.NativeEndian, fixed)
	if err != nil {
		panic(err)
	}
	for _, a := range attrs {
		body = append(body, a...)
	}
	h := unix.NlMsghdr{Len: uint32(unix.SizeofNlMsghdr + len(body)), Type: typ}
	out, _ := binary.Append(nil, binary.NativeEndian, h)
	out = append(out, body...)
	for len(out)%unix.NLMSG_ALIGNTO != 0 {
		out = append(out, 0)
	}
	return out
}

// attr builds one rtattr, padded.
func attr(typ uint16, data []byte) []byte {
	out, _ := binary.Append(nil, binary.NativeEndian, unix.RtAttr{Len: uint16(unix.SizeofRtAttr + len(data)), Type: typ})
	out = append(out, data...)
	for len(out)%unix.NLMSG_ALIGNTO != 0 {
		out = append(out, 0)
	}
	return out
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func ip(s string) []byte { return netip.MustParseAddr(s).AsSlice() }

func link(typ uint16, index int32, name string, flags uint32) []byte {
	return msg(typ, unix.IfInfomsg{Family: unix.AF_UNSPEC, Index: index, Flags: flags},
		attr(unix.IFLA_IFNAME, append([]byte(name), 0)))
}

func addr(typ uint16, family uint8, index uint32, a string, bits uint8, flags uint8, attrs ...[]byte) []byte {
	return msg(typ, unix.IfAddrmsg{Family: family, Prefixlen: bits, Flags: flags, Index: index},
		append([][]byte{attr(unix.IFA_ADDRESS, ip(a))}, attrs...)...)
}

func route(typ uint16, family uint8, dstLen uint8, table uint8, oif uint32, gw string) []byte {
	attrs := [][]byte{attr(unix.RTA_OIF, u32(oif))}
	if gw != "" {
		attrs = append(attrs, attr(unix.RTA_GATEWAY, ip(gw)))
	}
	return msg(typ, unix.RtMsg{Family: family, Dst_len: dstLen, Table: table, Type: unix.RTN_UNICAST}, attrs...)
}

const running = unix.IFF_UP | unix.IFF_RUNNING

func TestParse(t *testing.T) {
	s := newState(func(i int32) string {
		if i == 7 {
			return "wlan0"
		}
		return ""
	})
	steps := []struct {
		name string
		b    []byte
		want []Event
	}{
		{"new link up", link(unix.RTM_NEWLINK, 2, "eth0", running), []Event{{Kind: KindLinkUp, Interface: "eth0"}}},
		{"same link again (e.g. MTU change)", link(unix.RTM_NEWLINK, 2, "eth0", running), nil},
		{"carrier lost", link(unix.RTM_NEWLINK, 2, "eth0", unix.IFF_UP), []Event{{Kind: KindLinkDown, Interface: "eth0"}}},
		{"carrier back", link(unix.RTM_NEWLINK, 2, "eth0", running), []Event{{Kind: KindLinkUp, Interface: "eth0"}}},
		{"new link down", link(unix.RTM_NEWLINK, 3, "eth1", 0), nil},
		{"link deleted", link(unix.RTM_DELLINK, 2, "eth0", running), []Event{{Kind: KindLinkDown, Interface: "eth0"}}},

		{"IPv4 address with label", addr(unix.RTM_NEWADDR, unix.AF_INET, 3, "192.168.1.20", 24, 0,
			attr(unix.IFA_LOCAL, ip("192.168.1.20")), attr(unix.IFA_LABEL, []byte("eth1\x00"))),
			[]Event{{Kind: KindAddrAdded, Interface: "eth1", Addr: "192.168.1.20/24"}}},
		{"IPv4 address refreshed", addr(unix.RTM_NEWADDR, unix.AF_INET, 3, "192.168.1.20", 24, 0), nil},
		{"point-to-point: IFA_LOCAL, not the peer", addr(unix.RTM_NEWADDR, unix.AF_INET, 3, "10.8.0.1", 32, 0,
			attr(unix.IFA_LOCAL, ip("10.8.0.2"))),
			[]Event{{Kind: KindAddrAdded, Interface: "eth1", Addr: "10.8.0.2/32"}}},
		{"IPv6 tentative", addr(unix.RTM_NEWADDR, unix.AF_INET6, 7, "2001:db8::5", 64, unix.IFA_F_TENTATIVE), nil},
		{"IPv6 after DAD, named by index", addr(unix.RTM_NEWADDR, unix.AF_INET6, 7, "2001:db8::5", 64, 0),
			[]Event{{Kind: KindAddrAdded, Interface: "wlan0", Addr: "2001:db8::5/64"}}},
		{"IPv6 lifetime refresh", addr(unix.RTM_NEWADDR, unix.AF_INET6, 7, "2001:db8::5", 64, 0), nil},
		{"IFA_FLAGS overrides ifa_flags", addr(unix.RTM_NEWADDR, unix.AF_INET6, 7, "2001:db8::6", 64, 0,
			attr(unix.IFA_FLAGS, u32(unix.IFA_F_TENTATIVE))), nil},
		{"address removed", addr(unix.RTM_DELADDR, unix.AF_INET6, 7, "2001:db8::5", 64, 0),
			[]Event{{Kind: KindAddrRemoved, Interface: "wlan0", Addr: "2001:db8::5/64"}}},
		{"unreported address removed", addr(unix.RTM_DELADDR, unix.AF_INET6, 7, "2001:db8::6", 64, 0), nil},
		{"unknown index", addr(unix.RTM_NEWADDR, unix.AF_INET, 99, "10.0.0.1", 8, 0),
			[]Event{{Kind: KindAddrAdded, Interface: "if99", Addr: "10.0.0.1/8"}}},

		{"default route", route(unix.RTM_NEWROUTE, unix.AF_INET, 0, unix.RT_TABLE_MAIN, 3, "192.168.1.1"),
			[]Event{{Kind: KindRouteChanged, Interface: "eth1", Addr: "192.168.1.1"}}},
		{"default route again", route(unix.RTM_NEWROUTE, unix.AF_INET, 0, unix.RT_TABLE_MAIN, 3, "192.168.1.1"), nil},
		{"subnet route", route(unix.RTM_NEWROUTE, unix.AF_INET, 24, unix.RT_TABLE_MAIN, 3, ""), nil},
		{"local table", route(unix.RTM_NEWROUTE, unix.AF_INET6, 0, unix.RT_TABLE_LOCAL, 3, ""), nil},
		{"IPv6 default route", route(unix.RTM_NEWROUTE, unix.AF_INET6, 0, unix.RT_TABLE_MAIN, 7, "fe80::1"),
			[]Event{{Kind: KindRouteChanged, Interface: "wlan0", Addr: "fe80::1"}}},
		{"default route removed", route(unix.RTM_DELROUTE, unix.AF_INET, 0, unix.RT_TABLE_MAIN, 3, "192.168.1.1"),
			[]Event{{Kind: KindRouteChanged, Interface: "eth1", Addr: "192.168.1.1"}}},

		{"two messages in one datagram", append(
			link(unix.RTM_NEWLINK, 4, "eth2", running),
			addr(unix.RTM_NEWADDR, unix.AF_INET, 4, "172.16.0.2", 12, 0)...),
			[]Event{{Kind: KindLinkUp, Interface: "eth2"}, {Kind: KindAddrAdded, Interface: "eth2", Addr: "172.16.0.2/12"}}},
		{"other message type", msg(unix.RTM_NEWNEIGH, unix.IfInfomsg{}), nil},
	}
	for _, st := range steps {
		got, err := s.parse(st.b)
		if err != nil {
			t.Errorf("%s: %v", st.name, err)
			continue
		}
		if !equal(got, st.want) {
			t.Errorf("%s: events %+v, want %+v", st.name, got, st.want)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	good := addr(unix.RTM_NEWADDR, unix.AF_INET, 3, "192.168.1.20", 24, 0)
	badLen := append([]byte(nil), good...)
	binary.NativeEndian.PutUint32(badLen, uint32(len(good)+8))
	badAttr := append([]byte(nil), good...)
	binary.NativeEndian.PutUint16(badAttr[unix.SizeofNlMsghdr+unix.SizeofIfAddrmsg:], 200)
	for name, b := range map[string][]byte{
		"short header":       good[:10],
		"length past end":    badLen,
		"attribute past end": badAttr,
		"short body":         msg(unix.RTM_NEWLINK, unix.RtGenmsg{}),
		"bad prefix length":  addr(unix.RTM_NEWADDR, unix.AF_INET, 3, "10.0.0.1", 33, 0),
	} {
		if _, err := newState(nil).parse(b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: err = %v, want errMalformed", name, err)
		}
	}
}

func equal(a, b []Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
