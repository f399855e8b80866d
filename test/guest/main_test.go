package guest_test

import (
	"testing"

	"github.com/atriumroom/atrium/test/netns"
)

// TestMain runs the tests in their own network namespace, where Janus has a
// non-loopback address that is not this machine's; netns.Main also checks
// that nothing a Guest starts (the console reader, chromedp's connection to
// the browser, the page's server) outlives the tests.
func TestMain(m *testing.M) { netns.Main(m) }
