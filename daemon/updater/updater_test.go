package updater

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/internal/testclock"
	"github.com/atriumroom/atrium/ota/bootctl"
	"github.com/atriumroom/atrium/ota/delta"
	"github.com/atriumroom/atrium/ota/release"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// The updater is tested with the real parts below it: a TUF repository
// published with ota/release and served over TLS by httptest (the real TUF
// client refreshes from it), the real engine and installer writing into
// slot files, and bootctl.FileControl as the firmware. roomd around it is
// played by hooks: a meeting switch, readiness, and a "reboot" that ends
// the updater as roomd's exit would, after which a new updater starts over
// the same state directory.

const testHardware = "atrium-test"

// Fleet fake: the repository server's TLS client, a settable last
// check-in and the outbox's events.
type fakeUpdateFleet struct {
	srv *httptest.Server

	mu      sync.Mutex
	checkIn time.Time
	events  []fleetapi.Event
	soon    int // CheckInSoon calls
}

func (f *fakeUpdateFleet) CheckInSoon() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.soon++
}

func (f *fakeUpdateFleet) UpdateHTTPClient() (*http.Client, string, error) {
	return f.srv.Client(), f.srv.URL, nil
}

func (f *fakeUpdateFleet) LastCheckIn() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checkIn
}

func (f *fakeUpdateFleet) setCheckIn(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkIn = t
}

func (f *fakeUpdateFleet) Record(ev fleetapi.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, ev)
	return nil
}

// eventTypes lists the queued events' types in order.
func (f *fakeUpdateFleet) eventTypes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ev := range f.events {
		out = append(out, ev.Type)
	}
	return out
}

func (f *fakeUpdateFleet) event(typ string) (fleetapi.Event, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range f.events {
		if ev.Type == typ {
			return ev, true
		}
	}
	return fleetapi.Event{}, false
}

// updateRig is one device with its fleet and release repository.
type updateRig struct {
	t       *testing.T
	dir     string // roomd's state directory
	cfg     config.Update
	clock   *testclock.Clock
	fleet   *fakeUpdateFleet
	image   []byte
	offer   fleetapi.UpdateOffer
	meeting sync.Mutex
	inMeet  bool
	reboots int
	// hold, while set, makes image downloads send half the image and then
	// wait for the request to end (a slow link); holding counts them.
	hold    chan struct{}
	holding int
	// fetched lists the paths of the targets downloaded.
	fetched []string
	repo    *release.Repo
	// the running updater
	u      *Updater
	cancel context.CancelFunc
	done   chan error
}

// t0 of the rig: 03:00 UTC, inside the default window 02:00–05:00.
var updateT0 = time.Date(2026, 11, 21, 3, 0, 0, 0, time.UTC)

