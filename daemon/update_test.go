package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/client"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

const testHardware = "atrium-test"

// fileModeUpdate is an [update] section in file mode over files in a
// temporary directory, with a trusted root that only has to exist here
// (the TUF checks are daemon/updater's tests).
func fileModeUpdate(t *testing.T) config.Update {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	u := config.Default().Update
	u.Enabled, u.Boot, u.Hardware = true, "file", testHardware
	u.TrustedRoot = write("root.json", []byte("{}"))
	u.OSRelease = write("os-release", []byte("IMAGE_VERSION=1.0.0\n"))
	u.SlotA = write("a.img", make([]byte, 4096))
	u.SlotB = write("b.img", make([]byte, 4096))
	return u
}

// TestUpdateWiring runs roomd with updates on in file mode and a fleet it
// never reaches: the status on the API and in the check-in, the
// update.changed event, an offer handed over by the agent's side, and the
// file-mode "reboot" that ends Run with ErrRestart.
func TestUpdateWiring(t *testing.T) {
	cfg := testConfig(t)
	cfg.Fleet.Identity = "file"
	cfg.Update = fileModeUpdate(t)
	deps := Deps{Logger: testLogger(t), Version: "test", PINCost: 1 << 4,
		Root: fleetRoot("quiet atrium.fleet=https://fleet.invalid:8443")}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sysEvents := make(chan apiv1.Event, 64)
	r := startWith(t, cfg, deps)
	go func() {
		for ev := range r.sys.Subscribe(ctx) {
			if ev.Type == apiv1.EventUpdateChanged {
				sysEvents <- ev
			}
		}
	}()
	c := client.NewUnix(cfg.API.Socket)
	defer c.Close()
	var st apiv1.UpdateStatus
	for {
		var err error
		if st, err = c.Update(ctx); err != nil {
			t.Fatal(err)
		}
		if st.Slot != "" || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !st.Enabled || st.Running != "1.0.0" || st.Slot != "a" || st.State != apiv1.UpdateIdle || st.Hardware != testHardware {
		t.Fatalf("GET /update: %+v", st)
	}
	if rep := (fleetDevice{r.sys}).Report(ctx); rep.Update == nil || rep.Update.Running != "1.0.0" || rep.Update.Slot != "a" {
		t.Fatalf("check-in report's update: %+v", rep.Update)
	}
	if _, err := os.Stat(filepath.Join(cfg.Daemon.StateDir, "boot.json")); err != nil {
		t.Fatalf("the file loader's state: %v", err)
	}

	// The agent's side hands an offer over; unenrolled, the room cannot
	// fetch the release yet and says so.
	fleetUpdates{r.sys}.OfferUpdate(ctx, &fleetapi.UpdateOffer{Rollout: "r1", Target: "atrium-2.0.0", Version: "2.0.0", Repository: fleetapi.PathUpdates})
	deadline := time.Now().Add(10 * time.Second)
	for st = r.sys.UpdateStatus(); !strings.Contains(st.Reason, "not enrolled"); st = r.sys.UpdateStatus() {
		if time.Now().After(deadline) {
			t.Fatalf("offer while unenrolled: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-sysEvents:
	case <-ctx.Done():
		t.Fatal("no update.changed event")
	}
	r.sys.KioskReady()

	// File mode's reboot: roomd ends with ErrRestart for its harness to
	// start it again.
	if err := r.sys.updateReboot(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if !errors.Is(err, ErrRestart) {
			t.Fatalf("Run after the file-mode reboot: %v, want ErrRestart", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end for the reboot")
	}
}

func TestUpdatesOffInRoomd(t *testing.T) {
	r := start(t, testConfig(t), 0)
	st := r.sys.UpdateStatus()
	r.stop(t)
	if st.Enabled || !strings.Contains(st.Disabled, "no [update] section") || st.State != apiv1.UpdateIdle || st.Running == "" {
		t.Fatalf("no [update]: %+v", st)
	}
	if rep := (fleetDevice{r.sys}).Report(context.Background()); rep.Update != nil {
		t.Fatalf("check-in reports updates while they are off: %+v", rep.Update)
	}

	cfg := testConfig(t)
	cfg.Update = fileModeUpdate(t)
	r = start(t, cfg, 0)
	st = r.sys.UpdateStatus()
	r.stop(t)
	if st.Enabled || !strings.Contains(st.Disabled, "no fleet server") {
		t.Fatalf("[update] without a fleet: %+v", st)
	}
}

// testLogger sends roomd's log to the test's.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// With a real boot loader the update reboots through login1 (the
// SystemOS seam); the updater's policy keeps it out of meetings.
func TestUpdateRebootThroughLogin1(t *testing.T) {
	fos := &fakeOS{}
	cfg := testConfig(t)
	cfg.Fleet.Identity = "file"
	cfg.Update = fileModeUpdate(t)
	cfg.Update.Boot = "grub"
	cfg.Update.GRUBEnv = filepath.Join(t.TempDir(), "grubenv")
	r := startWith(t, cfg, Deps{Logger: testLogger(t), Version: "test", PINCost: 1 << 4, OS: fos,
		Root: fleetRoot("quiet atrium.fleet=https://fleet.invalid:8443")})
	defer r.stop(t)
	if st := r.sys.UpdateStatus(); !st.Enabled {
		t.Fatalf("grub mode: %+v", st)
	}
	if err := r.sys.updateReboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fos.calledWith("Reboot") != 1 {
		t.Fatalf("login1 calls: %v", fos.calls)
	}
}
