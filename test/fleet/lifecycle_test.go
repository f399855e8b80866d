package fleet_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// TestFactoryFlowAndReset: a room configured with an activation code (as
// a factory image would be) enrolls by itself; a factory reset from the
// console, confirmed with the device's ID, wipes it after the fleet has the
// result, and the room starts again unenrolled with its state gone.
func TestFactoryFlowAndReset(t *testing.T) {
	t.Parallel()
	r := newRig(t, "sqlite")
	state := filepath.Join(t.TempDir(), "state")
	code := r.code()
	launch := func(withCode bool) *roomdtest.Daemon {
		d := roomdtest.Launch(t, r.roomBin, roomdtest.Options{Config: func(c *config.Config) {
			c.Daemon.StateDir = state
			c.Fleet.Server = r.fleet.DeviceURL
			c.Fleet.CAFile = r.fleet.CAFile()
			if withCode {
				c.Fleet.ActivationCode = code
			}
		}})
		if err := d.WaitReady(roomdtest.ReadyTimeout); err != nil {
			t.Fatalf("roomd: %v\n%s", err, d.Log())
		}
		return d
	}
	room := launch(true)
	waitFor(t, 30*time.Second, "enrollment with the configured code", func() bool { return fleetStatus(t, room).Enrolled })
	deviceID := fleetStatus(t, room).DeviceID
	if _, err := os.Stat(filepath.Join(state, "identity")); err != nil {
		t.Fatalf("no identity in the state directory: %v", err)
	}

	// A confirmation naming another device is refused by the console.
	status := r.con.Do("POST", "/api/v1/devices/"+deviceID+"/commands",
		map[string]any{"kind": fleetapi.CommandFactoryReset, "args": map[string]string{"confirm": "someone-else"}}, nil)
	if status != 422 {
		t.Fatalf("factory reset with a wrong confirmation: HTTP %d, want 422", status)
	}
	cmd := r.sendCommand(deviceID, fleetapi.CommandFactoryReset, map[string]string{"confirm": deviceID})
	code75, err := room.Exited(60 * time.Second)
	if err != nil || code75 != 75 {
		t.Fatalf("roomd after the factory reset: exit %d, %v\n%s", code75, err, room.Log())
	}
	if c := r.command(cmd.ID); c.Status != fleetapi.ResultSucceeded {
		t.Errorf("the reset's result: %s %q (the fleet must have it before the wipe)", c.Status, c.Result)
	}
	for _, gone := range []string{"identity/identity.key", "fleet/device.json", "fleet/cert.pem", "settings.json", "fleet.json"} {
		if _, err := os.Stat(filepath.Join(state, gone)); !os.IsNotExist(err) {
			t.Errorf("%s survived the factory reset: %v", gone, err)
		}
	}
	// systemd starts it again: unenrolled, asking for a code.
	room = launch(false)
	if st := fleetStatus(t, room); st.Enrolled || !st.CanEnroll {
		t.Fatalf("after the reset: %+v", st)
	}
}
