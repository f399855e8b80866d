package hotplug

import (
	"context"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkLeaks fails the test if it leaves goroutines behind, checked after
// the test's own cleanups (cancelled contexts, ended Watch calls).
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// testContext bounds a test: nothing here needs more than a second of real
// time, so 10 s means something hangs.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeClock moves only when Advance is called.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC), changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, when: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	c.signalLocked()
	return t
}

// Advance moves time forward by d, firing the timers then due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool {
		if t.when.After(c.now) {
			return false
		}
		t.ch <- c.now
		return true
	})
	c.signalLocked()
}

// waitTimer blocks until a timer is pending that fires at now+d, which is
// how a test knows Watch has seen its events and re-armed the debounce.
func (c *fakeClock) waitTimer(t *testing.T, ctx context.Context, d time.Duration) {
	t.Helper()
	for {
		c.mu.Lock()
		want := c.now.Add(d)
		found := slices.ContainsFunc(c.timers, func(tm *fakeTimer) bool { return tm.when.Equal(want) })
		ch := c.changed
		c.mu.Unlock()
		if found {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("no timer for now+%v", d)
		}
	}
}

func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func (c *fakeClock) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

type fakeTimer struct {
	c    *fakeClock
	when time.Time
	ch   chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	c := t.c
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

// fakeConn delivers queued datagrams (or errors) to Read; Close unblocks a
// waiting Read with os.ErrClosed, as the real os.File does.
type fakeConn struct {
	msgs     chan any // []byte or error
	closed   chan struct{}
	once     sync.Once
	consumed chan struct{} // one value per datagram handed to Read
}

func newFakeConn() *fakeConn {
	return &fakeConn{msgs: make(chan any, 64), closed: make(chan struct{}), consumed: make(chan struct{}, 64)}
}

func (c *fakeConn) Read(p []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, os.ErrClosed
	default:
	}
	select {
	case m := <-c.msgs:
		c.consumed <- struct{}{}
		switch m := m.(type) {
		case error:
			return 0, m
		case []byte:
			return copy(p, m), nil
		}
		panic("bad message")
	case <-c.closed:
		return 0, os.ErrClosed
	}
}

func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// send queues messages and waits until the reader has taken them all.
func (c *fakeConn) send(t *testing.T, ctx context.Context, msgs ...any) {
	t.Helper()
	for _, m := range msgs {
		c.msgs <- m
	}
	for range msgs {
		select {
		case <-c.consumed:
		case <-ctx.Done():
			t.Fatal("reader did not take the messages")
		}
	}
}

func (c *fakeConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}
