package alsa

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkLeaks fails the test if it leaves goroutines behind, checked after
// the test's own cleanups.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// testContext bounds a test: no unit test here needs more than a second.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// epoch is the fake time streams read.
var epoch = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// newTestDriver returns a driver on fs, reading a clock fixed at epoch.
func newTestDriver(t *testing.T, fs *fakeSys) *Driver {
	t.Helper()
	d := New(Options{})
	d.sys = fs
	d.now = func() time.Time { return epoch }
	t.Cleanup(func() {
		if n := fs.openFDs(); n != 0 {
			t.Errorf("%d descriptors left open", n)
		}
	})
	return d
}
