//go:build vmguest

package hotplug

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Guest tests: they run as root in the QEMU guest described in test/vm,
// where snd-dummy is card 1 and nothing but these tests listens to uevents.

// eventTimeout bounds the wait for a notification after a module change:
// the debounce plus the kernel's work, under emulation.
const eventTimeout = 10 * time.Second

// run runs a busybox applet. Modules are removed with rmmod: busybox's
// "modprobe -r" also tries to remove the module's dependencies, which
// snd-aloop still uses, and then exits 1 although the module is gone.
func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// ensureDummy puts snd-dummy back, whatever the test did, because the
// packages tested after this one expect it.
func ensureDummy(t *testing.T) {
	t.Cleanup(func() {
		if _, err := os.Stat("/sys/module/snd_dummy"); err != nil {
			if out, err := exec.Command("modprobe", "snd-dummy").CombinedOutput(); err != nil {
				t.Errorf("restoring snd-dummy: %v: %s", err, out)
			}
		}
	})
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// watcher runs m.Watch and counts notifications.
type watcher struct {
	changed chan time.Time
	done    chan error
	cancel  context.CancelFunc
}

func startWatcher(t *testing.T, m *Monitor) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &watcher{changed: make(chan time.Time, 64), done: make(chan error, 1), cancel: cancel}
	go func() { w.done <- m.Watch(ctx, func() { w.changed <- time.Now() }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-w.done:
			if err != nil {
				t.Errorf("Watch = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Watch did not return after cancel")
		}
	})
	w.wait(t, "start")
	return w
}

// wait returns when changed is called, failing after eventTimeout.
func (w *watcher) wait(t *testing.T, what string) time.Time {
	t.Helper()
	select {
	case at := <-w.changed:
		return at
	case err := <-w.done:
		t.Fatalf("%s: Watch ended: %v", what, err)
	case <-time.After(eventTimeout):
		t.Fatalf("%s: no notification within %v", what, eventTimeout)
	}
	return time.Time{}
}

// settle lets the tail of a burst (udev-less devtmpfs removes nodes one by
// one) pass, then forgets its notifications, so the next wait sees only
// what comes after.
func (w *watcher) settle() {
	time.Sleep(500 * time.Millisecond)
	for {
		select {
		case <-w.changed:
		default:
			return
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestGuestNetlinkModuleReload unloads and reloads snd-dummy and checks that
// a netlink monitor on "sound" reports each, while one on "video4linux"
// stays quiet: the module's own and its platform device's uevents must not
// leak through the filter.
func TestGuestNetlinkModuleReload(t *testing.T) {
	ensureDummy(t)
	if !exists("/dev/snd/controlC1") {
		t.Fatal("snd-dummy's /dev/snd/controlC1 is missing at start")
	}
	m := New(Options{Subsystems: []string{"sound"}, Debounce: 100 * time.Millisecond, Logger: testLogger(t)})
	dialed := false
	m.dialNetlink = func() (conn, error) {
		c, err := dialNetlink()
		dialed = err == nil
		return c, err
	}
	sound := startWatcher(t, m)
	if !dialed {
		t.Fatal("the monitor did not use netlink")
	}
	video := startWatcher(t, New(Options{Subsystems: []string{"video4linux"}, Debounce: 100 * time.Millisecond}))

	start := time.Now()
	run(t, "rmmod", "snd_dummy")
	at := sound.wait(t, "rmmod snd_dummy")
	t.Logf("removal reported %v after rmmod started", at.Sub(start).Round(time.Millisecond))
	if exists("/dev/snd/controlC1") {
		t.Error("/dev/snd/controlC1 still exists when the removal is reported")
	}

	sound.settle()
	start = time.Now()
	run(t, "modprobe", "snd-dummy")
	at = sound.wait(t, "modprobe snd-dummy")
	t.Logf("addition reported %v after modprobe started", at.Sub(start).Round(time.Millisecond))
	if !exists("/dev/snd/controlC1") || !exists("/dev/snd/pcmC1D0p") {
		t.Error("snd-dummy's nodes are missing when the addition is reported")
	}

	select {
	case <-video.changed:
		t.Error("the video4linux monitor reported snd-dummy's reload")
	case <-time.After(time.Second):
	}
}

// TestGuestInotifyFallback runs the fallback on the guest's devtmpfs:
// node creation and removal by the kernel must reach it.
func TestGuestInotifyFallback(t *testing.T) {
	ensureDummy(t)
	m := New(Options{Subsystems: []string{"sound"}, DevPrefixes: []string{"snd/"}, Debounce: 100 * time.Millisecond, Logger: testLogger(t)})
	m.dialNetlink = func() (conn, error) { return nil, errors.New("netlink disabled by the test") }
	w := startWatcher(t, m)

	run(t, "rmmod", "snd_dummy")
	w.wait(t, "rmmod snd_dummy")
	w.settle()
	run(t, "modprobe", "snd-dummy")
	w.wait(t, "modprobe snd-dummy")
	if !exists("/dev/snd/pcmC1D0c") {
		t.Error("snd-dummy's nodes are missing when the addition is reported")
	}
}
