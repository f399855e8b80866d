package kiosk

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// fakeRoomd is a StatusSource whose answer the test sets.
type fakeRoomd struct {
	mu     sync.Mutex
	up     bool
	bootID string
}

func (f *fakeRoomd) set(up bool, bootID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up, f.bootID = up, bootID
}

func (f *fakeRoomd) Status(ctx context.Context) (apiv1.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.up {
		return apiv1.Status{}, errors.New("connection refused")
	}
	return apiv1.Status{BootID: f.bootID}, nil
}

// fakeDisplay records what the Watcher showed, in order.
type fakeDisplay struct {
	mu    sync.Mutex
	shown []string
}

func (d *fakeDisplay) ShowOffline() { d.record("offline") }
func (d *fakeDisplay) ShowUI()      { d.record("ui") }

func (d *fakeDisplay) record(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.shown = append(d.shown, s)
}

// take returns what was shown since the last take.
func (d *fakeDisplay) take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.shown
	d.shown = nil
	return s
}

func TestWatcher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		roomd := &fakeRoomd{}
		disp := &fakeDisplay{}
		w := NewWatcher(roomd, slog.New(slog.NewTextHandler(io.Discard, nil)))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- w.Run(ctx, disp) }()

		// step lets the Watcher run for d of fake time, then checks what it
		// showed meanwhile.
		step := func(what string, d time.Duration, want ...string) {
			t.Helper()
			time.Sleep(d)
			synctest.Wait()
			if got := disp.take(); !slices.Equal(got, want) {
				t.Errorf("%s: shown %q, want %q", what, got, want)
			}
		}

		step("roomd not up yet", 5*time.Second, "offline")
		roomd.set(true, "boot-1")
		step("roomd comes up", time.Second, "ui")
		step("roomd stays up", 10*time.Second)

		roomd.set(false, "")
		step("two failed polls are tolerated", 2*time.Second)
		step("the third shows the offline page", time.Second, "offline")
		step("and only once", 10*time.Second)
		roomd.set(true, "boot-2")
		step("roomd back", time.Second, "ui")

		roomd.set(false, "")
		step("a blip", time.Second)
		roomd.set(true, "boot-2")
		step("same roomd after a blip: page kept", 5*time.Second)

		roomd.set(true, "boot-3")
		step("restart between polls: reload", time.Second, "ui")

		w.PageFailed()
		step("page failed while roomd up: reload once", 5*time.Second, "ui")

		roomd.set(false, "")
		w.PageFailed()
		step("page failed while roomd down", 5*time.Second, "offline")
		roomd.set(true, "boot-3")
		step("reload once when back", 5*time.Second, "ui")

		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
		step("nothing after stop", 5*time.Second)
	})
}
