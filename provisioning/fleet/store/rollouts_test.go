package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// checkIn sends one check-in carrying an update status (nil for none).
func (e *env) checkIn(t *testing.T, dev string, st *fleetapi.UpdateStatus) CheckInResult {
	t.Helper()
	res, err := e.st.ProcessCheckIn(e.ctx, dev, CheckIn{Health: "ok", Versions: json.RawMessage(`{}`),
		MeetingState: "idle", Update: st}, nil)
	if err != nil {
		t.Fatalf("check-in of %s: %v", dev, err)
	}
	return res
}

// idle is the status of a device running version on hardware hw1.
func idle(version string) *fleetapi.UpdateStatus {
	return &fleetapi.UpdateStatus{Hardware: "hw1", Running: version, State: fleetapi.UpdateIdle}
}

// about is a status about a rollout.
func about(rolloutID, state, running, version string) *fleetapi.UpdateStatus {
	return &fleetapi.UpdateStatus{Hardware: "hw1", Running: running, State: state, Rollout: rolloutID, Version: version}
}

func testRolloutLifecycle(t *testing.T, e *env) {
	f := e.fleet(t)
	other, err := e.st.CreateOrganisation(e.ctx, "admin", "Other")
	if err != nil {
		t.Fatal(err)
	}
	otherSite, err := e.st.CreateSite(e.ctx, "admin", other.ID, "Oslo")
	if err != nil {
		t.Fatal(err)
	}
	good := NewRollout{OrgID: f.org.ID, Target: "atrium-2.0.img", Version: "2.0", FailureThreshold: 10, SoakMinutes: 30}

	// Bad input: a clear error naming the field, nothing stored.
	audits := e.auditCount(t)
	for _, c := range []struct {
		name   string
		change func(*NewRollout)
		want   error
		says   string
	}{
		{"no org", func(n *NewRollout) { n.OrgID = "" }, ErrInvalid, "organisation"},
		{"bad target", func(n *NewRollout) { n.Target = "../etc/passwd" }, ErrInvalid, "target"},
		{"no version", func(n *NewRollout) { n.Version = "" }, ErrInvalid, "version"},
		{"threshold", func(n *NewRollout) { n.FailureThreshold = 101 }, ErrInvalid, "failure threshold"},
		{"soak", func(n *NewRollout) { n.SoakMinutes = -1 }, ErrInvalid, "soak"},
		{"rings", func(n *NewRollout) {
			n.Rings = []rollout.Ring{{Name: "canary", Percent: 5}, {Name: "rest", Percent: 90}}
		}, ErrInvalid, `"rest"`},
		{"unknown org", func(n *NewRollout) { n.OrgID = "nope" }, ErrNotFound, "nope"},
		{"unknown site", func(n *NewRollout) { n.SiteID = "nope" }, ErrNotFound, "nope"},
		{"other org's site", func(n *NewRollout) { n.SiteID = otherSite.ID }, ErrInvalid, "not in organisation"},
	} {
		nr := good
		c.change(&nr)
		_, err := e.st.CreateRollout(e.ctx, "alice", nr)
		wantErr(t, c.name, err, c.want)
		if !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: error %q does not say %q", c.name, err, c.says)
		}
	}
	if got, _ := e.st.Rollouts(e.ctx, ""); len(got) != 0 || e.auditCount(t) != audits {
		t.Fatalf("refused creations stored %d rollouts, %d audit entries", len(got), e.auditCount(t)-audits)
	}

	r, err := e.st.CreateRollout(e.ctx, "alice", good)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != RolloutRunning || r.Ring != 0 || !r.RingOpened.Equal(e.clock.Now()) || len(r.Rings) != 3 || r.CreatedBy != "alice" {
		t.Fatalf("created %+v", r)
	}
	stored, err := e.st.Rollout(e.ctx, r.ID)
	if err != nil || fmt.Sprint(stored) != fmt.Sprint(r) {
		t.Fatalf("stored %+v, %v; created %+v", stored, err, r)
	}
	// One active rollout per organisation; another organisation is free.
	_, err = e.st.CreateRollout(e.ctx, "alice", good)
	wantErr(t, "second active rollout", err, ErrConflict)
	if !strings.Contains(err.Error(), r.ID) || !strings.Contains(err.Error(), "running") {
		t.Errorf("conflict %q does not name the active rollout and its state", err)
	}
	e.clock.Advance(time.Second)
	o, err := e.st.CreateRollout(e.ctx, "bob", NewRollout{OrgID: other.ID, SiteID: otherSite.ID, Target: "t", Version: "1",
		Rings: []rollout.Ring{{Name: "all", Percent: 100}}, Immediate: true})
	if err != nil {
		t.Fatal(err)
	}
	if all, _ := e.st.Rollouts(e.ctx, ""); len(all) != 2 || all[0].ID != o.ID {
		t.Fatalf("all rollouts newest first: %+v", all)
	}
	if mine, _ := e.st.Rollouts(e.ctx, f.org.ID); len(mine) != 1 || mine[0].ID != r.ID {
		t.Fatalf("org's rollouts: %+v", mine)
	}

	// Transitions.
	step := func(what string, fn func() (Rollout, error), want RolloutState) Rollout {
		t.Helper()
		e.clock.Advance(time.Minute)
		got, err := fn()
		if err != nil || got.State != want || !got.UpdatedAt.Equal(e.clock.Now()) {
			t.Fatalf("%s: %+v, %v; want %s", what, got, err, want)
		}
		if again, _ := e.st.Rollout(e.ctx, r.ID); again.State != want {
			t.Fatalf("%s: stored state %s", what, again.State)
		}
		return got
	}
	refused := func(what string, fn func() (Rollout, error), says string) {
		t.Helper()
		before := e.auditCount(t)
		_, err := fn()
		wantErr(t, what, err, ErrConflict)
		if !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %q does not say %q", what, err, says)
		}
		if e.auditCount(t) != before {
			t.Errorf("%s: refused change audited", what)
		}
	}
	pause := func() (Rollout, error) { return e.st.PauseRollout(e.ctx, "alice", r.ID) }
	resume := func() (Rollout, error) { return e.st.ResumeRollout(e.ctx, "alice", r.ID) }
	abort := func() (Rollout, error) { return e.st.AbortRollout(e.ctx, "alice", r.ID, "") }
	refused("resume running", resume, "running")
	step("pause", pause, RolloutPaused)
	refused("pause paused", pause, "paused")
	step("resume", resume, RolloutRunning)
	step("pause again", pause, RolloutPaused)
	ab := step("abort", abort, RolloutAborted)
	if ab.Reason != "aborted by alice" {
		t.Errorf("abort reason %q", ab.Reason)
	}
	refused("resume aborted", resume, "aborted")
	refused("abort aborted", abort, "aborted")
	refused("pause aborted", pause, "aborted")
	_, err = e.st.PauseRollout(e.ctx, "alice", "nope")
	wantErr(t, "pause unknown", err, ErrNotFound)
	_, err = e.st.AbortRollout(e.ctx, "alice", o.ID, strings.Repeat("x", MaxReason+1))
	wantErr(t, "abort with a huge reason", err, ErrInvalid)

	entries, err := e.st.Audit(e.ctx, "rollout:"+r.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range entries {
		actions = append(actions, a.Action)
	}
	if got := strings.Join(actions, " "); got != "rollout.create rollout.pause rollout.resume rollout.pause rollout.abort" {
		t.Fatalf("audit: %s", got)
	}
	// The slot is free again.
	if _, err := e.st.CreateRollout(e.ctx, "alice", good); err != nil {
		t.Fatalf("create after abort: %v", err)
	}

	// Concurrent creations in an organisation without a rollout: exactly
	// one wins (on PostgreSQL both may pass the check; the unique index
	// decides).
	third, err := e.st.CreateOrganisation(e.ctx, "admin", "Third")
	if err != nil {
		t.Fatal(err)
	}
	const racers = 8
	errs := make(chan error, racers)
	var wg sync.WaitGroup
	for range racers {
		wg.Go(func() {
			_, err := e.st.CreateRollout(e.ctx, "alice", NewRollout{OrgID: third.ID, Target: "t", Version: "2"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrConflict):
			t.Errorf("concurrent creation: %v", err)
		}
	}
	if rs, _ := e.st.Rollouts(e.ctx, third.ID); won != 1 || len(rs) != 1 {
		t.Fatalf("%d concurrent creations won, %d stored", won, len(rs))
	}
}

func testMaintenanceWindows(t *testing.T, e *env) {
	f := e.fleet(t)
	if f.siteA.MaintenanceWindow != nil {
		t.Fatalf("new site has window %+v", f.siteA.MaintenanceWindow)
	}
	audits := e.auditCount(t)
	for _, w := range []fleetapi.MaintenanceWindow{{Start: "25:00", End: "04:00"}, {Start: "22:00", End: "4:00"}, {}} {
		err := e.st.SetSiteMaintenanceWindow(e.ctx, "alice", f.siteA.ID, &w)
		wantErr(t, fmt.Sprintf("window %+v", w), err, ErrInvalid)
		wantErr(t, fmt.Sprintf("window %+v", w), err, fleetapi.ErrBadWindow)
	}
	err := e.st.SetSiteMaintenanceWindow(e.ctx, "alice", "nope", &fleetapi.MaintenanceWindow{Start: "01:00", End: "02:00"})
	wantErr(t, "unknown site", err, ErrNotFound)
	if e.auditCount(t) != audits {
		t.Fatal("refused windows audited")
	}
	w := fleetapi.MaintenanceWindow{Start: "22:00", End: "04:00"}
	if err := e.st.SetSiteMaintenanceWindow(e.ctx, "alice", f.siteA.ID, &w); err != nil {
		t.Fatal(err)
	}
	site, err := e.st.Site(e.ctx, f.siteA.ID)
	if err != nil || site.MaintenanceWindow == nil || *site.MaintenanceWindow != w {
		t.Fatalf("site %+v, %v", site, err)
	}
	sites, _ := e.st.Sites(e.ctx, f.org.ID)
	if len(sites) != 2 || sites[0].MaintenanceWindow == nil || sites[1].MaintenanceWindow != nil {
		t.Fatalf("sites %+v", sites)
	}
	// The check-in's rollout carries the device's site window, or the
	// default.
	a := e.enroll(t, f.a1, "w1")
	b := e.enroll(t, f.b1, "w2")
	if _, err := e.st.CreateRollout(e.ctx, "alice", NewRollout{OrgID: f.org.ID, Target: "t", Version: "2"}); err != nil {
		t.Fatal(err)
	}
	if res := e.checkIn(t, a.ID, idle("1")); res.Rollout == nil || res.Rollout.Window != w {
		t.Fatalf("site A check-in rollout %+v", res.Rollout)
	}
	if res := e.checkIn(t, b.ID, idle("1")); res.Rollout == nil || res.Rollout.Window != fleetapi.DefaultMaintenanceWindow() {
		t.Fatalf("site B check-in rollout %+v", res.Rollout)
	}
	if err := e.st.SetSiteMaintenanceWindow(e.ctx, "bob", f.siteA.ID, nil); err != nil {
		t.Fatal(err)
	}
	if site, _ := e.st.Site(e.ctx, f.siteA.ID); site.MaintenanceWindow != nil {
		t.Fatalf("window not cleared: %+v", site.MaintenanceWindow)
	}
	if e.auditCount(t) <= audits+1 {
		t.Fatal("window changes not audited")
	}
}

func testRolloutDeviceStatus(t *testing.T, e *env) {
	f := e.fleet(t)
	a1 := e.enroll(t, f.a1, "s1")
	a2 := e.enroll(t, f.a2, "s2")
	b1 := e.enroll(t, f.b1, "s3")
	other, _ := e.st.CreateOrganisation(e.ctx, "admin", "Other")
	os, _ := e.st.CreateSite(e.ctx, "admin", other.ID, "Oslo")
	oroom, _ := e.st.CreateRoom(e.ctx, "admin", os.ID, "O1")
	stranger := e.enroll(t, oroom, "s4")

	// No rollout: nothing to offer; the device's status is kept.
	if res := e.checkIn(t, a1.ID, idle("1.0")); res.Rollout != nil {
		t.Fatalf("rollout %+v without any", res.Rollout)
	}
	st, at, err := e.st.DeviceUpdate(e.ctx, a1.ID)
	if err != nil || st.Running != "1.0" || !at.Equal(e.clock.Now()) {
		t.Fatalf("device update %+v at %v, %v", st, at, err)
	}
	if st, at, err := e.st.DeviceUpdate(e.ctx, a2.ID); err != nil || st.State != "" || !at.IsZero() {
		t.Fatalf("never reported: %+v at %v, %v", st, at, err)
	}
	_, _, err = e.st.DeviceUpdate(e.ctx, "nope")
	wantErr(t, "unknown device", err, ErrNotFound)

	// A rollout of site A only.
	r, err := e.st.CreateRollout(e.ctx, "alice", NewRollout{OrgID: f.org.ID, SiteID: f.siteA.ID, Target: "t", Version: "2.0",
		Rings: []rollout.Ring{{Name: "all", Percent: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	res := e.checkIn(t, a1.ID, idle("1.0"))
	if res.Rollout == nil || res.Rollout.Rollout.ID != r.ID || res.Rollout.Rollout.Version != "2.0" ||
		res.Rollout.Rollout.State != rollout.StateRunning || res.Rollout.FailedBefore {
		t.Fatalf("check-in rollout %+v", res.Rollout)
	}
	if res := e.checkIn(t, b1.ID, idle("1.0")); res.Rollout != nil {
		t.Fatalf("site B device got site A's rollout %+v", res.Rollout)
	}
	e.clock.Advance(time.Minute)
	if res := e.checkIn(t, a1.ID, about(r.ID, fleetapi.UpdateDownloading, "1.0", "2.0")); res.Finished != "" {
		t.Fatalf("downloading finished the device: %q", res.Finished)
	}
	// Another organisation's device naming the rollout stores nothing.
	e.checkIn(t, stranger.ID, about(r.ID, fleetapi.UpdateFailed, "1.0", "2.0"))

	devs, err := e.st.RolloutDevices(e.ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[0].DeviceID != a1.ID || devs[1].DeviceID != a2.ID {
		t.Fatalf("rollout devices %+v", devs)
	}
	d := devs[0]
	if d.RoomName != "A1" || d.SiteName != "Amsterdam" || d.Ring != 0 || d.Status.State != fleetapi.UpdateDownloading ||
		!d.UpdatedAt.Equal(e.clock.Now()) || !d.LastSeen.Equal(e.clock.Now()) || d.Current.State != fleetapi.UpdateDownloading {
		t.Fatalf("device a1 %+v", d)
	}
	if d := devs[1]; d.Status.State != "" || !d.UpdatedAt.IsZero() || !d.LastSeen.IsZero() {
		t.Fatalf("pending device %+v", d)
	}

	// A failure is final: never overwritten, and the next check-in knows.
	if res := e.checkIn(t, a1.ID, about(r.ID, fleetapi.UpdateRolledBack, "1.0", "2.0")); res.Finished != r.ID {
		t.Fatalf("a rollback did not finish the device: %q", res.Finished)
	}
	if res := e.checkIn(t, a1.ID, about(r.ID, fleetapi.UpdateRolledBack, "1.0", "2.0")); res.Finished != "" {
		t.Fatalf("the same rollback reported again finished it again: %q", res.Finished)
	}
	res = e.checkIn(t, a1.ID, about(r.ID, fleetapi.UpdateDownloading, "1.0", "2.0"))
	if res.Rollout == nil || !res.Rollout.FailedBefore || res.Finished != "" {
		t.Fatalf("after a rollback: %+v", res)
	}
	devs, _ = e.st.RolloutDevices(e.ctx, r.ID)
	if devs[0].Status.State != fleetapi.UpdateRolledBack || devs[0].Current.State != fleetapi.UpdateDownloading {
		t.Fatalf("rollback overwritten: %+v", devs[0])
	}

	// Paused: the check-in still finds the rollout, and says it is paused.
	if _, err := e.st.PauseRollout(e.ctx, "alice", r.ID); err != nil {
		t.Fatal(err)
	}
	if res := e.checkIn(t, a2.ID, idle("1.0")); res.Rollout == nil || res.Rollout.Rollout.State != rollout.StatePaused {
		t.Fatalf("paused: %+v", res.Rollout)
	}
	// A check-in without an update status clears the device's.
	e.checkIn(t, a2.ID, nil)
	if st, at, _ := e.st.DeviceUpdate(e.ctx, a2.ID); st.State != "" || !at.IsZero() {
		t.Fatalf("status not cleared: %+v at %v", st, at)
	}
	_, err = e.st.RolloutDevices(e.ctx, "nope")
	wantErr(t, "devices of unknown rollout", err, ErrNotFound)
}

// ringedRollout creates a rollout of version 2.0 whose two rings both hold
// some of devs; rollout IDs are random, so it retries until they do.
func (e *env) ringedRollout(t *testing.T, org string, devs []Device, threshold, soak int) (Rollout, [2][]string) {
	t.Helper()
	for range 50 {
		r, err := e.st.CreateRollout(e.ctx, "alice", NewRollout{OrgID: org, Target: "t", Version: "2.0",
			Rings: []rollout.Ring{{Name: "canary", Percent: 40}, {Name: "all", Percent: 100}}, FailureThreshold: threshold, SoakMinutes: soak})
		if err != nil {
			t.Fatal(err)
		}
		var rings [2][]string
		for _, d := range devs {
			i := rollout.RingOf(r.Rings, r.ID, d.ID)
			rings[i] = append(rings[i], d.ID)
		}
		if len(rings[0]) >= 2 && len(rings[1]) >= 2 {
			return r, rings
		}
		if _, err := e.st.AbortRollout(e.ctx, "alice", r.ID, "retry"); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("no rollout split the devices")
	return Rollout{}, [2][]string{}
}

func testRolloutEvaluation(t *testing.T, e *env) {
	f := e.fleet(t)
	var devs []Device
	for i := range 8 {
		devs = append(devs, e.enroll(t, []Room{f.a1, f.a2, f.b1}[i%3], fmt.Sprint("e", i)))
	}
	rel := rollout.Release{Target: "t", Version: "2.0", Hardware: []string{"hw1"}}
	grace := time.Hour
	for _, d := range devs {
		e.checkIn(t, d.ID, idle("1.0"))
	}
	r, rings := e.ringedRollout(t, f.org.ID, devs, 50, 10)
	eval := func(want rollout.Action) Rollout {
		t.Helper()
		got, dec, err := e.st.EvaluateRollout(e.ctx, r.ID, rel, grace)
		if err != nil || dec.Action != want {
			t.Fatalf("evaluation: %v (%q), %v; want %v", dec.Action, dec.Reason, err, want)
		}
		return got
	}
	eval(rollout.Wait) // nobody updated yet
	for _, id := range rings[0] {
		e.checkIn(t, id, about(r.ID, fleetapi.UpdateCommitted, "2.0", "2.0"))
	}
	eval(rollout.Wait) // the ring has not soaked
	e.clock.Advance(10 * time.Minute)
	adv := eval(rollout.Advance)
	if adv.Ring != 1 || !adv.RingOpened.Equal(e.clock.Now()) || adv.State != RolloutRunning {
		t.Fatalf("advanced %+v", adv)
	}
	// Ring 2: one device goes silent; the rest update. The silent one
	// holds the ring back until the grace passes.
	silent := rings[1][0]
	e.clock.Advance(50 * time.Minute)
	for _, id := range rings[1][1:] {
		e.checkIn(t, id, about(r.ID, fleetapi.UpdateCommitted, "2.0", "2.0"))
	}
	eval(rollout.Wait)
	e.clock.Advance(11 * time.Minute) // the silent one was last seen 71 minutes ago
	done := eval(rollout.Complete)
	if done.State != RolloutCompleted || !strings.Contains(done.Reason, fmt.Sprintf("%d updated", len(devs)-1)) ||
		!strings.Contains(done.Reason, "1 offline") {
		t.Fatalf("completed %+v", done)
	}
	devStatus, _ := e.st.RolloutDevices(e.ctx, r.ID)
	for _, d := range devStatus {
		if d.DeviceID == silent && (d.Status.State != "" || d.Current.Running != "1.0") {
			t.Fatalf("silent device %+v", d)
		}
	}
	eval(rollout.Wait) // an ended rollout stays as it is
	_, _, err := e.st.EvaluateRollout(e.ctx, "nope", rel, grace)
	wantErr(t, "evaluate unknown", err, ErrNotFound)

	// Halt: failures in the canary ring above the threshold.
	for _, d := range devs {
		e.checkIn(t, d.ID, idle("1.0"))
	}
	r, rings = e.ringedRollout(t, f.org.ID, devs, 10, 0)
	e.checkIn(t, rings[0][0], about(r.ID, fleetapi.UpdateFailed, "1.0", "2.0"))
	halted := eval(rollout.Halt)
	want := fmt.Sprintf("ring canary: 1 of %d devices failed (threshold 10%%)", len(rings[0]))
	if halted.State != RolloutHalted || halted.Reason != want {
		t.Fatalf("halted %+v, want reason %q", halted, want)
	}
	eval(rollout.Wait) // halted: no change
	resumed, err := e.st.ResumeRollout(e.ctx, "alice", r.ID)
	if err != nil || resumed.AcceptedFailures != 1 || resumed.Reason != "" {
		t.Fatalf("resumed %+v, %v", resumed, err)
	}
	eval(rollout.Wait) // the accepted failure does not halt it again
	e.checkIn(t, rings[0][1], about(r.ID, fleetapi.UpdateRolledBack, "1.0", "2.0"))
	if again := eval(rollout.Halt); !strings.Contains(again.Reason, "2 of") {
		t.Fatalf("second halt %+v", again)
	}
	entries, _ := e.st.Audit(e.ctx, "rollout:"+r.ID, 0)
	if last := entries[len(entries)-1]; last.Action != "rollout.halt" || last.Actor != "fleetd" {
		t.Fatalf("last audit %+v", last)
	}

	// Devices that cannot take the release do not hold a ring back.
	if _, err := e.st.AbortRollout(e.ctx, "alice", r.ID, ""); err != nil {
		t.Fatal(err)
	}
	for i, d := range devs {
		st := idle("1.0")
		switch i % 3 {
		case 0:
			st.Hardware = "hw2"
		case 1:
			st.NeverRetry = []string{"2.0"}
		default:
			st = nil
		}
		e.checkIn(t, d.ID, st)
	}
	r, _ = e.ringedRollout(t, f.org.ID, devs, 0, 0)
	eval(rollout.Advance)
	if c := eval(rollout.Complete); !strings.Contains(c.Reason, fmt.Sprintf("%d skipped", len(devs))) {
		t.Fatalf("all skipped: %+v", c)
	}
	_, _, err = e.st.EvaluateRollout(e.ctx, r.ID, rollout.Release{Target: "other"}, grace)
	if err != nil {
		t.Fatalf("evaluating a completed rollout with another release: %v", err)
	}
}
