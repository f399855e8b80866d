package sim

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// Clock is the time source that paces the simulated devices. The devices
// never sleep on their own: every wait goes through NewTimer, so a FakeClock
// makes them run as fast, and as deterministically, as a test drives it.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer, like *time.Timer.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did so.
	Stop() bool
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }

// FakeClock is a Clock that moves only when Advance or Set is called. It is
// exported for tests in other packages that drive simulated devices.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	// changed is closed and replaced whenever the set of timers changes, so
	// WaitForTimers can block without polling.
	changed chan struct{}
}

// NewFakeClock returns a fake clock reading start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires once the fake time reaches now+d; with
// d <= 0 it has already fired.
func (c *FakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, when: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	c.signalLocked()
	return t
}

// Advance moves the fake time forward by d and fires, in order, every timer
// that is then due.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(c.now.Add(d))
}

// Set moves the fake time to t, firing due timers. Moving it backwards fires
// nothing and, like a stepped system clock, may confuse what waits on it.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(t)
}

func (c *FakeClock) setLocked(t time.Time) {
	c.now = t
	slices.SortStableFunc(c.timers, func(a, b *fakeTimer) int { return a.when.Compare(b.when) })
	n := 0
	for _, tm := range c.timers {
		if tm.when.After(t) {
			break
		}
		tm.ch <- t // buffered, and each timer fires once
		n++
	}
	if n > 0 {
		c.timers = slices.Delete(c.timers, 0, n)
		c.signalLocked()
	}
}

// Timers reports how many timers are waiting.
func (c *FakeClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitForTimers blocks until at least n timers are waiting, that is until n
// readers or writers are blocked on the clock, or ctx is done. Tests call it
// before Advance to know a goroutine has reached its wait.
func (c *FakeClock) WaitForTimers(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		if len(c.timers) >= n {
			c.mu.Unlock()
			return nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *FakeClock) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

type fakeTimer struct {
	clock *FakeClock
	when  time.Time
	ch    chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.timers, t)
	if i < 0 {
		return false
	}
	c.timers = slices.Delete(c.timers, i, i+1)
	c.signalLocked()
	return true
}

// wait blocks until the clock reaches deadline, ctx is done, the stream is
// closed, or its device is unplugged, and says which (nil for the deadline).
func wait(ctx context.Context, clock Clock, deadline time.Time, closed, gone <-chan struct{}) error {
	d := deadline.Sub(clock.Now())
	if d <= 0 {
		return nil
	}
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-closed:
		return hal.ErrClosed
	case <-gone:
		return hal.ErrUnplugged
	}
}
