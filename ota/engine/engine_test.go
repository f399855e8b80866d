package engine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/atriumroom/atrium/ota/bootctl"
)

func step(t *testing.T, ctx context.Context, e *Engine, want State) {
	t.Helper()
	got, err := e.Step(ctx)
	if err != nil || got != want {
		t.Fatalf("Step = %s, %v; want %s", got, err, want)
	}
}

func TestHappyPath(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	e := r.mustOpen()
	if s := e.State(); s != StateIdle {
		t.Fatalf("fresh state %s", s)
	}
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatal(err)
	}
	if s := e.State(); s != StateChecking {
		t.Fatalf("after offer %s", s)
	}
	step(t, ctx, e, StateDownloading)
	step(t, ctx, e, StateInstalling)
	if !bytes.Equal(r.devs[bootctl.SlotB].bytes()[:len(r.image)], r.image) {
		t.Fatal("slot b does not hold the image")
	}
	if n := r.devs[bootctl.SlotA].opened; n != 0 {
		t.Fatalf("running slot a opened %d times", n)
	}
	step(t, ctx, e, StateRebooting)
	step(t, ctx, e, StateRebooting) // waits for the caller's reboot
	if st := r.status(ctx); st.Trying != bootctl.SlotB || st.TriesLeft != DefaultTries {
		t.Fatalf("loader not armed: %+v", st)
	}
	e = r.boot(ctx)
	if s := e.State(); s != StateVerifying {
		t.Fatalf("after reboot %s", s)
	}
	step(t, ctx, e, StateVerifying)
	if err := e.Healthy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Healthy(ctx); err != nil {
		t.Fatalf("second Healthy: %v", err)
	}
	rec := r.mustOpen().Record()
	if rec.State != StateCommitted || rec.SecurityFloor != 5 || rec.Written != r.target.Length || rec.Slot != bootctl.SlotB {
		t.Fatalf("record after commit: %+v", rec)
	}
	if st := r.status(ctx); st.Default != bootctl.SlotB || st.Trying != "" {
		t.Fatalf("loader after commit: %+v", st)
	}
	// Rebooting now stays on the new slot.
	e = r.boot(ctx)
	if s := e.State(); s != StateCommitted || r.status(ctx).Booted != bootctl.SlotB {
		t.Fatalf("after second reboot: %s, %+v", s, r.status(ctx))
	}
}

// drive runs the device until the update settles, treating errCrash as a
// power cut: the loader reboots and a new engine starts from the file.
func drive(t *testing.T, ctx context.Context, r *rig, e *Engine, healthy bool) (*Engine, int) {
	t.Helper()
	cuts := 0
	crashed := func(err error) bool {
		if err == nil {
			return false
		}
		if !errors.Is(err, errCrash) {
			t.Fatalf("unexpected error: %v", err)
		}
		cuts++
		return true
	}
	restart := func(withBoot bool) {
		for {
			if !withBoot {
				e = r.mustOpen()
				if _, err := e.AfterBoot(ctx); !crashed(err) {
					return
				}
				continue
			}
			booted, err := r.fc.Boot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if booted == bootctl.SlotB {
				r.newBoots++
			}
			e = r.mustOpen()
			if _, err := e.AfterBoot(ctx); !crashed(err) {
				return
			}
		}
	}
	reboot := func() { restart(true) }
	// cut is what a crash does: a power cut reboots, a process crash
	// only restarts the engine.
	cut := func() { restart(!r.restartOnly) }
	for range 200 {
		if e.State() == StateIdle {
			if crashed(e.Offer(ctx, r.target)) {
				cut()
				continue
			}
		}
		st, err := e.Step(ctx)
		if crashed(err) {
			cut()
			continue
		}
		switch st {
		case StateRebooting:
			reboot()
		case StateVerifying:
			var err error
			if healthy {
				err = e.Healthy(ctx)
			} else {
				err = e.Unhealthy(ctx, "camera missing")
			}
			if crashed(err) {
				cut()
			}
		case StateCommitted:
			return e, cuts
		case StateRolledBack:
			if r.status(ctx).Booted == e.Record().Slot {
				reboot() // fall back to the old slot
				continue
			}
			return e, cuts
		case StateFailed:
			t.Fatalf("update failed: %s", e.Record().Reason)
		}
	}
	t.Fatal("update did not settle")
	return nil, 0
}

