// Package netwatch tells roomd when its network changed, so that a meeting
// can restart ICE at once instead of waiting for media to time out.
//
// A change is an address added or removed, a link going up or down, or a
// default route added or removed: what Wi-Fi roaming, a DHCP renewal with a
// new address or a cable swap look like to the kernel.
//
// The package has two halves. A Source yields raw events; NetlinkSource is
// the real one, reading the kernel's rtnetlink notifications, and tests use
// a fake. A Watcher reads a Source, drops what cannot matter to ICE
// (loopback, IPv6 link-local churn, interfaces the caller ignores) and
// coalesces bursts into at most one callback per debounce window.
package netwatch

import "context"

// Kinds of Event.
const (
	KindAddrAdded    = "addr-added"
	KindAddrRemoved  = "addr-removed"
	KindLinkUp       = "link-up"
	KindLinkDown     = "link-down"
	KindRouteChanged = "route-changed"
	// KindOverflow means the kernel dropped notifications because the
	// reader fell behind: something may have changed, and what is unknown.
	// A Watcher treats it as a change.
	KindOverflow = "overflow"
)

// Event is one change the kernel reported.
type Event struct {
	// Kind is one of the Kind constants.
	Kind string
	// Interface is the interface's name ("eth0", "wlan0"); empty for
	// KindOverflow and for a route with no output interface.
	Interface string
	// Addr is the address with its prefix length ("10.0.0.5/24") for the
	// addr kinds, the gateway ("10.0.0.1", or empty when there is none) for
	// KindRouteChanged, and empty for the others.
	Addr string
}

// Source yields network events. Next blocks until an event arrives, the
// Source fails, or ctx ends (then it returns ctx's error). Next is not safe
// for concurrent use: a Watcher is its only caller.
type Source interface {
	Next(ctx context.Context) (Event, error)
}
