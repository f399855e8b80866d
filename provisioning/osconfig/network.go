package osconfig

import (
	"context"
	"fmt"
)

// NetworkManager's bus name, main object and interface. The connection
// profiles (Wi-Fi, wired IPv4, proxy) go through its settings service: see
// nm.go.
const (
	nmService = "org.freedesktop.NetworkManager"
	nmPath    = "/org/freedesktop/NetworkManager"
	nmIface   = "org.freedesktop.NetworkManager"
)

// Connectivity is NetworkManager's view of the network (its
// NMConnectivityState).
type Connectivity uint32

// The connectivity states, with NetworkManager's values.
const (
	ConnectivityUnknown Connectivity = 0 // not checked, or checking is off
	ConnectivityNone    Connectivity = 1 // no network
	ConnectivityPortal  Connectivity = 2 // behind a captive portal
	ConnectivityLimited Connectivity = 3 // a network, but no Internet
	ConnectivityFull    Connectivity = 4 // the Internet is reachable
)

func (c Connectivity) String() string {
	switch c {
	case ConnectivityUnknown:
		return "unknown"
	case ConnectivityNone:
		return "none"
	case ConnectivityPortal:
		return "portal"
	case ConnectivityLimited:
		return "limited"
	case ConnectivityFull:
		return "full"
	}
	return fmt.Sprintf("connectivity(%d)", uint32(c))
}

// Connectivity reads NetworkManager's last connectivity state. It does not
// start a check.
func (o *OS) Connectivity(ctx context.Context) (Connectivity, error) {
	var v uint32
	props, err := o.properties(ctx, nmService, nmPath, nmIface)
	if err == nil {
		v, err = property[uint32](props, "Connectivity")
	}
	if err != nil {
		return ConnectivityUnknown, fmt.Errorf("NetworkManager: read connectivity: %w", err)
	}
	return Connectivity(v), nil
}
