package netwatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// errMalformed is returned for a netlink message that does not parse.
var errMalformed = errors.New("malformed netlink message")

// state is what the parser remembers between messages, so that it reports
// changes rather than every notification: the kernel re-sends RTM_NEWLINK
// for any attribute change, RTM_NEWADDR whenever an IPv6 router
// advertisement refreshes an address's lifetimes, and so on.
type state struct {
	names  map[int32]string // ifindex → name, from RTM_NEWLINK
	up     map[int32]bool   // ifindex → IFF_UP and IFF_RUNNING
	addrs  map[addrKey]bool
	routes map[routeKey]bool
	// nameOf names an interface the parser has not seen a link message
	// for; nil or "" falls back to "if<index>".
	nameOf func(index int32) string
}

type addrKey struct {
	index  int32
	prefix netip.Prefix
}

type routeKey struct {
	family   uint8
	table    uint32
	oif      int32
	gateway  netip.Addr
	priority uint32
}

func newState(nameOf func(int32) string) *state {
	return &state{
		names:  map[int32]string{},
		up:     map[int32]bool{},
		addrs:  map[addrKey]bool{},
		routes: map[routeKey]bool{},
		nameOf: nameOf,
	}
}

// parse applies every rtnetlink message in b to s and returns the changes
// they make. Message types other than link, address and route ones are
// skipped.
func (s *state) parse(b []byte) ([]Event, error) {
	var out []Event
	for len(b) > 0 {
		var h unix.NlMsghdr
		if _, err := binary.Decode(b, binary.NativeEndian, &h); err != nil {
			return out, fmt.Errorf("%w: short header", errMalformed)
		}
		if h.Len < unix.SizeofNlMsghdr || int(h.Len) > len(b) {
			return out, fmt.Errorf("%w: length %d of %d bytes", errMalformed, h.Len, len(b))
		}
		body := b[unix.SizeofNlMsghdr:h.Len]
		var err error
		var e []Event
		switch h.Type {
		case unix.RTM_NEWLINK, unix.RTM_DELLINK:
			e, err = s.link(h.Type, body)
		case unix.RTM_NEWADDR, unix.RTM_DELADDR:
			e, err = s.addr(h.Type, body)
		case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
			e, err = s.route(h.Type, body)
		}
		if err != nil {
			return out, err
		}
		out = append(out, e...)
		b = b[min(align(int(h.Len)), len(b)):]
	}
	return out, nil
}

func (s *state) link(typ uint16, body []byte) ([]Event, error) {
	var m unix.IfInfomsg
	if _, err := binary.Decode(body, binary.NativeEndian, &m); err != nil {
		return nil, fmt.Errorf("%w: short ifinfomsg", errMalformed)
	}
	attrs, err := parseAttrs(body[unix.SizeofIfInfomsg:])
	if err != nil {
		return nil, err
	}
	if name, ok := attrs[unix.IFLA_IFNAME]; ok {
		s.names[m.Index] = cstring(name)
	}
	name := s.name(m.Index)
	was, known := s.up[m.Index]
	if typ == unix.RTM_DELLINK {
		delete(s.up, m.Index)
		delete(s.names, m.Index)
		if was {
			return []Event{{Kind: KindLinkDown, Interface: name}}, nil
		}
		return nil, nil
	}
	up := m.Flags&unix.IFF_UP != 0 && m.Flags&unix.IFF_RUNNING != 0
	s.up[m.Index] = up
	switch {
	case up && !was:
		return []Event{{Kind: KindLinkUp, Interface: name}}, nil
	case !up && was && known:
		return []Event{{Kind: KindLinkDown, Interface: name}}, nil
	}
	return nil, nil
}

