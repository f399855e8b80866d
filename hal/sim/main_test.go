package sim

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind; the
// tests that start goroutines also check on their own with VerifyNone.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkLeaks fails the test if it leaves goroutines behind. It runs as the
// last cleanup, after the test's contexts are cancelled and its streams
// closed, which a deferred goleak.VerifyNone would run before.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// epoch is on a whole second, so the microphone beeps at the start of every
// test that opens it there.
var epoch = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// testContext bounds a test: no test here needs more than a second of real
// time, so 10s means something hangs.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newTestDriver(t *testing.T, cfg Config) (*Driver, *FakeClock) {
	t.Helper()
	clock := NewFakeClock(epoch)
	cfg.Clock = clock
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d, clock
}
