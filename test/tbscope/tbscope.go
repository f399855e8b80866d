// Package tbscope gives benchmarks a testing.TB whose cleanups run when the
// benchmark says, not when it ends: one round's browser and roomd are gone
// before the next round measures, so that only what is measured runs.
// Harnesses such as guest.Start and roomdtest.Launch register their
// teardown through it like through any testing.TB.
package tbscope

import (
	"slices"
	"sync"
	"testing"
)

// Scope is a testing.TB with its own cleanups.
type Scope struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

// New returns a scope over tb. Its cleanups also run when tb ends, for a
// Fatal that skipped Close.
func New(tb testing.TB) *Scope {
	s := &Scope{TB: tb}
	tb.Cleanup(s.Close)
	return s
}

// Cleanup registers f to run at Close.
func (s *Scope) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// Close runs the cleanups, last registered first; it may be called again.
func (s *Scope) Close() {
	s.mu.Lock()
	fs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for _, f := range slices.Backward(fs) {
		f()
	}
}