func newUpdateRig(t *testing.T) *updateRig {
	t.Helper()
	r := &updateRig{t: t, dir: t.TempDir(), clock: testclock.New(updateT0)}
	repoDir, keyDir := t.TempDir(), t.TempDir()
	keys, err := release.GenerateKeys(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	expiry := release.Expiry{Root: 365 * 24 * time.Hour, Targets: 30 * 24 * time.Hour, Snapshot: 7 * 24 * time.Hour, Timestamp: 24 * time.Hour}
	repo, err := release.Init(repoDir, keys, expiry, updateT0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 9))
	r.image = make([]byte, 300<<10+17)
	for i := range r.image {
		r.image[i] = byte(rng.Uint32())
	}
	sum := sha256.Sum256(r.image)
	meta := release.ImageMeta{
		Hardware: []string{testHardware}, Version: "2.0.0", SecurityVersion: 2, BuildTime: updateT0.Add(-2 * time.Hour),
		Partitions: map[string]release.PartitionMeta{"rootfs": {Size: int64(len(r.image)), SHA256: hex.EncodeToString(sum[:])}},
	}
	if err := repo.AddImage("atrium-2.0.0", bytes.NewReader(r.image), meta, updateT0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	other := meta
	other.Hardware, other.Version = []string{"some-other-board"}, "2.0.1"
	if err := repo.AddImage("atrium-2.0.1-other", bytes.NewReader(r.image), other, updateT0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	root, err := repo.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	// fleetd's part: the repository as static files under PathUpdates.
	mux := http.NewServeMux()
	files := http.StripPrefix(fleetapi.PathUpdates, http.FileServer(http.Dir(repoDir)))
	mux.Handle(fleetapi.PathUpdates, files)
	mux.HandleFunc(fleetapi.PathUpdates+"targets/", func(w http.ResponseWriter, req *http.Request) {
		r.meeting.Lock()
		hold := r.hold
		if hold != nil {
			r.holding++
		}
		r.fetched = append(r.fetched, req.URL.Path)
		r.meeting.Unlock()
		if hold == nil || req.Header.Get("Range") != "" {
			files.ServeHTTP(w, req)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(r.image)))
		_, _ = w.Write(r.image[:len(r.image)/2])
		http.NewResponseController(w).Flush()
		select {
		case <-req.Context().Done():
		case <-hold:
		}
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(srv.Client().CloseIdleConnections)
	r.fleet = &fakeUpdateFleet{srv: srv}
	r.repo = repo

	cfgDir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(cfgDir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	r.cfg = config.Default().Update
	r.cfg.Enabled = true
	r.cfg.Boot = "file"
	r.cfg.Hardware = testHardware
	r.cfg.TrustedRoot = write("root.json", root)
	r.cfg.OSRelease = write("os-release", []byte("ID=atrium\nIMAGE_VERSION=1.0.0\n"))
	r.cfg.SlotA = write("slot-a.img", make([]byte, 512<<10))
	r.cfg.SlotB = write("slot-b.img", make([]byte, 512<<10))
	r.cfg.HealthDeadline = config.Duration{Duration: time.Minute}
	r.offer = fleetapi.UpdateOffer{Rollout: "r1", Target: "atrium-2.0.0", Version: "2.0.0", Repository: fleetapi.PathUpdates,
		Window: &fleetapi.MaintenanceWindow{Start: "02:00", End: "05:00"}}
	t.Cleanup(r.stop)
	return r
}

func (r *updateRig) setMeeting(on bool) {
	r.meeting.Lock()
	r.inMeet = on
	r.meeting.Unlock()
	r.u.MeetingChanged(on)
}

// start builds a new updater over the rig's state, as roomd does at
// every start, and runs it.
func (r *updateRig) start() *Updater {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var u *Updater
	u, err := New(Options{
		Config: r.cfg, StateDir: r.dir, Fleet: r.fleet, Now: r.clock.Now,
		Logger: slog.New(slog.NewTextHandler(testLogWriter{r.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hooks: Hooks{
			InMeeting: func() bool {
				r.meeting.Lock()
				defer r.meeting.Unlock()
				return r.inMeet
			},
			Ready: func() bool { return true },
			// roomd's exit for a reboot: the updater's context ends.
			Reboot: func(context.Context) error {
				r.meeting.Lock()
				r.reboots++
				r.meeting.Unlock()
				cancel()
				return nil
			},
		},
	})
	if err != nil {
		cancel()
		r.t.Fatal(err)
	}
	r.u, r.cancel, r.done = u, cancel, make(chan error, 1)
	done := r.done
	go func() { done <- u.Run(ctx) }()
	return u
}

// stop ends the running updater and waits for it.
func (r *updateRig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("updater run: %v", err)
		}
	case <-time.After(20 * time.Second):
		r.t.Fatal("updater did not stop")
	}
	r.cancel = nil
}

// rebooted waits for the updater to ask for a reboot and to end.
func (r *updateRig) rebooted(n int) {
	r.t.Helper()
	r.wait("reboot", func() bool {
		r.meeting.Lock()
		defer r.meeting.Unlock()
		return r.reboots >= n
	})
	r.stop()
}

func (r *updateRig) wait(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s; status %+v, events %v", what, r.u.Status(), r.fleet.eventTypes())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *updateRig) waitStatus(what string, cond func(apiv1.UpdateStatus) bool) apiv1.UpdateStatus {
	r.t.Helper()
	var st apiv1.UpdateStatus
	r.wait(what, func() bool { st = r.u.Status(); return cond(st) })
	return st
}

func (r *updateRig) offerNow(o *fleetapi.UpdateOffer) {
	r.u.OfferUpdate(context.Background(), o)
}

func (r *updateRig) slot(name string) []byte {
	r.t.Helper()
	b, err := os.ReadFile(map[string]string{"a": r.cfg.SlotA, "b": r.cfg.SlotB}[name])
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func (r *updateRig) loader() bootctl.Status {
	r.t.Helper()
	fc, err := bootctl.NewFileControl(filepath.Join(r.dir, "boot.json"), bootctl.SlotA, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	st, err := fc.Status(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// installThroughReboot offers the update, lets it install and waits for
// the reboot that follows.
func (r *updateRig) installThroughReboot() {
	r.t.Helper()
	r.offerNow(&r.offer)
	r.rebooted(1)
	if !bytes.Equal(r.slot("b")[:len(r.image)], r.image) {
		r.t.Fatal("slot b does not hold the image after the install")
	}
	if st := r.loader(); st.Trying != bootctl.SlotB || st.Default != bootctl.SlotA {
		r.t.Fatalf("loader before the reboot: %+v", st)
	}
}

func TestUpdateDeferredByMeetingThenCommitted(t *testing.T) {
	r := newUpdateRig(t)
	r.start()
	st := r.waitStatus("the booted slot", func(st apiv1.UpdateStatus) bool { return st.Slot != "" })
	if !st.Enabled || st.Running != "1.0.0" || st.Slot != "a" || st.State != apiv1.UpdateIdle || st.Hardware != testHardware {
		t.Fatalf("at start: %+v", st)
	}
	r.setMeeting(true)
	r.offerNow(&r.offer)
	st = r.waitStatus("deferral by the meeting", func(st apiv1.UpdateStatus) bool { return st.Deferred == apiv1.DeferredMeeting })
	if st.State != apiv1.UpdateChecking || st.Version != "2.0.0" || st.Rollout != "r1" || st.Written != 0 {
		t.Fatalf("deferred: %+v", st)
	}
	if bytes.ContainsFunc(r.slot("b"), func(c rune) bool { return c != 0 }) {
		t.Fatal("slot b written during the meeting")
	}
	r.setMeeting(false)
	r.rebooted(1)
	if !bytes.Equal(r.slot("b")[:len(r.image)], r.image) {
		t.Fatal("slot b does not hold the image")
	}

	// roomd starts again: the file loader boots the new slot on trial.
	r.start()
	st = r.waitStatus("verifying", func(st apiv1.UpdateStatus) bool { return st.State == apiv1.UpdateVerifying })
	if st.Slot != "b" || st.Running != "1.0.0" {
		t.Fatalf("on trial: %+v", st)
	}
	// Neither kiosk nor check-in yet: the gate waits.
	r.clock.Advance(10 * time.Second)
	r.offerNow(&r.offer)
	time.Sleep(50 * time.Millisecond)
	if s := r.u.Status().State; s != apiv1.UpdateVerifying {
		t.Fatalf("gate decided without the kiosk and a check-in: %s", s)
	}
	r.u.KioskReady()
	r.fleet.setCheckIn(r.clock.Now())
	r.offerNow(&r.offer)
	st = r.waitStatus("committed", func(st apiv1.UpdateStatus) bool { return st.State == apiv1.UpdateCommitted })
	if st.Running != "2.0.0" || st.Slot != "b" || st.SecurityFloor != 2 || st.Rollout != "r1" {
		t.Fatalf("committed: %+v", st)
	}
	if ls := r.loader(); ls.Default != bootctl.SlotB || ls.Trying != "" {
		t.Fatalf("loader after commit: %+v", ls)
	}
	ev, ok := r.fleet.event("update.committed")
	if !ok || !strings.Contains(string(ev.Details), `"rollout":"r1"`) {
		t.Fatalf("committed event: %+v (%v)", ev, r.fleet.eventTypes())
	}
	r.fleet.mu.Lock()
	soon := r.fleet.soon
	r.fleet.mu.Unlock()
	if soon < 2 { // accepted, committed
		t.Fatalf("%d early check-ins asked for; the verdict waits for the interval", soon)
	}
	// The fleet then stops offering; the same version is not installed
	// again, even if it were.
	r.offerNow(&r.offer)
	time.Sleep(50 * time.Millisecond)
	if st := r.u.Status(); st.State != apiv1.UpdateCommitted || st.Reason != "" {
		t.Fatalf("re-offered running version: %+v", st)
	}
}

func TestUpdateRejectedByGateNeverRetried(t *testing.T) {
	r := newUpdateRig(t)
	r.start()
	r.installThroughReboot()

	r.start()
	r.waitStatus("verifying", func(st apiv1.UpdateStatus) bool { return st.State == apiv1.UpdateVerifying })
	r.fleet.setCheckIn(r.clock.Now().Add(time.Second)) // the fleet is reached; the kiosk never comes up
	r.clock.Advance(2 * time.Minute)                   // past the deadline
	r.offerNow(&r.offer)
	r.rebooted(2) // the fall-back reboot
	ev, ok := r.fleet.event("update.rolled-back")
	if !ok || !strings.Contains(ev.Message, "the kiosk did not come up") {
		t.Fatalf("rolled-back event: %+v (%v)", ev, r.fleet.eventTypes())
	}

	// The loader falls back to slot a.
	r.start()
	st := r.waitStatus("rolled back on slot a", func(st apiv1.UpdateStatus) bool { return st.Slot == "a" })
	if st.State != apiv1.UpdateRolledBack || st.Running != "1.0.0" || !slices.Equal(st.NeverRetry, []string{"2.0.0"}) ||
		!strings.Contains(st.Reason, "health gate") {
		t.Fatalf("after the fall-back: %+v", st)
	}
	// The same offer again is refused for good.
	r.offerNow(&r.offer)
	st = r.waitStatus("refusal", func(st apiv1.UpdateStatus) bool { return strings.Contains(st.Reason, "refused") })
	if !strings.Contains(st.Reason, "never-retry") || st.State != apiv1.UpdateRolledBack {
		t.Fatalf("re-offer: %+v", st)
	}
	if _, ok := r.fleet.event("update.refused"); !ok {
		t.Fatalf("no refusal event: %v", r.fleet.eventTypes())
	}
	r.offerNow(&r.offer)
	time.Sleep(50 * time.Millisecond)
	if n := strings.Count(strings.Join(r.fleet.eventTypes(), " "), "update.refused"); n != 1 {
		t.Fatalf("refusal reported %d times for one offer", n)
	}
	if ls := r.loader(); ls.Default != bootctl.SlotA || ls.Trying != "" {
		t.Fatalf("loader: %+v", ls)
	}
}

func TestUpdateRefusesWhatTUFDoesNotList(t *testing.T) {
	r := newUpdateRig(t)
	r.start()
	for _, c := range []struct {
		offer fleetapi.UpdateOffer
		want  error
	}{
		{fleetapi.UpdateOffer{Rollout: "r2", Target: "atrium-9.9.9", Version: "9.9.9", Repository: fleetapi.PathUpdates}, release.ErrUnknownTarget},
		{fleetapi.UpdateOffer{Rollout: "r3", Target: "atrium-2.0.1-other", Version: "2.0.1", Repository: fleetapi.PathUpdates}, release.ErrWrongHardware},
		{fleetapi.UpdateOffer{Rollout: "r4", Target: "atrium-2.0.0", Version: "2.0.5", Repository: fleetapi.PathUpdates}, errVersionMismatch},
	} {
		r.offerNow(&c.offer)
		st := r.waitStatus("refusal of "+c.offer.Target, func(st apiv1.UpdateStatus) bool { return st.Rollout == c.offer.Rollout })
		if st.State != apiv1.UpdateIdle || !strings.Contains(st.Reason, c.want.Error()) || st.Version != c.offer.Version {
			t.Errorf("%s: %+v, want a refusal naming %q", c.offer.Target, st, c.want)
		}
	}
	if bytes.ContainsFunc(r.slot("b"), func(c rune) bool { return c != 0 }) {
		t.Fatal("a refused image was written")
	}
	if n := strings.Count(strings.Join(r.fleet.eventTypes(), " "), "update.refused"); n != 3 {
		t.Fatalf("refusal events: %v", r.fleet.eventTypes())
	}
}

func TestUpdateWithdrawnBeforeArming(t *testing.T) {
	r := newUpdateRig(t)
	r.clock.Set(time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC)) // working hours
	r.start()
	r.offerNow(&r.offer)
	st := r.waitStatus("deferral to the window", func(st apiv1.UpdateStatus) bool { return st.Deferred == apiv1.DeferredWindow })
	if want := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC); !st.NextWindow.Equal(want) || st.State != apiv1.UpdateChecking {
		t.Fatalf("deferred: %+v, want next window %v", st, want)
	}
	r.offerNow(nil) // the rollout was paused
	st = r.waitStatus("cancel", func(st apiv1.UpdateStatus) bool { return st.State == apiv1.UpdateIdle })
	if !strings.Contains(st.Reason, "cancelled") || st.Deferred != "" || len(st.NeverRetry) != 0 {
		t.Fatalf("after withdrawal: %+v", st)
	}
	if _, ok := r.fleet.event("update.cancelled"); !ok {
		t.Fatalf("no cancel event: %v", r.fleet.eventTypes())
	}
	// Offered again (resumed), it is taken again.
	r.offerNow(&r.offer)
	r.waitStatus("taken again", func(st apiv1.UpdateStatus) bool { return st.State == apiv1.UpdateChecking })
}

// TestUpdateImmediateOfferIgnoresWindow: an offer without a window (an
// urgent rollout) installs outside the window, but still not in a meeting.
func TestUpdateImmediateOfferIgnoresWindow(t *testing.T) {
	r := newUpdateRig(t)
	r.clock.Set(time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC))
	r.offer.Window = nil
	r.start()
	r.installThroughReboot()
}

func TestUpdatesOff(t *testing.T) {
	r := newUpdateRig(t)
	cases := []struct {
		mod   func(*Options)
		want  string
		isOff bool
	}{
		{func(o *Options) { o.Config.Enabled = false }, "no [update] section", true},
		{func(o *Options) { o.Fleet = nil }, "no fleet server", true},
		{func(o *Options) { o.Config.TrustedRoot = filepath.Join(t.TempDir(), "none.json") }, "does not exist", true},
		{func(o *Options) { o.Config.Tries = 12 }, "update engine", false},
	}
	for _, c := range cases {
		o := Options{Config: r.cfg, StateDir: t.TempDir(), Fleet: r.fleet}
		c.mod(&o)
		_, err := New(o)
		if err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, ErrOff) != c.isOff {
			t.Errorf("%s: %v", c.want, err)
		}
	}
}

func TestImageVersion(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "os-release")
	if v := ImageVersion(p); v != "dev" {
		t.Fatalf("missing file: %q", v)
	}
	if err := os.WriteFile(p, []byte("NAME=\"Atrium\"\nIMAGE_VERSION=\"1.4.2\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v := ImageVersion(p); v != "1.4.2" {
		t.Fatalf("quoted: %q", v)
	}
}

// The API's update states and reasons are the fleet contract's.
func TestUpdateConstantsMatchFleetAPI(t *testing.T) {
	pairs := [][2]string{
		{apiv1.UpdateIdle, fleetapi.UpdateIdle}, {apiv1.UpdateChecking, fleetapi.UpdateChecking},
		{apiv1.UpdateDownloading, fleetapi.UpdateDownloading}, {apiv1.UpdateInstalling, fleetapi.UpdateInstalling},
		{apiv1.UpdateRebooting, fleetapi.UpdateRebooting}, {apiv1.UpdateVerifying, fleetapi.UpdateVerifying},
		{apiv1.UpdateCommitted, fleetapi.UpdateCommitted}, {apiv1.UpdateRolledBack, fleetapi.UpdateRolledBack},
		{apiv1.UpdateFailed, fleetapi.UpdateFailed},
		{apiv1.DeferredWindow, fleetapi.DeferredWindow}, {apiv1.DeferredMeeting, fleetapi.DeferredMeeting},
	}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("apiv1 %q, fleetapi %q", p[0], p[1])
		}
	}
	// Every field of the API's status reaches the check-in's.
	st := apiv1.UpdateStatus{Enabled: true, Hardware: "h", Running: "1", Slot: "a", State: "idle", Rollout: "r", Version: "2",
		Written: 1, Length: 2, Reason: "x", Deferred: "meeting", NextWindow: updateT0, NeverRetry: []string{"3"}, SecurityFloor: 4}
	a, _ := json.Marshal(st)
	b, _ := json.Marshal(FleetStatus(st))
	var am, bm map[string]any
	_ = json.Unmarshal(a, &am)
	_ = json.Unmarshal(b, &bm)
	delete(am, "enabled")
	delete(am, "target")
	if len(am) != len(bm) {
		t.Fatalf("api %v\nfleet %v", am, bm)
	}
	if FleetStatus(apiv1.UpdateStatus{}) != nil {
		t.Fatal("disabled updates report a status to the fleet")
	}
}

// holdDownloads makes the next image downloads stall halfway.
func (r *updateRig) holdDownloads() {
	r.meeting.Lock()
	r.hold = make(chan struct{})
	r.meeting.Unlock()
}

// releaseDownloads lets downloads run again.
func (r *updateRig) releaseDownloads() {
	r.meeting.Lock()
	if r.hold != nil {
		close(r.hold)
	}
	r.hold = nil
	r.meeting.Unlock()
}

func (r *updateRig) stalled() bool {
	r.meeting.Lock()
	defer r.meeting.Unlock()
	return r.holding > 0
}

// A meeting that starts during a download stops it; the download goes on
// (from the last synced offset) once the meeting ends.
func TestUpdateMeetingStopsDownload(t *testing.T) {
	r := newUpdateRig(t)
	r.start()
	r.holdDownloads()
	r.offerNow(&r.offer)
	r.wait("a stalled download", r.stalled)
	r.waitStatus("downloading", func(st apiv1.UpdateStatus) bool { return st.State == apiv1.UpdateDownloading })
	r.setMeeting(true)
	st := r.waitStatus("deferral by the meeting", func(st apiv1.UpdateStatus) bool { return st.Deferred == apiv1.DeferredMeeting })
	if st.State != apiv1.UpdateDownloading {
		t.Fatalf("stopped download: %+v", st)
	}
	r.releaseDownloads()
	r.setMeeting(false)
	r.rebooted(1)
	if !bytes.Equal(r.slot("b")[:len(r.image)], r.image) {
		t.Fatal("slot b does not hold the image after the resumed download")
	}
	if slices.Contains(r.fleet.eventTypes(), "update.failed") {
		t.Fatalf("a stopped download counted as a failure: %v", r.fleet.eventTypes())
	}
}

// An offer withdrawn during the download (the rollout paused) ends it at
// once and leaves the engine idle; slot a, the running one, is untouched.
func TestUpdateWithdrawnDuringDownload(t *testing.T) {
	r := newUpdateRig(t)
	before := r.slot("a")
	r.start()
	r.holdDownloads()
	r.offerNow(&r.offer)
	r.wait("a stalled download", r.stalled)
	r.offerNow(nil)
	st := r.waitStatus("cancel", func(st apiv1.UpdateStatus) bool { return st.State == apiv1.UpdateIdle })
	if !strings.Contains(st.Reason, "cancelled") || st.Written != 0 {
		t.Fatalf("after withdrawal: %+v", st)
	}
	if ls := r.loader(); ls.Trying != "" || ls.Default != bootctl.SlotA {
		t.Fatalf("loader: %+v", ls)
	}
	if !bytes.Equal(r.slot("a"), before) {
		t.Fatal("the running slot was written")
	}
	r.releaseDownloads()
}

// roomd restarting in the middle of a download (no reboot) resumes it
// after the first check-in, which brings the window back.
func TestUpdateResumesAfterRestart(t *testing.T) {
	r := newUpdateRig(t)
	r.start()
	r.holdDownloads()
	r.offerNow(&r.offer)
	r.wait("a stalled download", r.stalled)
	r.stop() // roomd stops; the file loader's Boot at the next start plays the reboot too
	r.releaseDownloads()
	r.start()
	st := r.waitStatus("the booted slot", func(st apiv1.UpdateStatus) bool { return st.Slot != "" })
	if st.State != apiv1.UpdateDownloading || st.Slot != "a" {
		t.Fatalf("after the restart: %+v", st)
	}
	time.Sleep(50 * time.Millisecond)
	if st := r.u.Status(); st.State != apiv1.UpdateDownloading {
		t.Fatalf("moved on without the fleet's window: %+v", st)
	}
	r.offerNow(&r.offer)
	r.rebooted(1)
	if !bytes.Equal(r.slot("b")[:len(r.image)], r.image) {
		t.Fatal("slot b does not hold the image")
	}
}

func TestResolveRepository(t *testing.T) {
	for _, c := range []struct{ server, repo, want string }{
		{"https://fleet.example:8443", fleetapi.PathUpdates, "https://fleet.example:8443/device/v1/updates"},
		{"https://fleet.example:8443", "https://cdn.example/atrium/", "https://cdn.example/atrium"},
		{"https://fleet.example:8443", "http://cdn.example/atrium/", ""},
		{"https://fleet.example:8443", "", ""},
	} {
		got, err := resolveRepository(c.server, c.repo)
		if got != c.want || (c.want == "") != errors.Is(err, errBadRepository) {
			t.Errorf("%q against %q: %q, %v; want %q", c.repo, c.server, got, err, c.want)
		}
	}
}

// An offer whose window the device cannot read waits for the default
// window rather than for ever or not at all.
func TestUpdateInvalidWindowUsesDefault(t *testing.T) {
	r := newUpdateRig(t)
	r.clock.Set(time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC))
	r.offer.Window = &fleetapi.MaintenanceWindow{Start: "25:00", End: "nope"}
	r.start()
	r.offerNow(&r.offer)
	st := r.waitStatus("deferral", func(st apiv1.UpdateStatus) bool { return st.Deferred != "" })
	if want := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC); st.Deferred != apiv1.DeferredWindow || !st.NextWindow.Equal(want) {
		t.Fatalf("invalid window: %+v, want the default window at %v", st, want)
	}
}

// A room running 1.0.0 fetches the delta from it, not the image.
func TestUpdateFromDelta(t *testing.T) {
	r := newUpdateRig(t)
	base := bytes.Clone(r.image)
	copy(base[100<<10:], "what 1.0.0 had here")
	slot := make([]byte, 512<<10)
	copy(slot, base)
	if err := os.WriteFile(r.cfg.SlotA, slot, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(base)
	meta := release.ImageMeta{
		Hardware: []string{testHardware}, Version: "1.0.0", SecurityVersion: 1, BuildTime: updateT0.Add(-3 * time.Hour),
		Partitions: map[string]release.PartitionMeta{"rootfs": {Size: int64(len(base)), SHA256: hex.EncodeToString(sum[:])}},
	}
	if err := r.repo.AddImage("atrium-1.0.0", bytes.NewReader(base), meta, updateT0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	name, _, err := r.repo.PublishDelta(bytes.NewReader(base), int64(len(base)), "atrium-2.0.0", delta.Options{}, updateT0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r.start()
	r.installThroughReboot()
	r.meeting.Lock()
	fetched := slices.Clone(r.fetched)
	r.meeting.Unlock()
	var deltas, images int
	for _, p := range fetched {
		switch {
		case strings.HasSuffix(p, "."+name):
			deltas++
		case strings.HasSuffix(p, ".atrium-2.0.0"):
			images++
		}
	}
	if deltas != 1 || images != 0 {
		t.Fatalf("fetched %q: want the delta %s once and not the image", fetched, name)
	}
}
