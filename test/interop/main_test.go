// Package interop joins the real roomd to real meeting servers with real
// browsers in the same meeting. It runs in its own network namespace
// (test/netns): media flows between processes of this test only.
package interop

import (
	"testing"

	"github.com/atriumroom/atrium/test/netns"
	"github.com/atriumroom/atrium/test/whiptest"
)

func TestMain(m *testing.M) {
	// simple-whip-server is fetched and its npm packages installed before
	// the namespace cuts the network; a failure is reported by its Start.
	_ = whiptest.Provision()
	netns.Main(m)
}
