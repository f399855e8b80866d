package otabench

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if the benchmark leaves a goroutine behind
// (the HTTP server's, the installer's).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
