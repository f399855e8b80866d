package halbench

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (in the
// guest too, where the tests start the halbench program).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
