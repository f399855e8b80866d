package netwatch

import (
	"testing"

	"github.com/atriumroom/atrium/test/netns"
)

// TestMain runs the package's tests in a network namespace of their own
// (test/netns), so the real netlink test can change interfaces freely; it
// also fails the run if a goroutine is left behind.
func TestMain(m *testing.M) { netns.Main(m) }
