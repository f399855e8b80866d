package ota_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/provisioning/fleet/console"
	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/test/chromium"
	"github.com/atriumroom/atrium/test/fleettest"
	"github.com/atriumroom/atrium/test/roomdtest"
)

const (
	hardware = "atrium-test-board"
	// slotSize is each slot of the fake disk; the images are smaller, as a
	// root file system is smaller than its partition.
	slotSize = 64 << 20
	// healthDeadline is how long a new image has to prove itself.
	healthDeadline = 40 * time.Second
)

// world is one fleet with its release repository, and one room with a
// file-backed A/B disk, enrolled in it.
type world struct {
	t                   *testing.T
	fleetdBin, roomdBin string
	dir, repo, keys     string
	fleet               *fleettest.Fleetd
	proxy               *fleettest.Proxy
	con                 *fleettest.Console
	orgID, siteID       string
	code                string
	state, slotA, slotB string
	osRelease, root     string
	browser             *chromium.Browser
	room                *roomdtest.Daemon
	deviceID            string
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, dir: t.TempDir()}
	w.fleetdBin, w.roomdBin = binaries(t)
	w.repo, w.keys = filepath.Join(w.dir, "repo"), filepath.Join(w.dir, "keys")
	w.release("init", "-repo", w.repo, "-keys", w.keys)

	w.fleet = fleettest.Start(t, fleettest.Options{Binary: w.fleetdBin, Serve: []string{"-updates", w.repo}})
	// The room reaches fleetd through a link the test can slow down.
	w.proxy = fleettest.StartProxy(t, "127.0.0.1"+strings.TrimPrefix(w.fleet.DeviceURL, "https://localhost"))
	w.con = w.fleet.Login()
	room := w.fleet.NewRoom(w.con, "Acme", "Head office", "Lab 4")
	w.orgID, w.siteID, w.code = room.OrgID, room.SiteID, room.Code

	// The disk: slot A holds the image the room shipped with, slot B is
	// empty. os-release says which version that image is.
	w.state = filepath.Join(w.dir, "state")
	w.slotA, w.slotB = filepath.Join(w.dir, "slot-a.img"), filepath.Join(w.dir, "slot-b.img")
	writeImage(t, w.slotA, 1, 8<<20)
	if err := os.WriteFile(w.slotB, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{w.slotA, w.slotB} {
		if err := os.Truncate(p, slotSize); err != nil {
			t.Fatal(err)
		}
	}
	w.osRelease = filepath.Join(w.dir, "os-release")
	if err := os.WriteFile(w.osRelease, []byte("ID=atrium\nIMAGE_ID=atrium\nIMAGE_VERSION=1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The root of trust baked into the room's image.
	w.root = filepath.Join(w.dir, "update-root.json")
	if err := os.WriteFile(w.root, []byte(w.release("root", "-repo", w.repo)), 0o644); err != nil {
		t.Fatal(err)
	}
	w.browser = chromium.Start(t, chromium.Options{Name: "kiosk", Width: 1280, Height: 720})
	return w
}

// release runs `fleetd release ARGS…` and returns its standard output.
func (w *world) release(args ...string) string {
	w.t.Helper()
	return fleettest.Release(w.t, w.fleetdBin, args...)
}

// publish makes an image of size bytes for version and publishes it.
func (w *world) publish(version string, seed uint64, size int) (target string, sum [32]byte) {
	w.t.Helper()
	img := filepath.Join(w.dir, "atrium-"+version+".img")
	sum = writeImage(w.t, img, seed, size)
	w.release("add", "-repo", w.repo, "-keys", w.keys, "-image", img, "-version", version,
		"-security-version", "1", "-hardware", hardware, "-build-time", "2026-11-01T00:00:00Z")
	return "atrium-" + version + ".img", sum
}

// boot starts roomd, as the device's power-on would: the file boot loader
// picks the slot, and roomd reconciles its update state with it.
func (w *world) boot() {
	w.t.Helper()
	w.room = roomdtest.Launch(w.t, w.roomdBin, roomdtest.Options{Config: func(c *config.Config) {
		c.Daemon.StateDir = w.state
		c.Fleet.Server = "https://" + w.proxy.Addr
		c.Fleet.CAFile = w.fleet.CAFile()
		c.Fleet.Identity = "file"
		c.Fleet.ActivationCode = w.code
		c.Update = config.Update{
			TrustedRoot: w.root, Hardware: hardware, Boot: "file",
			BootFile: filepath.Join(w.dir, "boot.json"), // the "firmware's" memory, outside roomd's state
			SlotA:    w.slotA, SlotB: w.slotB, Tries: 2,
			HealthDeadline: config.Duration{Duration: healthDeadline}, RequireKiosk: true, OSRelease: w.osRelease,
		}
	}})
	if err := w.room.WaitReady(roomdtest.ReadyTimeout); err != nil {
		w.t.Fatalf("roomd: %v\n%s", err, w.room.Log())
	}
}

// showKiosk opens roomd's UI in the kiosk browser, as the kiosk does at
// every start.
func (w *world) showKiosk() {
	w.t.Helper()
	page := chromium.NewPage(w.t, w.browser.Tab())
	page.Do("open the kiosk", chromedp.Navigate(w.room.URL+"/"))
}

// hideKiosk leaves the kiosk browser on a blank page: the kiosk of a
// broken image that never comes up.
func (w *world) hideKiosk() {
	w.t.Helper()
	page := chromium.NewPage(w.t, w.browser.Tab())
	page.Do("blank the kiosk", chromedp.Navigate("about:blank"))
}

func (w *world) update() apiv1.UpdateStatus {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := w.room.Client.Update(ctx)
	if err != nil {
		w.t.Fatalf("GET /update: %v\n--- roomd ---\n%s", err, w.room.Log())
	}
	return st
}

// waitUpdate polls roomd's update status until cond holds.
func (w *world) waitUpdate(timeout time.Duration, what string, cond func(apiv1.UpdateStatus) bool) apiv1.UpdateStatus {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := w.update()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: not within %s; last status %+v\n--- roomd ---\n%s\n--- fleetd ---\n%s", what, timeout, st, w.room.Log(), w.fleet.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reboot waits for roomd to ask for a reboot (with the file boot loader it
// exits 75 for the harness to start it again) and boots the device again.
func (w *world) reboot(timeout time.Duration) {
	w.t.Helper()
	code, err := w.room.Exited(timeout)
	if err != nil || code != 75 {
		w.t.Fatalf("roomd did not ask for a reboot: exit %d, %v\n--- roomd ---\n%s", code, err, w.room.Log())
	}
	w.boot()
}

func (w *world) rollout(target string) console.RolloutView {
	w.t.Helper()
	return w.fleet.Rollout(w.con, w.orgID, target)
}

func (w *world) waitRollout(id, state string, timeout time.Duration) console.RolloutDetail {
	w.t.Helper()
	return w.fleet.WaitRollout(w.con, id, state, timeout)
}

func (w *world) device() console.DeviceDetail {
	w.t.Helper()
	var dd console.DeviceDetail
	w.fleet.Must(w.con.Do(http.MethodGet, "/api/v1/devices/"+url.PathEscape(w.deviceID), nil, &dd), http.StatusOK, "device")
	return dd
}

// TestRolloutInstallsAndRollsBack is the whole path, twice: a good
// release installed through a rollout despite roomd being killed twice
// during its download, blessed by the health gate; then a release whose
// kiosk never comes up, rejected by the gate, fallen back from by the boot
// loader, reported to the fleet (which halts the rollout) and never tried
// again.
func TestRolloutInstallsAndRollsBack(t *testing.T) {
	w := newWorld(t)
	good, goodSum := w.publish("2.0.0", 2, 24<<20)

	w.boot()
	w.showKiosk()
	waitFor(t, 60*time.Second, "enrollment with the configured code", func() bool {
		st, err := w.room.Client.Fleet(roomdtest.Context(t, 5*time.Second))
		w.deviceID = st.DeviceID
		return err == nil && st.Enrolled
	})
	if st := w.update(); !st.Enabled || st.Running != "1.0.0" || st.Slot != "a" || st.State != apiv1.UpdateIdle {
		t.Fatalf("before any rollout: %+v", st)
	}

	// A slow link, so that roomd can be killed halfway through.
	w.proxy.Throttle(3 << 20)
	ro := w.rollout(good)
	for i, at := range []int64{6 << 20, 14 << 20} {
		w.waitUpdate(90*time.Second, fmt.Sprintf("download past %d MiB", at>>20), func(st apiv1.UpdateStatus) bool {
			return st.State == apiv1.UpdateDownloading && st.Written >= at
		})
		w.room.Kill()
		w.boot()
		st := w.update()
		if st.Target != good || (st.State != apiv1.UpdateDownloading && st.State != apiv1.UpdateChecking) {
			t.Fatalf("after kill %d the update did not resume: %+v", i+1, st)
		}
		// What was synced before the kill is kept, not fetched again.
		if st.Written < at-(4<<20)-(1<<20) {
			t.Errorf("after kill %d the download restarted at %d bytes, want at least %d", i+1, st.Written, at-(5<<20))
		}
		w.showKiosk()
	}
	w.proxy.Throttle(0)
	w.reboot(2 * time.Minute)
	w.showKiosk()
	st := w.waitUpdate(healthDeadline+30*time.Second, "the health gate to bless 2.0.0", func(st apiv1.UpdateStatus) bool {
		return st.State == apiv1.UpdateCommitted
	})
	if st.Running != "2.0.0" || st.Slot != "b" {
		t.Fatalf("after the update: running %q in slot %q, want 2.0.0 in b", st.Running, st.Slot)
	}
	if got := fileHash(t, w.slotB, 24<<20); got != goodSum {
		t.Fatalf("slot B holds %x, want the release's %x", got, goodSum)
	}
	rd := w.waitRollout(ro.ID, rollout.StateCompleted, 60*time.Second)
	if len(rd.Devices) != 1 || rd.Devices[0].State != "committed" || rd.Devices[0].Running != "2.0.0" {
		t.Fatalf("the fleet's view of the device: %+v", rd.Devices)
	}

	// A bad release: its kiosk never comes up.
	bad, _ := w.publish("3.0.0", 3, 16<<20)
	ro = w.rollout(bad)
	w.reboot(2 * time.Minute)
	w.hideKiosk()
	if st := w.update(); st.State != apiv1.UpdateVerifying || st.Slot != "a" {
		t.Fatalf("booted into the new image: %+v", st)
	}
	// The gate gives up at its deadline and reboots; the loader, whose
	// trial entry was rejected, falls back to slot B.
	w.reboot(healthDeadline + time.Minute)
	w.showKiosk()
	st = w.waitUpdate(30*time.Second, "the rollback to be recorded", func(st apiv1.UpdateStatus) bool {
		return st.State == apiv1.UpdateRolledBack
	})
	if st.Running != "2.0.0" || st.Slot != "b" || !slices.Contains(st.NeverRetry, "3.0.0") || st.Reason == "" {
		t.Fatalf("after the rollback: %+v", st)
	}
	rd = w.waitRollout(ro.ID, rollout.StateHalted, 60*time.Second)
	if !strings.Contains(rd.Rollout.Reason, "1 of 1") {
		t.Errorf("halt reason %q does not count the failure", rd.Rollout.Reason)
	}
	if len(rd.Devices) != 1 || rd.Devices[0].State != "rolled-back" || rd.Devices[0].Reason == "" {
		t.Fatalf("the fleet's view of the rolled-back device: %+v", rd.Devices)
	}
	evs := w.device().Events
	for _, typ := range []string{"update.committed", "update.rolled-back"} {
		if !slices.ContainsFunc(evs, func(e console.EventView) bool { return e.Type == typ }) {
			t.Errorf("no %s event in the fleet's history", typ)
		}
	}

	// Resumed by someone: the room still never installs 3.0.0 again.
	w.fleet.Must(w.con.Do(http.MethodPost, "/api/v1/rollouts/"+ro.ID+"/resume", nil, nil), http.StatusOK, "resume")
	time.Sleep(25 * time.Second) // two check-ins
	if st := w.update(); st.State != apiv1.UpdateRolledBack || st.Running != "2.0.0" {
		t.Fatalf("after resuming the rollout the room changed: %+v", st)
	}
	if _, err := w.room.Exited(time.Millisecond); err == nil {
		t.Fatal("roomd exited (rebooted) after the rollout resumed")
	}
}

// writeImage writes size pseudo-random bytes (from seed) to path.
func writeImage(t *testing.T, path string, seed uint64, size int) [32]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	r := rand.New(rand.NewPCG(seed, seed))
	buf := make([]byte, 1<<20)
	for n := 0; n < size; n += len(buf) {
		for i := range buf {
			buf[i] = byte(r.Uint32())
		}
		if _, err := io.MultiWriter(f, h).Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

func fileHash(t *testing.T, path string, n int64) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, n); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
