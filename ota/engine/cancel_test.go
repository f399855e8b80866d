package engine

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/atriumroom/atrium/ota/bootctl"
	"github.com/atriumroom/atrium/ota/install"
)

// TestCancelBeforeArming: a withdrawn offer ends the update in each state
// before the loader is armed, leaves the loader alone (or disarms it) and
// does not mark the version as bad.
func TestCancelBeforeArming(t *testing.T) {
	for _, upTo := range []State{StateChecking, StateDownloading, StateInstalling} {
		t.Run(string(upTo), func(t *testing.T) {
			ctx := t.Context()
			r := newRig(t)
			e := r.mustOpen()
			if err := e.Offer(ctx, r.target); err != nil {
				t.Fatal(err)
			}
			for e.State() != upTo {
				if _, err := e.Step(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if upTo == StateInstalling {
				// A crash after TryNext but before rebooting was
				// persisted leaves the trial armed.
				if err := r.fc.TryNext(ctx, bootctl.SlotB, 3); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.Cancel(ctx, "withdrawn by the fleet"); err != nil {
				t.Fatal(err)
			}
			rec := e.Record()
			if rec.State != StateIdle || rec.Target != nil || rec.Reason != "cancelled: withdrawn by the fleet" || len(rec.NeverRetry) != 0 {
				t.Fatalf("after cancel: %+v", rec)
			}
			if st := r.status(ctx); st.Trying != "" || st.Default != bootctl.SlotA {
				t.Fatalf("loader after cancel: %+v", st)
			}
			// Survives a restart, and the same target is welcome again.
			e = r.boot(ctx)
			if s := e.State(); s != StateIdle {
				t.Fatalf("after restart: %s", s)
			}
			if err := e.Offer(ctx, r.target); err != nil {
				t.Fatalf("offer after cancel: %v", err)
			}
		})
	}
}

func TestCancelAfterArmingRefused(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	e := r.mustOpen()
	if err := e.Cancel(ctx, "nothing"); err != nil {
		t.Fatalf("cancel in idle: %v", err)
	}
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, e, StateDownloading)
	step(t, ctx, e, StateInstalling)
	step(t, ctx, e, StateRebooting)
	if err := e.Cancel(ctx, "late"); !errors.Is(err, ErrNotCancellable) {
		t.Fatalf("cancel in rebooting: %v", err)
	}
	e = r.boot(ctx)
	if err := e.Cancel(ctx, "late"); !errors.Is(err, ErrNotCancellable) || e.State() != StateVerifying {
		t.Fatalf("cancel in verifying: %v, %s", err, e.State())
	}
}

// TestSlotVersions: a commit records the slot's version; an offer that
// overwrites a slot forgets it.
func TestSlotVersions(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	e, _ := drive(t, ctx, r, r.mustOpen(), true)
	if v := e.Record().SlotVersions[bootctl.SlotB]; v != "2.0.0" {
		t.Fatalf("slot b version %q after commit", v)
	}
	e = r.boot(ctx) // read back from the file
	if v := e.Record().SlotVersions[bootctl.SlotB]; v != "2.0.0" {
		t.Fatalf("slot b version %q after restart", v)
	}
	next := r.targetFor("2.1.0", 5)
	if err := e.Offer(ctx, next); err != nil {
		t.Fatal(err)
	}
	rec := e.Record()
	if _, ok := rec.SlotVersions[bootctl.SlotA]; ok || rec.SlotVersions[bootctl.SlotB] != "2.0.0" {
		t.Fatalf("slot versions after an offer into a: %v", rec.SlotVersions)
	}
}

// blockingInstaller writes nothing and waits for its context: a download
// on a very slow link.
type blockingInstaller struct{ started chan struct{} }

func (b blockingInstaller) Install(ctx context.Context, _ install.Device, _ install.Target, _ install.Progress, _ func(install.Progress) error) error {
	close(b.started)
	<-ctx.Done()
	return ctx.Err()
}

func (b blockingInstaller) InstallDelta(ctx context.Context, dev install.Device, _ io.ReaderAt, _ install.Delta, t install.Target, from install.Progress, persist func(install.Progress) error) error {
	return b.Install(ctx, dev, t, from, persist)
}

// TestRecordDuringStep: Record, State and TrustedNow answer while a Step
// holds the engine for a download (a check-in asks for the progress).
func TestRecordDuringStep(t *testing.T) {
	r := newRig(t)
	bi := blockingInstaller{started: make(chan struct{})}
	e, err := New(Options{
		StatePath: r.statePath(), Boot: r.fc, Installer: bi, Now: r.now,
		OpenSlot: func(context.Context, bootctl.Slot) (SlotDevice, error) { return r.devs[bootctl.SlotB], nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, e, StateDownloading)
	done := make(chan error, 1)
	go func() { _, err := e.Step(ctx); done <- err }()
	<-bi.started
	answered := make(chan State, 1)
	go func() { _ = e.Record(); _ = e.TrustedNow(); answered <- e.State() }()
	select {
	case s := <-answered:
		if s != StateDownloading {
			t.Fatalf("state during the download: %s", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Record blocked behind a Step")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled step: %v", err)
	}
	if rec := e.Record(); rec.Attempts != 0 || rec.State != StateDownloading {
		t.Fatalf("a cancelled download counted as a failure: %+v", rec)
	}
}
