package webview

import (
	"testing"

	"github.com/atriumroom/atrium/test/netns"
)

// TestMain runs the package in a network namespace of its own (test/netns):
// the in-call test puts roomd and a Chromium guest in a real Janus room, and
// Janus refuses loopback for ICE. Xvfb, roomkiosk and the other tests need
// only loopback and unix sockets, which the namespace has too.
func TestMain(m *testing.M) { netns.Main(m) }
