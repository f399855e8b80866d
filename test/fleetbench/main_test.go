package fleetbench

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: the
// generator's connections, fleetd's and PostgreSQL's watchers must all end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
