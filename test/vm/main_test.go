package vm

import (
	"log/slog"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (exec's
// output copiers, for one, must be done when Run returns).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLogger sends a logger's lines to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}
