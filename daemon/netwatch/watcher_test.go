package netwatch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fakeSource hands out the events a test sends on in. Each time it waits
// for an event it signals waiting, so a test knows the Watcher has taken
// every event sent before.
type fakeSource struct {
	in      chan Event
	err     chan error
	waiting chan struct{}
}

func newFakeSource() *fakeSource {
	return &fakeSource{in: make(chan Event), err: make(chan error), waiting: make(chan struct{}, 1)}
}

func (s *fakeSource) Next(ctx context.Context) (Event, error) {
	select {
	case s.waiting <- struct{}{}:
	default:
	}
	select {
	case e := <-s.in:
		return e, nil
	case err := <-s.err:
		return Event{}, err
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// send hands e to the Watcher's reader and waits until the reader has
// passed it on to the Watcher's loop (it is then back in Next).
func (s *fakeSource) send(t *testing.T, e Event) {
	t.Helper()
	select {
	case <-s.waiting: // drop a stale signal
	default:
	}
	select {
	case s.in <- e:
	case <-time.After(5 * time.Second):
		t.Fatal("watcher did not read the event")
	}
	select {
	case <-s.waiting:
	case <-time.After(5 * time.Second):
		t.Fatal("watcher did not come back for the next event")
	}
}

// fakeClock hands each timer to the test, which fires it.
type fakeClock struct{ timers chan *fakeTimer }

type fakeTimer struct {
	d time.Duration
	c chan time.Time
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{d: d, c: make(chan time.Time, 1)}
	c.timers <- t
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool          { return true }
func (t *fakeTimer) fire()               { t.c <- time.Time{} }

func (c *fakeClock) next(t *testing.T) *fakeTimer {
	t.Helper()
	select {
	case tm := <-c.timers:
		return tm
	case <-time.After(5 * time.Second):
		t.Fatal("no debounce timer started")
		return nil
	}
}

func (c *fakeClock) none(t *testing.T) {
	t.Helper()
	select {
	case tm := <-c.timers:
		t.Fatalf("unexpected debounce timer (%v)", tm.d)
	default:
	}
}

// harness runs a Watcher on a fake source and clock, recording callbacks.
type harness struct {
	src     *fakeSource
	clock   *fakeClock
	changes chan Event
	cancel  context.CancelFunc
	done    chan error
	endOnce sync.Once
	err     error
}

func start(t *testing.T, debounce time.Duration, ignore func(Event) bool) *harness {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
	h := &harness{
		src:     newFakeSource(),
		clock:   &fakeClock{timers: make(chan *fakeTimer, 8)},
		changes: make(chan Event, 8),
		done:    make(chan error, 1),
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := New(h.src, logger, debounce, ignore, WithClock(h.clock))
	ctx, cancel := context.WithCancel(t.Context())
	h.cancel = cancel
	go func() { h.done <- w.Run(ctx, func(e Event) { h.changes <- e }) }()
	t.Cleanup(h.stop)
	return h
}

// wait returns what Run returned, waiting for it (the test's own timeout
// catches a Run that never ends).
func (h *harness) wait() error {
	h.endOnce.Do(func() { h.err = <-h.done })
	return h.err
}

func (h *harness) stop() {
	h.cancel()
	_ = h.wait()
}

func (h *harness) change(t *testing.T) Event {
	t.Helper()
	select {
	case e := <-h.changes:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no change callback")
		return Event{}
	}
}

func (h *harness) noChange(t *testing.T) {
	t.Helper()
	select {
	case e := <-h.changes:
		t.Fatalf("unexpected change callback: %+v", e)
	default:
	}
}

func TestWatcherCoalescesBurst(t *testing.T) {
	h := start(t, 0, nil)
	h.src.send(t, Event{Kind: KindLinkDown, Interface: "wlan0"})
	tm := h.clock.next(t)
	if tm.d != DefaultDebounce {
		t.Errorf("debounce = %v, want default %v", tm.d, DefaultDebounce)
	}
	h.src.send(t, Event{Kind: KindAddrRemoved, Interface: "wlan0", Addr: "192.168.1.20/24"})
	h.src.send(t, Event{Kind: KindLinkUp, Interface: "wlan0"})
	h.src.send(t, Event{Kind: KindAddrAdded, Interface: "wlan0", Addr: "10.1.2.3/16"})
	h.clock.none(t) // the window is not restarted by later events
	h.noChange(t)   // nor is anything reported before it closes
	tm.fire()
	want := Event{Kind: KindAddrAdded, Interface: "wlan0", Addr: "10.1.2.3/16"}
	if got := h.change(t); got != want {
		t.Errorf("change = %+v, want the last event %+v", got, want)
	}

	// The next event opens a new window.
	h.src.send(t, Event{Kind: KindRouteChanged, Interface: "eth0", Addr: "10.0.0.1"})
	h.clock.next(t).fire()
	if got := h.change(t); got.Kind != KindRouteChanged {
		t.Errorf("second change = %+v, want route-changed", got)
	}
	h.noChange(t)
}

func TestWatcherDebounceSetting(t *testing.T) {
	h := start(t, 250*time.Millisecond, nil)
	h.src.send(t, Event{Kind: KindLinkUp, Interface: "eth0"})
	if tm := h.clock.next(t); tm.d != 250*time.Millisecond {
		t.Errorf("debounce = %v, want 250ms", tm.d)
	}
}

func TestWatcherIgnores(t *testing.T) {
	ignore := func(e Event) bool { return strings.HasPrefix(e.Interface, "veth") }
	h := start(t, 0, ignore)
	for _, e := range []Event{
		{Kind: KindAddrAdded, Interface: "lo", Addr: "127.0.0.2/8"},
		{Kind: KindLinkUp, Interface: "lo"},
		{Kind: KindAddrAdded, Interface: "eth0", Addr: "::1/128"},
		{Kind: KindAddrAdded, Interface: "eth0", Addr: "fe80::1234/64"},
		{Kind: KindAddrRemoved, Interface: "wlan0", Addr: "fe80::abcd/64"},
		{Kind: KindLinkDown, Interface: "veth3"},
		{Kind: KindAddrAdded, Interface: "veth3", Addr: "10.9.9.9/24"},
	} {
		h.src.send(t, e)
	}
	h.clock.none(t)
	h.noChange(t)

	// An address event on a real interface, IPv6 global or IPv4
	// link-local, is a change; the ignored events did not open a window.
	h.src.send(t, Event{Kind: KindAddrAdded, Interface: "eth0", Addr: "2001:db8::5/64"})
	h.src.send(t, Event{Kind: KindAddrAdded, Interface: "veth3", Addr: "10.9.9.8/24"})
	h.clock.next(t).fire()
	want := Event{Kind: KindAddrAdded, Interface: "eth0", Addr: "2001:db8::5/64"}
	if got := h.change(t); got != want {
		t.Errorf("change = %+v, want %+v", got, want)
	}
}

func TestWatcherOverflowIsChange(t *testing.T) {
	h := start(t, 0, nil)
	h.src.send(t, Event{Kind: KindOverflow})
	h.clock.next(t).fire()
	if got := h.change(t); got.Kind != KindOverflow {
		t.Errorf("change = %+v, want overflow", got)
	}
}

func TestWatcherEndsWithContext(t *testing.T) {
	h := start(t, 0, nil)
	h.src.send(t, Event{Kind: KindLinkDown, Interface: "eth0"})
	h.clock.next(t) // a window is open; ending must not wait for it
	h.cancel()
	if err := h.wait(); err != nil {
		t.Errorf("Run = %v, want nil when ctx ends", err)
	}
	h.noChange(t)
}

func TestWatcherSourceError(t *testing.T) {
	h := start(t, 0, nil)
	boom := errors.New("boom")
	h.src.err <- boom
	if err := h.wait(); !errors.Is(err, boom) {
		t.Errorf("Run = %v, want %v", err, boom)
	}
}
