package kioskbench

import (
	"io"
	"log"
	"testing"

	"github.com/jezek/xgb"

	"github.com/atriumroom/atrium/test/netns"
)

// TestMain runs the package in a network namespace of its own: Janus
// refuses loopback for ICE, and the publishers, roomd and Chromium must
// meet it on the namespace's private address only.
//
// xgb logs to stderr that it found no X authority file before it connects
// without one, as it must to the bench's Xvfb (which has no -auth); its
// errors reach the bench through its return values all the same.
func TestMain(m *testing.M) {
	xgb.Logger = log.New(io.Discard, "", 0)
	netns.Main(m)
}
