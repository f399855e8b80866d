package agent

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

func profileOutcome(h *harness) fleetapi.ProfileOutcome {
	return h.agent.Status().ProfileLast
}

func readStored(t *testing.T, path string) storedProfile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p storedProfile
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProfileAppliedThenRolledBack(t *testing.T) {
	h, a := enrolled(t)
	v1 := h.srv.setProfile(t, `{"roomName":"Atlas","timezone":"Europe/Berlin"}`)
	until(t, h.clk, "v1 applied", func() bool { return a.Status().ProfileApplied == v1 })
	if o := profileOutcome(h); o.Status != fleetapi.ProfileApplied || o.Version != v1 {
		t.Errorf("outcome %+v", o)
	}
	got := h.dev.appliedProfiles()
	if len(got) != 1 || *got[0].RoomName != "Atlas" || *got[0].Timezone != "Europe/Berlin" {
		t.Fatalf("roomd was given %+v", got)
	}
	// The server hears it in the next check-in's profile state and as an
	// event.
	until(t, h.clk, "v1 reported", func() bool { return h.srv.lastCheckIn().Profile.Applied == v1 })
	until(t, h.clk, "the applied event", func() bool { return len(h.srv.events("profile.applied")) == 1 })
	if fi, err := os.Stat(filepath.Join(h.dir, profileFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("profile.json: %v", err)
	}

	// v2 makes roomd unhealthy: rolled back to v1, reported, not retried.
	h.dev.mu.Lock()
	h.dev.unhealthy = errors.New("camera pipeline stalled")
	h.dev.mu.Unlock()
	v2 := h.srv.setProfile(t, `{"roomName":"Borealis"}`)
	until(t, h.clk, "v2 rolled back", func() bool { return profileOutcome(h).Status == fleetapi.ProfileRolledBack })
	h.dev.mu.Lock()
	h.dev.unhealthy = nil
	h.dev.mu.Unlock()
	o := profileOutcome(h)
	if o.Version != v2 || !strings.Contains(o.Reason, "camera pipeline stalled") {
		t.Errorf("rollback outcome %+v", o)
	}
	got = h.dev.appliedProfiles()
	if len(got) != 3 || *got[1].RoomName != "Borealis" || *got[2].RoomName != "Atlas" || *got[2].Timezone != "Europe/Berlin" {
		t.Fatalf("roomd was given %d profiles: want v1, v2, v1 again", len(got))
	}
	if a.Status().ProfileApplied != v1 {
		t.Errorf("applied %q after rollback, want v1", a.Status().ProfileApplied)
	}
	if p := readStored(t, filepath.Join(h.dir, profileFile)); p.Version != v1 {
		t.Errorf("profile.json holds %q after rollback", p.Version)
	}
	n := h.srv.checkInCount()
	h.checkIns(n + 3)
	if len(h.dev.appliedProfiles()) != 3 {
		t.Error("the rolled-back version was applied again")
	}
	ci := h.srv.lastCheckIn()
	if ci.Profile.Applied != v1 || ci.Profile.Last.Status != fleetapi.ProfileRolledBack || ci.Profile.Last.Version != v2 {
		t.Errorf("reported profile state %+v", ci.Profile)
	}
	until(t, h.clk, "the rollback event", func() bool { return len(h.srv.events("profile.rolled-back")) == 1 })

	// Restarts remember the refused version.
	h.stop()
	h.start()
	n = h.srv.checkInCount()
	h.checkIns(n + 2)
	if len(h.dev.appliedProfiles()) != 3 {
		t.Error("the rolled-back version was applied after a restart")
	}
}

func TestProfileRejected(t *testing.T) {
	h, a := enrolled(t)
	v := h.srv.setProfile(t, `{"adminPin":"12","volume":3}`)
	until(t, h.clk, "rejection", func() bool { return profileOutcome(h).Status == fleetapi.ProfileRejected })
	o := profileOutcome(h)
	if o.Version != v || !strings.Contains(o.Reason, "volume: unknown setting") {
		t.Errorf("outcome %+v", o)
	}
	if len(h.dev.appliedProfiles()) != 0 || a.Status().ProfileApplied != "" {
		t.Error("an invalid profile reached roomd")
	}
	if fileExists(filepath.Join(h.dir, profileFile)) {
		t.Error("an invalid profile was stored")
	}
	until(t, h.clk, "the rejection event", func() bool { return len(h.srv.events("profile.rejected")) == 1 })

	// roomd itself refuses one: nothing changed, reported.
	h.dev.mu.Lock()
	h.dev.applyErr = errors.New("hostname1: read-only file system")
	h.dev.mu.Unlock()
	v2 := h.srv.setProfile(t, `{"roomName":"Cygnus"}`)
	until(t, h.clk, "refusal", func() bool { return profileOutcome(h).Version == v2 })
	if o := profileOutcome(h); o.Status != fleetapi.ProfileRejected || !strings.Contains(o.Reason, "read-only") {
		t.Errorf("outcome %+v", o)
	}
	if fileExists(filepath.Join(h.dir, profileFile)) {
		if p := readStored(t, filepath.Join(h.dir, profileFile)); p.Version == v2 {
			t.Error("profile.json names the refused version")
		}
	}
}

// roomd dies while a profile settles (say the profile crashed it): the
// next start rolls back.
func TestRestartDuringSettleRollsBack(t *testing.T) {
	h, a := enrolled(t)
	v1 := h.srv.setProfile(t, `{"ntp":true}`)
	until(t, h.clk, "v1", func() bool { return a.Status().ProfileApplied == v1 })
	h.dev.mu.Lock()
	h.dev.healthHook = func() { runtime.Goexit() }
	h.dev.mu.Unlock()
	v2 := h.srv.setProfile(t, `{"ntp":false}`)
	until(t, h.clk, "v2 applied to roomd", func() bool { return len(h.dev.appliedProfiles()) == 2 })
	h.crashed()
	h.dev.mu.Lock()
	h.dev.healthHook = nil
	h.dev.mu.Unlock()
	b := h.start()
	until(t, h.clk, "rollback", func() bool { return b.Status().ProfileLast.Status == fleetapi.ProfileRolledBack })
	if o := b.Status().ProfileLast; o.Version != v2 || !strings.Contains(o.Reason, "restarted") {
		t.Errorf("outcome %+v", o)
	}
	got := h.dev.appliedProfiles()
	if len(got) != 3 || *got[2].NTP != true {
		t.Errorf("roomd was not given v1 back: %d profiles", len(got))
	}
	if b.Status().ProfileApplied != v1 {
		t.Errorf("applied %q", b.Status().ProfileApplied)
	}
}

func TestSetSettingMergesIntoProfile(t *testing.T) {
	h, a := enrolled(t)
	v1 := h.srv.setProfile(t, `{"roomName":"Atlas","ntp":true}`)
	until(t, h.clk, "v1", func() bool { return a.Status().ProfileApplied == v1 })
	h.srv.addCommand("s1", fleetapi.CommandSetSetting, `{"key":"timezone","value":"Europe/Paris"}`)
	if r := waitResult(t, h, "s1"); r.Status != fleetapi.ResultSucceeded {
		t.Fatalf("set-setting: %+v", r)
	}
	got := h.dev.appliedProfiles()
	last := got[len(got)-1]
	if last.RoomName == nil || *last.RoomName != "Atlas" || last.Timezone == nil || *last.Timezone != "Europe/Paris" || last.NTP == nil {
		t.Errorf("merged profile %+v", last)
	}
	if a.Status().ProfileApplied != v1 {
		t.Error("set-setting changed the applied version")
	}
	// The next profile replaces the layer, the setting with it.
	v2 := h.srv.setProfile(t, `{"roomName":"Atlas"}`)
	until(t, h.clk, "v2", func() bool { return a.Status().ProfileApplied == v2 })
	if last := h.dev.appliedProfiles()[len(h.dev.appliedProfiles())-1]; last.Timezone != nil {
		t.Error("the set setting outlived the next profile")
	}
	// roomd refuses: failed, the stored profile unchanged.
	h.dev.mu.Lock()
	h.dev.applyErr = errors.New("no such camera")
	h.dev.mu.Unlock()
	h.srv.addCommand("s2", fleetapi.CommandSetSetting, `{"key":"devices","value":{"camera":"usb:1"}}`)
	if r := waitResult(t, h, "s2"); r.Status != fleetapi.ResultFailed || !strings.Contains(r.Detail, "no such camera") {
		t.Errorf("refused set-setting: %+v", r)
	}
	if p := readStored(t, filepath.Join(h.dir, profileFile)); strings.Contains(string(p.Body), "usb:1") {
		t.Error("a refused setting was stored")
	}
}

// A profile's settle period does not hold up check-ins: events, commands
// and the server's view go on while roomd's health is watched.
func TestSettlingDoesNotStopCheckIns(t *testing.T) {
	h := newHarness(t)
	h.settle = 10 * time.Minute
	a := h.start()
	h.enroll()
	h.checkIns(1)
	v := h.srv.setProfile(t, `{"roomName":"Atlas"}`)
	until(t, h.clk, "the profile given to roomd", func() bool { return len(h.dev.appliedProfiles()) == 1 })
	n := h.srv.checkInCount()
	if err := a.Record(fleetapi.Event{Type: "meeting.failed", Message: "while settling"}); err != nil {
		t.Fatal(err)
	}
	h.checkIns(n + 3)
	if len(h.srv.events("meeting.failed")) != 1 {
		t.Error("an event recorded while a profile settled was not delivered")
	}
	if a.Status().ProfileApplied == v {
		t.Fatal("applied before its settle period ended")
	}
	until(t, h.clk, "the verdict after 10 minutes", func() bool { return a.Status().ProfileApplied == v })
}