func TestCrashPointSweep(t *testing.T) {
	for _, v := range []struct{ healthy, restartOnly bool }{{true, false}, {false, false}, {true, true}, {false, true}} {
		healthy := v.healthy
		// A clean run counts the persisted transitions.
		clean := &crashWriter{}
		r := newRig(t)
		r.cw = clean
		e := r.mustOpen()
		drive(t, t.Context(), r, e, healthy)
		total := clean.n
		if total < 9 {
			t.Fatalf("only %d writes in a clean run", total)
		}
		for k := 1; k <= total; k++ {
			for _, after := range []bool{false, true} {
				ctx := t.Context()
				r := newRig(t)
				r.restartOnly = v.restartOnly
				r.cw = &crashWriter{k: k, after: after}
				e := r.mustOpen()
				e, cuts := drive(t, ctx, r, e, healthy)
				if cuts != 1 {
					t.Fatalf("%+v k=%d after=%v: %d crashes, want 1", v, k, after, cuts)
				}
				r.cw = nil
				rec := r.mustOpen().Record()
				st := r.status(ctx)
				if healthy {
					if rec.State != StateCommitted || st.Booted != bootctl.SlotB || st.Default != bootctl.SlotB || rec.SecurityFloor != 5 {
						t.Fatalf("%+v k=%d after=%v: %s, loader %+v, floor %d", v, k, after, rec.State, st, rec.SecurityFloor)
					}
					if !bytes.Equal(r.devs[bootctl.SlotB].bytes()[:len(r.image)], r.image) {
						t.Fatalf("k=%d after=%v: slot b content wrong", k, after)
					}
				} else {
					// The verdict, not the loader's try counter, ends the
					// trial: at most one boot of the bad slot after the
					// planned one, and only when the power cut fell
					// between the verdict and the rejection.
					if r.newBoots > cuts+1 {
						t.Fatalf("%+v k=%d after=%v: bad slot booted %d times", v, k, after, r.newBoots)
					}
					if rec.State != StateRolledBack || st.Booted != bootctl.SlotA || st.Default != bootctl.SlotA || !slices.Contains(rec.NeverRetry, "2.0.0") {
						t.Fatalf("%+v k=%d after=%v: %s, loader %+v, never-retry %v", v, k, after, rec.State, st, rec.NeverRetry)
					}
				}
				_ = e
			}
		}
		t.Logf("%+v: %d crash points × 2 swept", v, total)
	}
}

func TestUnhealthyNeverRetried(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	e, _ := drive(t, ctx, r, r.mustOpen(), false)
	rec := e.Record()
	if rec.State != StateRolledBack || rec.Reason != "health gate: camera missing" || rec.SecurityFloor != 0 {
		t.Fatalf("record: %+v", rec)
	}
	if err := e.Offer(ctx, r.target); !errors.Is(err, ErrNeverRetry) {
		t.Fatalf("re-offer: %v, want ErrNeverRetry", err)
	}
	e = r.boot(ctx) // after a restart too
	if err := e.Offer(ctx, r.target); !errors.Is(err, ErrNeverRetry) {
		t.Fatalf("re-offer after restart: %v, want ErrNeverRetry", err)
	}
	if s := e.State(); s != StateRolledBack {
		t.Fatalf("refused offer changed state to %s", s)
	}
	// A different version is welcome.
	if err := e.Offer(ctx, r.targetFor("2.0.1", 5)); err != nil {
		t.Fatal(err)
	}
}

