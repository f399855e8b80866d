// Package kiosk holds the logic of roomkiosk, the full-screen shell that shows
// roomd's web UI on the room's TV, apart from the WebKitGTK window itself.
//
// It decides which navigations the web view may perform (NavigationGuard),
// watches roomd's status endpoint and tells the window when to show the UI or
// the built-in offline page (Watcher), and parses the command line (Config).
// None of it needs cgo, a display or WebKit, so `go test` covers it on any
// machine; cmd/roomkiosk wires it to the real window.
package kiosk