func (s *state) addr(typ uint16, body []byte) ([]Event, error) {
	var m unix.IfAddrmsg
	if _, err := binary.Decode(body, binary.NativeEndian, &m); err != nil {
		return nil, fmt.Errorf("%w: short ifaddrmsg", errMalformed)
	}
	attrs, err := parseAttrs(body[unix.SizeofIfAddrmsg:])
	if err != nil {
		return nil, err
	}
	// IFA_LOCAL is the local address; on a point-to-point link IFA_ADDRESS
	// is the peer's, elsewhere the two are the same.
	raw, ok := attrs[unix.IFA_LOCAL]
	if !ok {
		raw, ok = attrs[unix.IFA_ADDRESS]
	}
	if !ok {
		return nil, nil
	}
	a, ok := netip.AddrFromSlice(raw)
	if !ok {
		return nil, fmt.Errorf("%w: address of %d bytes", errMalformed, len(raw))
	}
	p := netip.PrefixFrom(a.Unmap(), int(m.Prefixlen)) // host bits kept
	if !p.IsValid() {
		return nil, fmt.Errorf("%w: prefix length %d for %v", errMalformed, m.Prefixlen, a)
	}
	idx := int32(m.Index)
	name := s.name(idx)
	if label, ok := attrs[unix.IFA_LABEL]; ok && cstring(label) != "" {
		name = cstring(label)
	}
	key := addrKey{idx, p}
	ev := Event{Interface: name, Addr: p.String()}
	if typ == unix.RTM_DELADDR {
		if !s.addrs[key] {
			return nil, nil // never reported, e.g. tentative
		}
		delete(s.addrs, key)
		ev.Kind = KindAddrRemoved
		return []Event{ev}, nil
	}
	flags := uint32(m.Flags)
	if f, ok := attrs[unix.IFA_FLAGS]; ok && len(f) >= 4 {
		flags = binary.NativeEndian.Uint32(f)
	}
	// An IPv6 address still in duplicate address detection cannot be bound
	// yet: it is reported when DAD completes (another RTM_NEWADDR).
	if flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 || s.addrs[key] {
		return nil, nil
	}
	s.addrs[key] = true
	ev.Kind = KindAddrAdded
	return []Event{ev}, nil
}

func (s *state) route(typ uint16, body []byte) ([]Event, error) {
	var m unix.RtMsg
	if _, err := binary.Decode(body, binary.NativeEndian, &m); err != nil {
		return nil, fmt.Errorf("%w: short rtmsg", errMalformed)
	}
	// Only default routes matter: others come and go with every address.
	if m.Dst_len != 0 || m.Type != unix.RTN_UNICAST || m.Flags&unix.RTM_F_CLONED != 0 ||
		(m.Family != unix.AF_INET && m.Family != unix.AF_INET6) {
		return nil, nil
	}
	attrs, err := parseAttrs(body[unix.SizeofRtMsg:])
	if err != nil {
		return nil, err
	}
	key := routeKey{family: m.Family, table: uint32(m.Table)}
	if t, ok := attrs[unix.RTA_TABLE]; ok && len(t) >= 4 {
		key.table = binary.NativeEndian.Uint32(t)
	}
	if key.table == unix.RT_TABLE_LOCAL {
		return nil, nil
	}
	if o, ok := attrs[unix.RTA_OIF]; ok && len(o) >= 4 {
		key.oif = int32(binary.NativeEndian.Uint32(o))
	}
	if p, ok := attrs[unix.RTA_PRIORITY]; ok && len(p) >= 4 {
		key.priority = binary.NativeEndian.Uint32(p)
	}
	if g, ok := attrs[unix.RTA_GATEWAY]; ok {
		key.gateway, _ = netip.AddrFromSlice(g)
	}
	ev := Event{Kind: KindRouteChanged}
	if key.oif != 0 {
		ev.Interface = s.name(key.oif)
	}
	if key.gateway.IsValid() {
		ev.Addr = key.gateway.String()
	}
	if typ == unix.RTM_DELROUTE {
		if !s.routes[key] {
			return nil, nil
		}
		delete(s.routes, key)
		return []Event{ev}, nil
	}
	if s.routes[key] {
		return nil, nil
	}
	s.routes[key] = true
	return []Event{ev}, nil
}

func (s *state) name(index int32) string {
	if n := s.names[index]; n != "" {
		return n
	}
	if s.nameOf != nil {
		if n := s.nameOf(index); n != "" {
			return n
		}
	}
	return "if" + strconv.Itoa(int(index))
}

// parseAttrs reads a run of rtattrs; a later attribute of the same type
// wins.
func parseAttrs(b []byte) (map[uint16][]byte, error) {
	attrs := map[uint16][]byte{}
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		t := binary.NativeEndian.Uint16(b[2:4])
		if l < unix.SizeofRtAttr || l > len(b) {
			return nil, fmt.Errorf("%w: attribute length %d of %d bytes", errMalformed, l, len(b))
		}
		attrs[t&^unix.NLA_F_NESTED] = b[unix.SizeofRtAttr:l]
		b = b[min(align(l), len(b)):]
	}
	return attrs, nil
}

func align(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
