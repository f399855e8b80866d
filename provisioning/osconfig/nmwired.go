package osconfig

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/godbus/dbus/v5"
)

// The IPv4 methods SetWiredIPv4 takes, with NetworkManager's names.
const (
	IPv4Auto   = "auto"   // DHCP
	IPv4Manual = "manual" // a static address
)

// maxDNS is how many DNS servers a profile may list: glibc's resolver (and
// so resolv.conf) uses only the first three, so a fourth would be ignored
// without a word on many systems.
const maxDNS = 3

// WiredIPv4 is the IPv4 addressing of the room's wired profile.
type WiredIPv4 struct {
	Method  string   // IPv4Auto or IPv4Manual
	Address string   // manual only: address and prefix, "10.1.2.3/24"
	Gateway string   // manual only, optional: in Address's subnet
	DNS     []string // optional, up to 3 IPv4 addresses; with auto, added to DHCP's
}

// check returns an ErrInvalidNetwork naming the field, or nil.
func (w WiredIPv4) check() error {
	switch w.Method {
	case IPv4Auto:
		if w.Address != "" || w.Gateway != "" {
			return fmt.Errorf("%w: WiredIPv4.Address and WiredIPv4.Gateway are for method %q only", ErrInvalidNetwork, IPv4Manual)
		}
	case IPv4Manual:
		p, err := netip.ParsePrefix(w.Address)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("%w: WiredIPv4.Address %q is not an IPv4 address with a prefix length, like 10.1.2.3/24", ErrInvalidNetwork, w.Address)
		}
		if err := checkUnicast(p.Addr()); err != nil {
			return fmt.Errorf("%w: WiredIPv4.Address %q %v", ErrInvalidNetwork, w.Address, err)
		}
		if p.Bits() == 0 {
			return fmt.Errorf("%w: WiredIPv4.Address %q has prefix length 0", ErrInvalidNetwork, w.Address)
		}
		if p.Bits() <= 30 { // /31 and /32 have no network or broadcast address
			if p.Addr() == p.Masked().Addr() {
				return fmt.Errorf("%w: WiredIPv4.Address %q is its subnet's network address", ErrInvalidNetwork, w.Address)
			}
			if p.Addr() == broadcast(p) {
				return fmt.Errorf("%w: WiredIPv4.Address %q is its subnet's broadcast address", ErrInvalidNetwork, w.Address)
			}
		}
		if w.Gateway != "" {
			g, err := netip.ParseAddr(w.Gateway)
			if err != nil || !g.Is4() {
				return fmt.Errorf("%w: WiredIPv4.Gateway %q is not an IPv4 address", ErrInvalidNetwork, w.Gateway)
			}
			if g == p.Addr() || !p.Masked().Contains(g) {
				return fmt.Errorf("%w: WiredIPv4.Gateway %q must be another address in %s", ErrInvalidNetwork, w.Gateway, p.Masked())
			}
		}
	default:
		return fmt.Errorf("%w: WiredIPv4.Method %q is not %q or %q", ErrInvalidNetwork, w.Method, IPv4Auto, IPv4Manual)
	}
	if len(w.DNS) > maxDNS {
		return fmt.Errorf("%w: WiredIPv4.DNS has %d servers, at most %d are used", ErrInvalidNetwork, len(w.DNS), maxDNS)
	}
	for i, d := range w.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil || !a.Is4() {
			return fmt.Errorf("%w: WiredIPv4.DNS[%d] %q is not an IPv4 address", ErrInvalidNetwork, i, d)
		}
		if err := checkUnicast(a); err != nil && !a.IsLoopback() { // a local resolver is fine
			return fmt.Errorf("%w: WiredIPv4.DNS[%d] %q %v", ErrInvalidNetwork, i, d, err)
		}
		if slices.Index(w.DNS, d) < i {
			return fmt.Errorf("%w: WiredIPv4.DNS[%d] %q is listed twice", ErrInvalidNetwork, i, d)
		}
	}
	return nil
}

