package demo

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
)

// ICEAddr picks the address the demo's media uses: the first global IPv4
// address of the interface that holds the default route. routes is the
// content of /proc/net/route; addrs lists an interface's addresses.
//
// Loopback would be the natural choice, but Janus (through libnice) never
// gathers ICE candidates on it, and pion leaves it out by default too. The
// machine's own address keeps every packet on the machine all the same: the
// kernel delivers traffic to a local address through loopback.
func ICEAddr(routes io.Reader, addrs func(ifname string) ([]net.Addr, error)) (net.IP, error) {
	ifname, err := defaultRouteInterface(routes)
	if err != nil {
		return nil, err
	}
	list, err := addrs(ifname)
	if err != nil {
		return nil, fmt.Errorf("demo: addresses of %s: %w", ifname, err)
	}
	for _, a := range list {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if ip4 := ipn.IP.To4(); ip4 != nil && ip4.IsGlobalUnicast() {
			return ip4, nil
		}
	}
	return nil, fmt.Errorf("%w: %s, the default route's interface, has no global IPv4 address", ErrNoAddress, ifname)
}

// InterfaceAddrs is the addrs argument of ICEAddr for this machine.
func InterfaceAddrs(ifname string) ([]net.Addr, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	return ifi.Addrs()
}

// defaultRouteInterface reads /proc/net/route: the interface of the first
// route whose destination and mask are both 0.
func defaultRouteInterface(routes io.Reader) (string, error) {
	sc := bufio.NewScanner(routes)
	first := true
	for sc.Scan() {
		if first { // the header line
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		if f[1] == "00000000" && f[7] == "00000000" {
			return f[0], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("demo: read the routing table: %w", err)
	}
	return "", fmt.Errorf("%w: no default route", ErrNoAddress)
}
