package browser

import (
	"testing"

	"github.com/atriumroom/atrium/test/netns"
)

// TestMain runs the package in a network namespace of its own (test/netns):
// the in-call test puts the kiosk's roomd and a Chromium guest in a real
// Janus room, and Janus refuses loopback for ICE. The other tests only use
// loopback, which the namespace has too.
func TestMain(m *testing.M) { netns.Main(m) }
