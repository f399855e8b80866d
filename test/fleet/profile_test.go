package fleet_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// TestProfileRolledBack: a profile that makes the room unhealthy (here a
// calendar the room cannot fetch) is rolled back by the room itself, the
// console hears why, and the room runs on its previous settings.
func TestProfileRolledBack(t *testing.T) {
	t.Parallel()
	r := newRig(t, "sqlite")
	room := r.startRoom(filepath.Join(t.TempDir(), "state"), r.fleet.DeviceURL)
	deviceID := enroll(t, room, r.code()).DeviceID

	r.setProfile("room", r.roomID, `{"roomName": "Lab 4 (managed)"}`)
	// The room may still be settling the fleet's empty profile from its
	// enrollment: wait for the one just set (the configuration in effect),
	// not for whichever profile the room last reported applied.
	waitFor(t, 90*time.Second, "the first profile applied", func() bool {
		dd := r.device(deviceID)
		return dd.Device.ProfileStatus == fleetapi.ProfileApplied && dd.ConfigVersion != "" && dd.Device.ProfileApplied == dd.ConfigVersion
	})
	good := r.device(deviceID).Device.ProfileApplied

	r.setProfile("room", r.roomID, `{"roomName": "Lab 4 (managed)", "calendar": {"url": "https://127.0.0.1:1/lab4.ics"}}`)
	waitFor(t, 90*time.Second, "the rollback reported", func() bool {
		return r.device(deviceID).Device.ProfileStatus == fleetapi.ProfileRolledBack
	})
	d := r.device(deviceID).Device
	if !strings.Contains(d.ProfileReason, "calendar") || d.ProfileApplied != good {
		t.Errorf("rolled back with reason %q, applied %q (want %q)", d.ProfileReason, d.ProfileApplied, good)
	}
	st, err := room.Client.Settings(ctxFor(t))
	if err != nil || st.Calendar.URL != "" || st.RoomName != "Lab 4 (managed)" {
		t.Fatalf("the room's settings after the rollback: %+v %v", st, err)
	}
	dd := r.device(deviceID)
	if countEvents(dd.Events, "profile.rolled-back") != 1 {
		t.Errorf("history:\n%s", describeEvents(dd.Events))
	}
}