func TestLoaderFallsBack(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	e := r.mustOpen()
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, e, StateDownloading)
	step(t, ctx, e, StateInstalling)
	step(t, ctx, e, StateRebooting)
	// The new image never passes its health gate (it hangs before the
	// verdict): each boot consumes a try until the loader gives up.
	boots := 0
	for {
		e = r.boot(ctx)
		if e.State() != StateVerifying {
			break
		}
		boots++
		if boots > DefaultTries {
			t.Fatal("loader never fell back")
		}
	}
	if boots != DefaultTries {
		t.Fatalf("new slot booted %d times, want %d", boots, DefaultTries)
	}
	rec := e.Record()
	if rec.State != StateRolledBack || !slices.Contains(rec.NeverRetry, "2.0.0") || r.status(ctx).Booted != bootctl.SlotA {
		t.Fatalf("after fall-back: %+v, loader %+v", rec, r.status(ctx))
	}
	if err := r.mustOpen().Offer(ctx, r.target); !errors.Is(err, ErrNeverRetry) {
		t.Fatalf("re-offer: %v", err)
	}
}

func TestProcessRestartWithoutReboot(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	e := r.mustOpen()
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, e, StateDownloading)
	step(t, ctx, e, StateInstalling)
	step(t, ctx, e, StateRebooting)
	// roomd restarts, the machine does not: the trial has not begun and
	// must not be mistaken for a fall-back.
	e = r.mustOpen()
	if s, err := e.AfterBoot(ctx); err != nil || s != StateRebooting {
		t.Fatalf("AfterBoot = %s, %v; want rebooting", s, err)
	}
}

func TestSecurityFloorRefusesDowngrade(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	e, _ := drive(t, ctx, r, r.mustOpen(), true)
	before, _ := os.ReadFile(r.statePath())
	err := e.Offer(ctx, r.targetFor("1.9.0", 4))
	if !errors.Is(err, ErrBelowFloor) {
		t.Fatalf("downgrade offer: %v, want ErrBelowFloor", err)
	}
	after, _ := os.ReadFile(r.statePath())
	if !bytes.Equal(before, after) {
		t.Fatal("refused offer changed the state file")
	}
	// Same security version is allowed (a re-spin with no new fixes).
	if err := e.Offer(ctx, r.targetFor("2.0.1", 5)); err != nil {
		t.Fatal(err)
	}
}

func TestOfferBusyAndInvalid(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	e := r.mustOpen()
	if err := e.Offer(ctx, Target{Name: "x", Version: "1"}); !errors.Is(err, ErrInvalidTarget) {
		t.Fatalf("invalid offer: %v", err)
	}
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatal(err)
	}
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatalf("same offer again: %v", err)
	}
	local := r.target
	local.BuildTime = local.BuildTime.In(time.FixedZone("CET", 3600))
	if err := r.mustOpen().Offer(ctx, local); err != nil {
		t.Fatalf("same offer after a restart, build time in another zone: %v", err)
	}
	if err := e.Offer(ctx, r.targetFor("3.0.0", 6)); !errors.Is(err, ErrBusy) {
		t.Fatalf("second offer: %v, want ErrBusy", err)
	}
	if err := e.Healthy(ctx); !errors.Is(err, ErrWrongState) {
		t.Fatalf("Healthy while checking: %v", err)
	}
}

func TestCorruptStateFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		data  string
		keep  []string
		floor int
	}{
		{"unknown state", `{"state":"bogus","never_retry":["1.0.0","1.1.0"],"security_floor":4}`, []string{"1.0.0", "1.1.0"}, 4},
		{"truncated", `{"state":"downloading","never_retry":["1.0`, nil, 0},
		{"bad field", `{"state":"idle","never_retry":["1.0.0"],"security_floor":"high"}`, []string{"1.0.0"}, 0},
		{"garbage", "\x00\x01\x02", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			if err := os.WriteFile(r.statePath(), []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			e, err := r.open(nil)
			if !errors.Is(err, ErrCorruptState) || e == nil {
				t.Fatalf("New = %v, %v; want an engine and ErrCorruptState", e, err)
			}
			rec := e.Record()
			if rec.State != StateIdle || !slices.Equal(rec.NeverRetry, tc.keep) || rec.SecurityFloor != tc.floor {
				t.Fatalf("salvaged %+v", rec)
			}
			kept, err := os.ReadFile(r.statePath() + ".corrupt")
			if err != nil || string(kept) != tc.data {
				t.Fatalf("corrupt copy: %q, %v", kept, err)
			}
			// The reset is durable: the next start is clean.
			e2, err := r.open(nil)
			if err != nil || e2.State() != StateIdle {
				t.Fatalf("reopen: %v", err)
			}
			for _, v := range tc.keep {
				tg := r.targetFor(v, 9)
				if err := e2.Offer(t.Context(), tg); !errors.Is(err, ErrNeverRetry) {
					t.Fatalf("offer %s after reset: %v", v, err)
				}
			}
		})
	}
}

func TestClockIn1970(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	e := r.mustOpen()
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatal(err)
	}
	trusted := e.Record().LastTrusted
	// The RTC loses power: the device wakes in 1970.
	r.now = func() time.Time { return time.Unix(0, 0).UTC() }
	e, _ = drive(t, ctx, r, r.mustOpen(), true)
	rec := e.Record()
	if rec.State != StateCommitted {
		t.Fatalf("state %s", rec.State)
	}
	if rec.Updated.Before(trusted) || rec.LastTrusted.Before(buildTime) || rec.LastTrusted.Before(trusted) {
		t.Fatalf("time went back: updated %v, last trusted %v, before %v", rec.Updated, rec.LastTrusted, trusted)
	}
	if now := e.TrustedNow(); now.Before(trusted) || now.Year() == 1970 {
		t.Fatalf("TrustedNow = %v", now)
	}
	// A fresh device (no history) with a 1970 clock works and its times
	// are not negative relative to each other.
	r2 := newRig(t)
	r2.now = r.now
	e2, _ := drive(t, ctx, r2, r2.mustOpen(), true)
	if rec := e2.Record(); rec.LastTrusted.Before(buildTime) {
		t.Fatalf("commit did not raise last trusted to the build time: %v", rec.LastTrusted)
	}
}

func TestResumeFromProgress(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	// Writes: 1 offer, 2 downloading, 3 the first install progress; the
	// power fails right after it is durable.
	r.cw = &crashWriter{k: 3, after: true}
	e := r.mustOpen()
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, e, StateDownloading)
	if _, err := e.Step(ctx); !errors.Is(err, errCrash) {
		t.Fatalf("Step = %v, want the power cut", err)
	}
	e = r.boot(ctx)
	rec := e.Record()
	if rec.State != StateDownloading || rec.Written <= 0 || rec.Written >= r.target.Length {
		t.Fatalf("after the cut: %s, written %d", rec.State, rec.Written)
	}
	step(t, ctx, e, StateInstalling)
	ranges := r.reqs.get()
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] == "" || ranges[1] == "bytes=0-" {
		t.Fatalf("requests' ranges %q: want a full fetch then a resume", ranges)
	}
	if !bytes.Equal(r.devs[bootctl.SlotB].bytes()[:len(r.image)], r.image) {
		t.Fatal("slot b content wrong after resume")
	}
	if a := e.Record().Attempts; a != 0 {
		t.Fatalf("attempts %d after a power cut; a cut is no fault of the image", a)
	}
}

