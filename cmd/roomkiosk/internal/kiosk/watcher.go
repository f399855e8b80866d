package kiosk

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Display is the window the Watcher drives. Both methods must be safe to
// call from any goroutine and must not block: the GTK implementation only
// queues the work for the UI thread.
type Display interface {
	// ShowOffline shows the built-in "waiting for roomd" page.
	ShowOffline()
	// ShowUI (re)loads roomd's UI from its configured URL.
	ShowUI()
}

// Default timing of a Watcher.
const (
	// DefaultInterval is how often roomd's status is polled.
	DefaultInterval = time.Second
	// DefaultDownAfter is how many polls in a row must fail before the UI is
	// replaced by the offline page. One lost poll (a busy roomd, a GC pause)
	// should not make the TV flash; three seconds of silence is a real outage.
	DefaultDownAfter = 3
)

// Watcher polls roomd and keeps the Display on the right page: the offline
// page while roomd is unreachable, the UI as soon as it answers, and a fresh
// load of the UI when roomd restarted (its bootId changed) or the page failed
// to load. The UI reconnects its own event stream to a restarted roomd; the
// Watcher covers what the page cannot: a page that never loaded.
type Watcher struct {
	src       StatusSource
	log       *slog.Logger
	interval  time.Duration
	downAfter int

	// pageFailed is set from the GTK thread and consumed by Run's goroutine.
	pageFailed atomic.Bool
}

// NewWatcher returns a Watcher that polls src every DefaultInterval.
func NewWatcher(src StatusSource, log *slog.Logger) *Watcher {
	return &Watcher{src: src, log: log, interval: DefaultInterval, downAfter: DefaultDownAfter}
}

// PageFailed tells the Watcher that the page did not load (or its web
// process died), so the UI is reloaded at the next successful poll even if
// roomd never looked down. Safe to call from any goroutine.
func (w *Watcher) PageFailed() {
	w.pageFailed.Store(true)
}

// Run shows the offline page, then polls until ctx is done, driving d.
// It returns ctx's error.
func (w *Watcher) Run(ctx context.Context, d Display) error {
	// Start on the offline page rather than loading the UI blindly: if roomd
	// is not up yet, WebKit would show its own error page instead.
	d.ShowOffline()
	st := watchState{downAfter: w.downAfter}
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.poll(ctx, d, &st)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (w *Watcher) poll(ctx context.Context, d Display, st *watchState) {
	status, err := w.src.Status(ctx)
	if ctx.Err() != nil {
		return // shutting down: the failure says nothing about roomd
	}
	var a action
	if err != nil {
		a = st.failed()
		if a == showOffline {
			w.log.Warn("roomd unreachable: showing offline page", "failed_polls", st.failures, "err", err)
		} else {
			w.log.Debug("roomd status poll failed", "failed_polls", st.failures, "err", err)
		}
	} else {
		prev := st.bootID
		a = st.succeeded(status.BootID, w.pageFailed.Swap(false))
		if a == showUI {
			w.log.Info("loading UI", "bootId", status.BootID, "previous_bootId", prev, "reason", st.reason)
		}
	}
	switch a {
	case showOffline:
		d.ShowOffline()
	case showUI:
		d.ShowUI()
	}
}

type action int

const (
	none action = iota
	showOffline
	showUI
)

// watchState is the Watcher's memory between polls. It starts "down", which
// matches the offline page Run shows first.
type watchState struct {
	downAfter int
	up        bool   // the UI was loaded and roomd has answered since
	bootID    string // of the roomd that served the loaded UI
	failures  int    // consecutive failed polls
	reason    string // why the last showUI happened, for the log
}

func (s *watchState) failed() action {
	s.failures++
	if s.up && s.failures >= s.downAfter {
		s.up = false
		return showOffline
	}
	return none
}

func (s *watchState) succeeded(bootID string, pageFailed bool) action {
	s.failures = 0
	switch {
	case !s.up:
		s.reason = "roomd reachable"
	case bootID != s.bootID:
		// roomd restarted between two polls: the page may hold state from the
		// old instance, and its event stream may not have noticed yet.
		s.reason = "roomd restarted"
	case pageFailed:
		s.reason = "page failed to load"
	default:
		return none
	}
	s.up = true
	s.bootID = bootID
	return showUI
}
