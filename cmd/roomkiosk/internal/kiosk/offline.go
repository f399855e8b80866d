package kiosk

import _ "embed"

//go:embed offline.html
var offlineHTML string

// OfflineHTML returns the page the shell shows while roomd is unreachable.
// It is self-contained (no network, no scripts): it must render when nothing
// else works.
func OfflineHTML() string { return offlineHTML }