// checkUnicast says why a cannot be a host's address, or nil.
func checkUnicast(a netip.Addr) error {
	switch {
	case a.IsUnspecified():
		return fmt.Errorf("is unspecified")
	case a.IsLoopback():
		return fmt.Errorf("is a loopback address")
	case a.IsMulticast():
		return fmt.Errorf("is a multicast address")
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("is the broadcast address")
	}
	return nil
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// section encodes w as NetworkManager's "ipv4" setting with the current
// keys (address-data, dns-data). The deprecated "addresses" and "dns" are
// never sent: NetworkManager prefers them over the new ones when both are
// present, so replacing the whole setting drops stale values.
func (w WiredIPv4) section() map[string]dbus.Variant {
	s := map[string]dbus.Variant{"method": dbus.MakeVariant(w.Method)}
	if w.Method == IPv4Manual {
		p := netip.MustParsePrefix(w.Address) // checked
		s["address-data"] = dbus.MakeVariant([]map[string]dbus.Variant{{
			"address": dbus.MakeVariant(p.Addr().String()),
			"prefix":  dbus.MakeVariant(uint32(p.Bits())),
		}})
		if w.Gateway != "" {
			s["gateway"] = dbus.MakeVariant(netip.MustParseAddr(w.Gateway).String())
		}
	}
	if len(w.DNS) > 0 {
		dns := make([]string, len(w.DNS))
		for i, d := range w.DNS {
			dns[i] = netip.MustParseAddr(d).String()
		}
		s["dns-data"] = dbus.MakeVariant(dns)
	}
	return s
}

// SetWiredIPv4 sets the IPv4 addressing of the room's wired profile (the
// NetworkManager connection with id "atrium-wired", autoconnect on, for any
// Ethernet device: it is bound to no interface name). The profile is added
// when missing (taking the proxy setting of "atrium-wifi") and otherwise
// updated, keeping its uuid and other settings; its whole IPv4 setting is
// replaced by w.
//
// w is checked first: an invalid one fails with ErrInvalidNetwork naming
// the field, before any call. A refusal by NetworkManager comes back as a
// *ServiceError and the profile keeps its previous settings. Nothing is
// activated here (see SetWiFi): NetworkManager applies the profile when it
// next activates it.
func (o *OS) SetWiredIPv4(ctx context.Context, w WiredIPv4) error {
	o.nm.Lock()
	defer o.nm.Unlock()
	if err := w.check(); err != nil {
		return fmt.Errorf("NetworkManager: set wired IPv4: %w", err)
	}
	wifi, wired, err := o.atriumConns(ctx)
	if err != nil {
		return fmt.Errorf("NetworkManager: set wired IPv4: %w", err)
	}
	s := profile(wired, WiredConnectionID, nmTypeEthernet)
	if wired == nil {
		inheritProxy(s, wifi)
		s[nmTypeEthernet] = map[string]dbus.Variant{}
	}
	s["ipv4"] = w.section()
	added, err := o.save(ctx, wired, s)
	if err != nil {
		return fmt.Errorf("NetworkManager: set wired IPv4: %w", err)
	}
	msg := "wired profile updated"
	if added {
		msg = "wired profile added"
	}
	o.log.Info(msg, "id", WiredConnectionID, "method", w.Method, "address", w.Address, "gateway", w.Gateway, "dns", w.DNS)
	return nil
}

// WiredIPv4Settings reads the IPv4 addressing of the room's wired profile
// back. Without an "atrium-wired" profile it returns the zero WiredIPv4
// (Method ""). A method set by other means ("disabled", "link-local",
// "shared") is returned as NetworkManager names it. DNS servers come from
// dns-data, or from the older "dns" key of a NetworkManager before 1.42.
func (o *OS) WiredIPv4Settings(ctx context.Context) (WiredIPv4, error) {
	_, wired, err := o.atriumConns(ctx)
	if err != nil {
		return WiredIPv4{}, fmt.Errorf("NetworkManager: read wired IPv4: %w", err)
	}
	if wired == nil {
		return WiredIPv4{}, nil
	}
	w, err := decodeIPv4(wired.settings["ipv4"])
	if err != nil {
		return WiredIPv4{}, fmt.Errorf("NetworkManager: read wired IPv4: %s: %w", wired.path, err)
	}
	return w, nil
}

func decodeIPv4(s map[string]dbus.Variant) (WiredIPv4, error) {
	var w WiredIPv4
	w.Method, _ = s["method"].Value().(string)
	if w.Method == "" {
		w.Method = IPv4Auto // NetworkManager's default
	}
	if v, ok := s["address-data"]; ok {
		addrs, ok := v.Value().([]map[string]dbus.Variant)
		if !ok {
			return WiredIPv4{}, fmt.Errorf("ipv4.address-data is %q, want aa{sv}", v.Signature())
		}
		if len(addrs) > 0 { // one is all SetWiredIPv4 writes
			a, _ := addrs[0]["address"].Value().(string)
			bits, ok := addrs[0]["prefix"].Value().(uint32)
			if a == "" || !ok {
				return WiredIPv4{}, fmt.Errorf("ipv4.address-data[0] lacks address or prefix")
			}
			w.Address = a + "/" + strconv.FormatUint(uint64(bits), 10)
		}
	}
	w.Gateway, _ = s["gateway"].Value().(string)
	if v, ok := s["dns-data"]; ok {
		dns, ok := v.Value().([]string)
		if !ok {
			return WiredIPv4{}, fmt.Errorf("ipv4.dns-data is %q, want as", v.Signature())
		}
		w.DNS = slices.Clone(dns)
	} else if v, ok := s["dns"]; ok {
		dns, ok := v.Value().([]uint32)
		if !ok {
			return WiredIPv4{}, fmt.Errorf("ipv4.dns is %q, want au", v.Signature())
		}
		for _, d := range dns {
			// The address's bytes in network order, read as a host
			// integer by NetworkManager on this same machine.
			var b [4]byte
			binary.NativeEndian.PutUint32(b[:], d)
			w.DNS = append(w.DNS, netip.AddrFrom4(b).String())
		}
	}
	if len(w.DNS) == 0 {
		w.DNS = nil
	}
	return w, nil
}
