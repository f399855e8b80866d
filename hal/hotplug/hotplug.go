// Package hotplug tells HAL drivers when the devices of a subsystem may have
// changed, so that they re-enumerate. It is the hal.Watcher the V4L2 and ALSA
// drivers share.
//
// # Sources
//
// The primary source is a NETLINK_KOBJECT_UEVENT socket. It joins both
// multicast groups:
//
//   - group 1, the kernel's own uevents ("add@/devices/...\0KEY=VALUE\0..."),
//     which arrive whether or not udev runs: a minimal appliance image or the
//     QEMU test guest has only devtmpfs. devtmpfs has created the node by the
//     time the kernel sends the event, but with root-only permissions;
//   - group 2, udev's re-broadcast ("libudev\0" header, then the same
//     properties), sent after udev's rules ran, so the node then has its
//     final owner, mode and symlinks.
//
// Listening to both costs nothing: the two messages of one change normally
// fall into the same debounce window and cost one notification; when udev is
// slow, its message causes a second notification, and a driver that could not
// open a node after the first (EACCES while udev was still at work) succeeds
// after the second. Without udev only the kernel's messages come, and they
// suffice. Relevance is decided by the SUBSYSTEM property only: a rescan is
// cheap and idempotent, so it is better to notify once too often than to
// interpret ACTIONs and miss one.
//
// When the netlink socket cannot be opened (some containers), the monitor
// falls back to inotify on the device directory (Options.DevDir, and its
// subdirectories such as snd/ named in Options.DevPrefixes), watching node
// creation, removal and attribute changes (udev fixing permissions).
//
// # Debouncing
//
// Plugging a USB camera or speakerphone produces a burst of a dozen events
// (USB device, interfaces, video or sound nodes, then udev's copies). The
// monitor calls changed once the burst has been quiet for Options.Debounce,
// but never later than maxWaitFactor debounce periods after the first event
// of a burst, so that a device that keeps chattering is still picked up.
package hotplug

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultDebounce is the quiet period used when Options.Debounce is 0: long
// enough to merge a USB device's burst of events, short enough that a camera
// that comes back resumes well within the three seconds the HAL promises.
const DefaultDebounce = 250 * time.Millisecond

// maxWaitFactor bounds how long a continuous stream of events can postpone
// a notification, in debounce periods.
const maxWaitFactor = 4

// Options configures a Monitor.
type Options struct {
	// Subsystems are the uevent SUBSYSTEM values that matter, e.g.
	// "video4linux", "sound". Empty means every event matters.
	Subsystems []string
	// DevDir is the device directory the inotify fallback watches; "" means
	// "/dev".
	DevDir string
	// DevPrefixes are the node names, relative to DevDir, that the fallback
	// watches, e.g. "video", "snd/". A prefix with a slash makes the
	// fallback watch that subdirectory too. Empty means every node.
	DevPrefixes []string
	// Debounce is how long events must have been quiet before changed is
	// called; 0 means DefaultDebounce.
	Debounce time.Duration
	// Logger receives source selection and event details; nil discards.
	Logger *slog.Logger
}

// Monitor watches for hotplug events. It is safe to call Watch from several
// goroutines at once; each call has its own socket.
type Monitor struct {
	subsystems map[string]bool
	devDir     string
	prefixes   []string
	debounce   time.Duration
	log        *slog.Logger

	// Seams, replaced by tests.
	clock       clock
	dialNetlink func() (conn, error)
	openInotify func() (inotify, error)
	// handled, when set, is called after each relevant event has set the
	// debounce timer, so tests know the loop has caught up.
	handled func()
}

// New returns a Monitor for opts. It opens nothing until Watch.
func New(opts Options) *Monitor {
	m := &Monitor{
		devDir:      opts.DevDir,
		prefixes:    append([]string(nil), opts.DevPrefixes...),
		debounce:    opts.Debounce,
		log:         opts.Logger,
		clock:       systemClock{},
		dialNetlink: dialNetlink,
		openInotify: openInotify,
	}
	if m.devDir == "" {
		m.devDir = "/dev"
	}
	if m.debounce <= 0 {
		m.debounce = DefaultDebounce
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if len(opts.Subsystems) > 0 {
		m.subsystems = make(map[string]bool, len(opts.Subsystems))
		for _, s := range opts.Subsystems {
			m.subsystems[s] = true
		}
	}
	return m
}

// conn is a datagram source: a netlink socket, or an inotify descriptor.
// Close must unblock a Read in progress.
type conn interface {
	Read(p []byte) (int, error)
	Close() error
}

// source yields one call per relevant event (or batch of events).
type source interface {
	// next blocks until something relevant happened, or fails.
	next() error
	close() error
}

// Watch has hal.Watcher's contract: it blocks until ctx is done, calling
// changed once as soon as it is watching and then, debounced, whenever the
// set of devices may have changed. It returns nil when ctx is done, after
// its reader has stopped, and an error when no source could be opened or
// the source failed. changed is called from Watch's own goroutine.
func (m *Monitor) Watch(ctx context.Context, changed func()) error {
	src, err := m.open()
	if err != nil {
		return err
	}
	// Unbuffered: the loop below only resets a timer per event, so the
	// reader never waits long, and every event is handled in order (which
	// the tests rely on to move their clock deterministically).
	events := make(chan struct{})
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if err := src.next(); err != nil {
				errc <- err
				return
			}
			select {
			case events <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	})
	// Closing the source is what ends the reader; wait for it so no
	// goroutine outlives Watch.
	defer wg.Wait()
	defer func() { _ = src.close() }()

	changed()

	var (
		t     timer
		tc    <-chan time.Time
		first time.Time
	)
	stop := func() {
		if t != nil {
			t.Stop()
		}
		t, tc = nil, nil
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-events:
			now := m.clock.Now()
			if t == nil {
				first = now
			}
			stop()
			d := m.debounce
			if rest := first.Add(maxWaitFactor * m.debounce).Sub(now); rest < d {
				d = max(rest, 0)
			}
			t = m.clock.NewTimer(d)
			tc = t.C()
			if m.handled != nil {
				m.handled()
			}
		case <-tc:
			t, tc = nil, nil
			changed()
		}
	}
}

// open opens the netlink source, or the inotify one when netlink is not
// available.
func (m *Monitor) open() (source, error) {
	c, nlErr := m.dialNetlink()
	if nlErr == nil {
		m.log.Debug("hotplug: watching netlink uevents")
		return &netlinkSource{c: c, m: m, buf: make([]byte, netlinkBufSize)}, nil
	}
	m.log.Warn("hotplug: netlink uevents unavailable; falling back to inotify", "err", nlErr, "dir", m.devDir)
	src, inErr := m.newInotifySource()
	if inErr != nil {
		return nil, fmt.Errorf("hotplug: no event source: %w", errors.Join(nlErr, inErr))
	}
	return src, nil
}

// relevantSubsystem reports whether an event of subsystem matters.
func (m *Monitor) relevantSubsystem(subsystem string) bool {
	return m.subsystems == nil || m.subsystems[subsystem]
}

// clock is the time source for debouncing.
type clock interface {
	Now() time.Time
	NewTimer(d time.Duration) timer
}

// timer is a one-shot timer, like *time.Timer.
type timer interface {
	C() <-chan time.Time
	Stop() bool
}

type systemClock struct{}

func (systemClock) Now() time.Time                 { return time.Now() }
func (systemClock) NewTimer(d time.Duration) timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }
