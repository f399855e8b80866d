package hotplug

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// kernelMsg builds a kernel uevent datagram.
func kernelMsg(action, devpath, subsystem string) []byte {
	return []byte(fmt.Sprintf("%s@%s\x00ACTION=%s\x00DEVPATH=%s\x00SUBSYSTEM=%s\x00SEQNUM=42\x00", action, devpath, action, devpath, subsystem))
}

// udevMsg builds a libudev datagram as udevd sends it to group 2.
func udevMsg(action, devpath, subsystem string) []byte {
	props := fmt.Sprintf("ACTION=%s\x00DEVPATH=%s\x00SUBSYSTEM=%s\x00DEVNAME=/dev/snd/controlC0\x00", action, devpath, subsystem)
	const hdr = 40 // sizeof(struct monitor_netlink_header)
	b := make([]byte, hdr, hdr+len(props))
	copy(b, "libudev\x00")
	binary.BigEndian.PutUint32(b[8:], udevMagic)
	binary.NativeEndian.PutUint32(b[12:], hdr)
	binary.NativeEndian.PutUint32(b[16:], hdr)
	binary.NativeEndian.PutUint32(b[20:], uint32(len(props)))
	return append(b, props...)
}

func TestParseUevent(t *testing.T) {
	ev, err := parseUevent(kernelMsg("add", "/devices/virtual/sound/card1", "sound"))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Action != "add" || ev.DevPath != "/devices/virtual/sound/card1" || ev.Subsystem != "sound" || ev.Udev || ev.Env["SEQNUM"] != "42" {
		t.Errorf("kernel uevent parsed as %+v", ev)
	}

	ev, err = parseUevent(udevMsg("remove", "/devices/pci0000:00/usb1/1-1/1-1:1.0/video4linux/video0", "video4linux"))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Action != "remove" || ev.Subsystem != "video4linux" || !ev.Udev || ev.Env["DEVNAME"] != "/dev/snd/controlC0" {
		t.Errorf("udev uevent parsed as %+v", ev)
	}

	bad := udevMsg("add", "/devices/x", "sound")
	binary.NativeEndian.PutUint32(bad[20:], 1<<20) // properties beyond the datagram
	badMagic := udevMsg("add", "/devices/x", "sound")
	badMagic[8] = 0
	for name, b := range map[string][]byte{
		"empty":        nil,
		"no NUL":       []byte("add@/devices/x"),
		"no @":         []byte("hello\x00A=B\x00"),
		"relative":     []byte("add@devices\x00"),
		"udev short":   []byte("libudev\x00\xfe\xed"),
		"udev bounds":  bad,
		"udev magic":   badMagic,
		"udev no prop": udevMsg("", "", "sound")[:40],
	} {
		if _, err := parseUevent(b); !errors.Is(err, errNotUevent) {
			t.Errorf("%s: parseUevent = %v, want errNotUevent", name, err)
		}
	}
}

// TestNetlinkSourceFilters checks that only events of the wanted subsystems
// (from either group), lost-event overflows, end a wait for the next event.
func TestNetlinkSourceFilters(t *testing.T) {
	m := New(Options{Subsystems: []string{"sound", "video4linux"}})
	c := newFakeConn()
	src := &netlinkSource{c: c, m: m, buf: make([]byte, netlinkBufSize)}

	for _, tc := range []struct {
		name    string
		msgs    []any
		consume int // datagrams read before next returns
	}{
		{"kernel sound", []any{kernelMsg("add", "/devices/virtual/sound/card1", "sound")}, 1},
		{"udev video", []any{udevMsg("add", "/devices/v/video4linux/video3", "video4linux")}, 1},
		{"skips others", []any{
			kernelMsg("add", "/devices/virtual/net/veth0", "net"),
			[]byte("garbage"),
			udevMsg("change", "/devices/virtual/block/loop0", "block"),
			kernelMsg("remove", "/devices/virtual/sound/card1/controlC1", "sound"),
		}, 4},
		{"overflow", []any{fmt.Errorf("read uevent: %w", unix.ENOBUFS)}, 1},
	} {
		for _, msg := range tc.msgs {
			c.msgs <- msg
		}
		if err := src.next(); err != nil {
			t.Fatalf("%s: next: %v", tc.name, err)
		}
		for range tc.consume {
			<-c.consumed
		}
		if left := len(c.msgs); left != 0 {
			t.Errorf("%s: next returned with %d datagrams unread", tc.name, left)
		}
	}

	c.msgs <- errors.New("socket broke")
	if err := src.next(); err == nil || !strings.Contains(err.Error(), "socket broke") {
		t.Errorf("next after a read error = %v", err)
	}
}

// harness runs Watch on fakes and records its calls to changed.
type harness struct {
	m       *Monitor
	clock   *fakeClock
	nl      *fakeConn
	changed chan struct{}
	done    chan error

	handled  chan struct{} // an event was handled
	nHandled atomic.Int64  // how many so far
}

func startWatch(t *testing.T, opts Options) *harness {
	t.Helper()
	h := &harness{
		m:       New(opts),
		clock:   newFakeClock(),
		nl:      newFakeConn(),
		changed: make(chan struct{}, 16),
		done:    make(chan error, 1),
	}
	h.m.clock = h.clock
	h.m.dialNetlink = func() (conn, error) { return h.nl, nil }
	h.m.openInotify = func() (inotify, error) { return nil, errors.New("inotify must not be used") }
	h.handled = make(chan struct{}, 1)
	h.m.handled = func() {
		h.nHandled.Add(1)
		select {
		case h.handled <- struct{}{}:
		default:
		}
	}
	return h
}

// settle waits until Watch's loop has handled n relevant events in all:
// only then may a test move the clock, or the debounce deadline would
// depend on when the loop got to them.
func (h *harness) settle(t *testing.T, ctx context.Context, n int64) {
	t.Helper()
	for h.nHandled.Load() < n {
		select {
		case <-h.handled:
		case <-ctx.Done():
			t.Fatalf("Watch handled %d events, want %d", h.nHandled.Load(), n)
		}
	}
}

func (h *harness) run(ctx context.Context) {
	go func() { h.done <- h.m.Watch(ctx, func() { h.changed <- struct{}{} }) }()
}

func (h *harness) wantChanged(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-h.changed:
	case err := <-h.done:
		t.Fatalf("Watch ended: %v", err)
	case <-ctx.Done():
		t.Fatal("changed was not called")
	}
}

func (h *harness) wantQuiet(t *testing.T) {
	t.Helper()
	select {
	case <-h.changed:
		t.Fatal("changed was called")
	default:
	}
}

func (h *harness) stop(t *testing.T, cancel context.CancelFunc) {
	t.Helper()
	cancel()
	if err := <-h.done; err != nil {
		t.Errorf("Watch = %v after cancel, want nil", err)
	}
	if !h.nl.isClosed() {
		t.Error("socket not closed after Watch returned")
	}
}

func TestWatchDebouncesBurst(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(testContext(t))
	h := startWatch(t, Options{Subsystems: []string{"sound"}, Debounce: 100 * time.Millisecond})
	h.run(ctx)
	h.wantChanged(t, ctx) // once as soon as it is watching

	h.nl.send(t, ctx,
		kernelMsg("add", "/devices/virtual/sound/card1", "sound"),
		kernelMsg("add", "/devices/virtual/sound/card1/controlC1", "sound"),
		udevMsg("add", "/devices/virtual/sound/card1", "sound"),
	)
	h.settle(t, ctx, 3)
	h.clock.waitTimer(t, ctx, 100*time.Millisecond)
	h.clock.Advance(99 * time.Millisecond)
	if h.clock.pending() != 1 {
		t.Fatal("debounce timer fired early")
	}
	h.wantQuiet(t)
	h.clock.Advance(time.Millisecond)
	h.wantChanged(t, ctx)

	// A later event starts a new burst.
	h.nl.send(t, ctx, kernelMsg("remove", "/devices/virtual/sound/card1", "sound"))
	h.settle(t, ctx, 4)
	h.clock.waitTimer(t, ctx, 100*time.Millisecond)
	h.clock.Advance(100 * time.Millisecond)
	h.wantChanged(t, ctx)
	h.wantQuiet(t)

	h.stop(t, cancel)
}

// TestWatchMaxWait checks that a device that never stops chattering still
// produces a notification after maxWaitFactor debounce periods.
func TestWatchMaxWait(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(testContext(t))
	const d = 250 * time.Millisecond
	h := startWatch(t, Options{Subsystems: []string{"video4linux"}})
	h.run(ctx)
	h.wantChanged(t, ctx)

	ev := kernelMsg("change", "/devices/x/video4linux/video0", "video4linux")
	h.nl.send(t, ctx, ev)
	h.clock.waitTimer(t, ctx, d) // DefaultDebounce
	elapsed := time.Duration(0)
	for elapsed+200*time.Millisecond < maxWaitFactor*d {
		h.clock.Advance(200 * time.Millisecond)
		elapsed += 200 * time.Millisecond
		h.wantQuiet(t)
		h.nl.send(t, ctx, ev)
		h.clock.waitTimer(t, ctx, min(d, maxWaitFactor*d-elapsed))
	}
	// At 800 ms the last event re-armed the timer for the 200 ms left.
	h.clock.Advance(maxWaitFactor*d - elapsed)
	h.wantChanged(t, ctx)
	h.stop(t, cancel)
}

func TestWatchReadErrorEndsWatch(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	h := startWatch(t, Options{})
	h.run(ctx)
	h.wantChanged(t, ctx)
	h.nl.msgs <- errors.New("socket broke")
	select {
	case err := <-h.done:
		if err == nil || !strings.Contains(err.Error(), "socket broke") {
			t.Errorf("Watch = %v, want the read error", err)
		}
	case <-ctx.Done():
		t.Fatal("Watch did not end")
	}
	if !h.nl.isClosed() {
		t.Error("socket not closed")
	}
}

// fakeInotify records watches and delivers raw inotify events.
type fakeInotify struct {
	*fakeConn
	mu      sync.Mutex
	watches map[string]int // path -> wd
	missing map[string]bool
}

func (f *fakeInotify) AddWatch(path string, mask uint32) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if mask != inotifyMask {
		return 0, fmt.Errorf("mask %#x", mask)
	}
	if f.missing[path] {
		return 0, unix.ENOENT
	}
	wd := len(f.watches) + 1
	f.watches[path] = wd
	return wd, nil
}

func (f *fakeInotify) wd(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watches[path]
}

// inotifyEvent encodes one struct inotify_event with its name padded.
func inotifyEvent(wd int, mask uint32, name string) []byte {
	n := 0
	if name != "" {
		n = (len(name) + 1 + 15) &^ 15
	}
	b := make([]byte, inotifyHeader+n)
	binary.NativeEndian.PutUint32(b[0:], uint32(int32(wd)))
	binary.NativeEndian.PutUint32(b[4:], mask)
	binary.NativeEndian.PutUint32(b[12:], uint32(n))
	copy(b[inotifyHeader:], name)
	return b
}

func TestWatchFallsBackToInotify(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(testContext(t))
	h := startWatch(t, Options{DevDir: "/devx", DevPrefixes: []string{"video", "snd/"}, Debounce: 10 * time.Millisecond})
	in := &fakeInotify{fakeConn: newFakeConn(), watches: map[string]int{}, missing: map[string]bool{"/devx/snd": true}}
	h.m.dialNetlink = func() (conn, error) { return nil, errors.New("no netlink here") }
	h.m.openInotify = func() (inotify, error) { return in, nil }
	h.run(ctx)
	h.wantChanged(t, ctx)
	root := in.wd("/devx")
	if root == 0 {
		t.Fatal("DevDir not watched")
	}

	// Unrelated nodes do not count; a video node does.
	in.send(t, ctx,
		append(inotifyEvent(root, unix.IN_CREATE, "ttyS3"), inotifyEvent(root, unix.IN_ATTRIB, "vhost-net")...),
		inotifyEvent(root, unix.IN_CREATE, "video2"),
	)
	h.clock.waitTimer(t, ctx, 10*time.Millisecond)
	h.clock.Advance(10 * time.Millisecond)
	h.wantChanged(t, ctx)

	// snd/ appears with the first card: it is watched from then on, and
	// its appearance alone counts (nodes in it may predate the watch).
	in.mu.Lock()
	delete(in.missing, "/devx/snd")
	in.mu.Unlock()
	in.send(t, ctx, inotifyEvent(root, unix.IN_CREATE|unix.IN_ISDIR, "snd"))
	h.clock.waitTimer(t, ctx, 10*time.Millisecond)
	snd := in.wd("/devx/snd")
	if snd == 0 {
		t.Fatal("snd/ not watched after it appeared")
	}
	h.clock.Advance(10 * time.Millisecond)
	h.wantChanged(t, ctx)

	in.send(t, ctx, inotifyEvent(snd, unix.IN_DELETE, "pcmC1D0p"))
	h.clock.waitTimer(t, ctx, 10*time.Millisecond)
	h.clock.Advance(10 * time.Millisecond)
	h.wantChanged(t, ctx)

	// The watch on snd/ ends when it is removed; stray events for the old
	// descriptor are ignored. A queue overflow counts as a change.
	in.send(t, ctx, append(inotifyEvent(snd, unix.IN_IGNORED, ""), inotifyEvent(snd, unix.IN_CREATE, "pcmC9D0p")...))
	in.send(t, ctx, inotifyEvent(-1, unix.IN_Q_OVERFLOW, ""))
	h.clock.waitTimer(t, ctx, 10*time.Millisecond)
	h.clock.Advance(10 * time.Millisecond)
	h.wantChanged(t, ctx)

	cancel()
	if err := <-h.done; err != nil {
		t.Errorf("Watch = %v", err)
	}
	if !in.isClosed() {
		t.Error("inotify not closed")
	}
}

func TestWatchNoSource(t *testing.T) {
	ctx := testContext(t)
	h := startWatch(t, Options{})
	h.m.dialNetlink = func() (conn, error) { return nil, errors.New("no netlink here") }
	h.m.openInotify = func() (inotify, error) { return nil, errors.New("no inotify either") }
	err := h.m.Watch(ctx, func() { t.Error("changed called without a source") })
	if err == nil || !strings.Contains(err.Error(), "no netlink here") || !strings.Contains(err.Error(), "no inotify either") {
		t.Errorf("Watch = %v, want both failures", err)
	}
}

// TestRealInotify runs the fallback on a real inotify instance over a
// temporary directory, with the real clock and a short debounce.
func TestRealInotify(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(testContext(t))
	dir := t.TempDir()
	m := New(Options{DevDir: dir, DevPrefixes: []string{"video", "snd/"}, Debounce: 5 * time.Millisecond})
	m.dialNetlink = func() (conn, error) { return nil, errors.New("no netlink here") }
	changed := make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() { done <- m.Watch(ctx, func() { changed <- struct{}{} }) }()
	wait := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case err := <-done:
			t.Fatalf("%s: Watch ended: %v", what, err)
		case <-ctx.Done():
			t.Fatalf("%s: changed not called", what)
		}
	}
	wait("start")
	touch := func(p string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	touch("video0")
	wait("video0 created")
	if err := os.Mkdir(filepath.Join(dir, "snd"), 0o755); err != nil {
		t.Fatal(err)
	}
	wait("snd/ created")
	touch("snd/controlC0")
	wait("snd/controlC0 created")
	if err := os.Chmod(filepath.Join(dir, "snd", "controlC0"), 0o660); err != nil {
		t.Fatal(err)
	}
	wait("snd/controlC0 chmod")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch = %v", err)
	}
}

// TestRealNetlinkClose opens a real uevent socket (no privilege needed) and
// checks that Close unblocks a Read in progress, which is what lets Watch
// end without leaking its reader.
func TestRealNetlinkClose(t *testing.T) {
	checkLeaks(t)
	c, err := dialNetlink()
	if err != nil {
		t.Fatalf("dialNetlink: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, netlinkBufSize)
		for {
			if _, err := c.Read(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(10 * time.Millisecond) // let the reader block
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("Read after Close = %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}
