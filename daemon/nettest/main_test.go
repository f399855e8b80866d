package nettest

import (
	"testing"

	"github.com/atriumroom/atrium/test/netns"
)

// The integration tests run real coturn on the isolated namespace's address;
// netns.Main also checks for leaked goroutines, as goleak.VerifyTestMain
// would.
func TestMain(m *testing.M) { netns.Main(m) }
