package kiosk

import (
	"log/slog"
)

// OfflinePageURI is the address WebKit gives a page loaded from a string
// without a base URI, which is how the shell shows its offline page.
const OfflinePageURI = "about:blank"

// RequestKind says what a web view asks permission for.
type RequestKind int

// Request kinds, one per WebKit policy decision the shell handles.
const (
	// Navigate is a navigation of the main frame or of a subframe, including
	// each hop of a server-side redirect.
	Navigate RequestKind = iota
	// NewWindow is a request to open a new window (target=_blank, window.open).
	NewWindow
	// Download is a response WebKit cannot display and would save to disk.
	Download
)

func (k RequestKind) String() string {
	switch k {
	case Navigate:
		return "navigate"
	case NewWindow:
		return "new-window"
	case Download:
		return "download"
	}
	return "unknown"
}

// NavigationGuard confines a web view to one origin. A kiosk has no address
// bar and no back button: a page that navigated elsewhere (a link in meeting
// chat, a captive portal, a compromised script) would strand the room, so the
// shell refuses it instead.
type NavigationGuard struct {
	origin Origin
	log    *slog.Logger
}

// NewNavigationGuard returns a guard that allows only origin, and the
// shell's own offline page. Refusals are logged to log at level Warn.
func NewNavigationGuard(origin Origin, log *slog.Logger) *NavigationGuard {
	return &NavigationGuard{origin: origin, log: log}
}

// Allow reports whether the web view may perform a request of kind for uri,
// and logs the refusals. It is called on the GTK thread, once per decision.
func (g *NavigationGuard) Allow(kind RequestKind, uri string) bool {
	ok := g.allow(kind, uri)
	if !ok {
		g.log.Warn("refused navigation", "kind", kind, "uri", uri, "allowed_origin", g.origin)
	}
	return ok
}

func (g *NavigationGuard) allow(kind RequestKind, uri string) bool {
	switch kind {
	case Navigate:
		// about:blank is also where WebKit starts; it cannot load anything.
		return uri == OfflinePageURI || g.origin.Contains(uri)
	default:
		// The shell shows exactly one page: new windows would be invisible
		// (and unclosable) and downloads would only fill the disk.
		return false
	}
}