func TestInstallFailuresEndInFailed(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	e := r.mustOpen()
	bad := r.target
	bad.SHA256[0] ^= 1 // the server's bytes do not match what TUF vouched for
	if err := e.Offer(ctx, bad); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, e, StateDownloading)
	for i := 1; i <= DefaultMaxAttempts; i++ {
		s, err := e.Step(ctx)
		if err == nil {
			t.Fatalf("attempt %d succeeded with a wrong hash", i)
		}
		want := StateDownloading
		if i == DefaultMaxAttempts {
			want = StateFailed
		}
		if s != want || e.Record().Attempts != i {
			t.Fatalf("attempt %d: %s, attempts %d, want %s", i, s, e.Record().Attempts, want)
		}
	}
	rec := r.mustOpen().Record()
	if rec.State != StateFailed || rec.Reason == "" {
		t.Fatalf("record %+v", rec)
	}
	if st := r.status(ctx); st.Trying != "" {
		t.Fatalf("failed install armed the loader: %+v", st)
	}
	// A download failure is not a boot failure: the version may be
	// offered again (the mirror may be fixed).
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatal(err)
	}
}

func TestOfferSafeSlot(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	// A trial of slot b is armed but the state file was lost: the
	// engine must not write b while the loader would boot it.
	if err := r.fc.TryNext(ctx, bootctl.SlotB, 3); err != nil {
		t.Fatal(err)
	}
	e := r.mustOpen()
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, e, StateDownloading)
	if st := r.status(ctx); st.Trying != "" {
		t.Fatalf("trial still armed while slot b is written: %+v", st)
	}

	// Running a rejected image before its reboot: the other slot is the
	// only good one and no offer may overwrite it.
	r2 := newRig(t)
	if err := r2.fc.TryNext(ctx, bootctl.SlotB, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.fc.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r2.mustOpen().Offer(ctx, r2.target); !errors.Is(err, ErrBusy) {
		t.Fatalf("offer while running a trial: %v, want ErrBusy", err)
	}
	if n := r2.devs[bootctl.SlotA].opened; n != 0 {
		t.Fatal("good slot opened")
	}
}

// stagerFunc adapts a function to BootFileStager.
type stagerFunc func(ctx context.Context, s bootctl.Slot) error

func (f stagerFunc) Stage(ctx context.Context, s bootctl.Slot) error { return f(ctx, s) }

// TestBootFilesStagedBeforeArming: the new slot's kernel is staged once
// the slot holds the whole verified image and before the loader is armed;
// a staging failure counts as a failed attempt and arms nothing, and the
// next Step stages again.
func TestBootFilesStagedBeforeArming(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	var staged []bootctl.Slot
	fail := errors.New("ESP full")
	r.bootFiles = stagerFunc(func(ctx context.Context, s bootctl.Slot) error {
		if !bytes.Equal(r.devs[s].bytes()[:len(r.image)], r.image) {
			t.Errorf("slot %s staged before it held the image", s)
		}
		if st := r.status(ctx); st.Trying != "" {
			t.Errorf("staged with the loader already armed: %+v", st)
		}
		staged = append(staged, s)
		return fail
	})
	e := r.mustOpen()
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, e, StateDownloading)
	step(t, ctx, e, StateInstalling)
	s, err := e.Step(ctx)
	if !errors.Is(err, fail) || s != StateInstalling || e.Record().Attempts != 1 {
		t.Fatalf("staging failed: Step = %s, %v, attempts %d; want installing, ESP full, 1", s, err, e.Record().Attempts)
	}
	if st := r.status(ctx); st.Trying != "" {
		t.Fatalf("a failed staging armed the loader: %+v", st)
	}
	fail = nil
	step(t, ctx, e, StateRebooting)
	if !slices.Equal(staged, []bootctl.Slot{bootctl.SlotB, bootctl.SlotB}) {
		t.Fatalf("staged %v, want slot b twice", staged)
	}
	if st := r.status(ctx); st.Trying != bootctl.SlotB {
		t.Fatalf("after staging the loader is %+v, want b on trial", st)
	}
}
