package netwatch

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// DefaultDebounce is the debounce window New uses when given zero.
const DefaultDebounce = time.Second

// Clock makes the timers of a Watcher; tests pass a fake.
type Clock interface {
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer, like *time.Timer.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// Option configures a Watcher.
type Option func(*Watcher)

// WithClock makes the Watcher time its debounce window with c.
func WithClock(c Clock) Option { return func(w *Watcher) { w.clock = c } }

// Watcher turns a Source's events into change callbacks.
//
// Guarantees: the first significant event opens a debounce window; when it
// closes, changed is called once with the last significant event seen in
// it. The window is not extended by later events, so under continuous churn
// there is one callback per window, never a starved one. Callbacks are made
// on Run's goroutine, one at a time; a slow callback delays the next window.
// An event is significant unless ignore says so, its interface is "lo", or
// it is an address event for a loopback or IPv6 link-local address.
type Watcher struct {
	src      Source
	logger   *slog.Logger
	debounce time.Duration
	ignore   func(Event) bool
	clock    Clock
}

// New returns a Watcher reading src. A zero debounce means DefaultDebounce;
// ignore may be nil.
func New(src Source, logger *slog.Logger, debounce time.Duration, ignore func(Event) bool, opts ...Option) *Watcher {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	w := &Watcher{src: src, logger: logger, debounce: debounce, ignore: ignore, clock: systemClock{}}
	for _, o := range opts {
		o(w)
	}
	return w
}

// Run reads events until ctx ends, calling changed as the type doc says. It
// returns nil when ctx ends (a change still in its debounce window is then
// dropped) and the Source's error if the Source fails. It leaves no
// goroutine behind.
func (w *Watcher) Run(ctx context.Context, changed func(Event)) error {
	ctx, cancel := context.WithCancel(ctx)
	events := make(chan Event)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// The reader is the only goroutine: Next blocks, and the loop below
	// must still see the timer and ctx. cancel ends it; wg waits for it.
	wg.Go(func() {
		for {
			e, err := w.src.Next(ctx)
			if err != nil {
				errc <- err
				return
			}
			select {
			case events <- e:
			case <-ctx.Done():
				return
			}
		}
	})

	var (
		timer Timer
		fire  <-chan time.Time
		last  Event
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("netwatch: read network events: %w", err)
		case e := <-events:
			if !w.significant(e) {
				w.logger.Debug("network event ignored", "kind", e.Kind, "interface", e.Interface, "addr", e.Addr)
				continue
			}
			w.logger.Debug("network event", "kind", e.Kind, "interface", e.Interface, "addr", e.Addr)
			last = e
			if timer == nil {
				timer = w.clock.NewTimer(w.debounce)
				fire = timer.C()
			}
		case <-fire:
			timer, fire = nil, nil
			w.logger.Info("network changed", "kind", last.Kind, "interface", last.Interface, "addr", last.Addr)
			changed(last)
		}
	}
}

func (w *Watcher) significant(e Event) bool {
	if w.ignore != nil && w.ignore(e) {
		return false
	}
	if e.Interface == "lo" {
		return false
	}
	if e.Kind == KindAddrAdded || e.Kind == KindAddrRemoved {
		a := parseAddr(e.Addr)
		if a.IsValid() && (a.IsLoopback() || (a.Is6() && a.IsLinkLocalUnicast())) {
			return false
		}
	}
	return true
}

// parseAddr reads "10.0.0.5/24" or "10.0.0.5"; the zero Addr if neither.
func parseAddr(s string) netip.Addr {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr()
	}
	a, _ := netip.ParseAddr(s)
	return a
}

type systemClock struct{}

func (systemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }
