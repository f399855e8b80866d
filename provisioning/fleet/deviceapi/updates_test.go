package deviceapi

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/ota/release"
	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// updatesRepo publishes a TUF repository holding one image,
// "atrium-2.0" (version 2.0, hardware hw1), in a temporary directory.
func updatesRepo(t *testing.T) (dir string, image []byte) {
	t.Helper()
	keys, err := release.GenerateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), "repo")
	built := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	repo, err := release.Init(dir, keys, release.DefaultExpiry(), built)
	if err != nil {
		t.Fatal(err)
	}
	image = bytes.Repeat([]byte("atrium image "), 1000)
	meta := release.ImageMeta{Hardware: []string{"hw1"}, Version: "2.0", SecurityVersion: 1, BuildTime: built,
		Partitions: map[string]release.PartitionMeta{"rootfs": {Size: int64(len(image)), SHA256: hex.EncodeToString(make([]byte, 32))}}}
	if err := repo.AddImage("atrium-2.0", bytes.NewReader(image), meta, built); err != nil {
		t.Fatal(err)
	}
	return dir, image
}

// withUpdates serves the repository and its catalog, and collects the
// rollouts the API reports.
func withUpdates(dir string, reported chan<- string) func(*Options) {
	return func(o *Options) {
		o.UpdatesDir = dir
		o.Releases = rollout.NewRepoCatalog(dir)
		o.RolloutReported = func(id string) { reported <- id }
	}
}

// updateCheckIn is a check-in carrying an update status.
func updateCheckIn(u *fleetapi.UpdateStatus) fleetapi.CheckIn {
	c := checkIn()
	c.Update = u
	return c
}

func idleOn(hw string) *fleetapi.UpdateStatus {
	return &fleetapi.UpdateStatus{Hardware: hw, Running: "1.0", State: fleetapi.UpdateIdle, Slot: "a"}
}

func testUpdateOffers(t *testing.T, eng engine) {
	dir, _ := updatesRepo(t)
	reported := make(chan string, 10)
	e := newEnv(t, eng, withUpdates(dir, reported))
	r, err := e.st.CreateRollout(e.ctx, "alice", store.NewRollout{OrgID: e.org.ID, Target: "atrium-2.0", Version: "2.0",
		Rings: []rollout.Ring{{Name: "canary", Percent: 50}, {Name: "all", Percent: 100}}, FailureThreshold: 10})
	if err != nil {
		t.Fatal(err)
	}
	// Enroll until one device is in each ring (IDs are random).
	var canary, late *device
	for range 40 {
		d := e.enroll()
		switch rollout.RingOf(r.Rings, r.ID, d.id) {
		case 0:
			canary = d
		case 1:
			late = d
		}
		if canary != nil && late != nil {
			break
		}
	}
	if canary == nil || late == nil {
		t.Fatal("no device in one of the rings")
	}
	cc, lc := e.client(&canary.cert), e.client(&late.cert)
	offerOf := func(c *http.Client, u *fleetapi.UpdateStatus) *fleetapi.UpdateOffer {
		t.Helper()
		return decodeResp[fleetapi.CheckInResponse](t, e.mustPost(c, fleetapi.PathCheckIn, updateCheckIn(u), http.StatusOK)).Update
	}

	o := offerOf(cc, idleOn("hw1"))
	def := fleetapi.DefaultMaintenanceWindow()
	if o == nil || o.Rollout != r.ID || o.Target != "atrium-2.0" || o.Version != "2.0" || o.Repository != fleetapi.PathUpdates ||
		o.Window == nil || *o.Window != def {
		t.Fatalf("canary's offer %+v", o)
	}
	if o := offerOf(lc, idleOn("hw1")); o != nil {
		t.Fatalf("device in the unopened ring offered %+v", o)
	}
	if o := offerOf(cc, idleOn("hw2")); o != nil {
		t.Fatalf("other hardware offered %+v", o)
	}
	if o := offerOf(cc, nil); o != nil {
		t.Fatalf("device without update support offered %+v", o)
	}
	// The site's own window goes with the offer.
	w := fleetapi.MaintenanceWindow{Start: "23:00", End: "03:30"}
	if err := e.st.SetSiteMaintenanceWindow(e.ctx, "alice", e.site.ID, &w); err != nil {
		t.Fatal(err)
	}
	if o := offerOf(cc, idleOn("hw1")); o == nil || o.Window == nil || *o.Window != w {
		t.Fatalf("offer with the site's window: %+v", o)
	}

	// Paused: no offer (the device cancels what it has not armed); resumed:
	// offered again.
	if _, err := e.st.PauseRollout(e.ctx, "alice", r.ID); err != nil {
		t.Fatal(err)
	}
	if o := offerOf(cc, idleOn("hw1")); o != nil {
		t.Fatalf("paused rollout offered %+v", o)
	}
	if _, err := e.st.ResumeRollout(e.ctx, "alice", r.ID); err != nil {
		t.Fatal(err)
	}

	// Progress is stored; a failure is reported once and ends the offers.
	downloading := &fleetapi.UpdateStatus{Hardware: "hw1", Running: "1.0", Slot: "a", State: fleetapi.UpdateDownloading,
		Rollout: r.ID, Version: "2.0", Written: 4096, Length: 13000}
	if o := offerOf(cc, downloading); o == nil {
		t.Fatal("offer withdrawn while downloading")
	}
	devs, err := e.st.RolloutDevices(e.ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.DeviceID == canary.id && (d.Status.State != fleetapi.UpdateDownloading || d.Status.Written != 4096) {
			t.Fatalf("stored canary status %+v", d.Status)
		}
	}
	if st, _, err := e.st.DeviceUpdate(e.ctx, canary.id); err != nil || st.Written != 4096 || st.Slot != "a" {
		t.Fatalf("device's update status %+v, %v", st, err)
	}
	select {
	case id := <-reported:
		t.Fatalf("rollout %s reported before any device finished", id)
	default:
	}
	failed := *downloading
	failed.State, failed.Reason, failed.NeverRetry = fleetapi.UpdateRolledBack, "health gate: kiosk never came up", []string{"2.0"}
	if o := offerOf(cc, &failed); o != nil {
		t.Fatalf("offered again after a rollback: %+v", o)
	}
	select {
	case id := <-reported:
		if id != r.ID {
			t.Fatalf("reported %s", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the rollback was not reported")
	}
	// Even a device that forgot its never-retry list is not offered the
	// version it failed.
	if o := offerOf(cc, idleOn("hw1")); o != nil {
		t.Fatalf("offered after failing this rollout: %+v", o)
	}
}

func testBadUpdateStatus(t *testing.T, eng engine) {
	e := newEnv(t, eng, nil)
	d := e.enroll()
	c := e.client(&d.cert)
	for _, tc := range []struct {
		field string
		edit  func(*fleetapi.UpdateStatus)
	}{
		{"update.state", func(u *fleetapi.UpdateStatus) { u.State = "exploded" }},
		{"update.state", func(u *fleetapi.UpdateStatus) { u.State = "" }},
		{"update.hardware", func(u *fleetapi.UpdateStatus) { u.Hardware = "" }},
		{"update.hardware", func(u *fleetapi.UpdateStatus) { u.Hardware = strings.Repeat("h", 65) }},
		{"update.reason", func(u *fleetapi.UpdateStatus) { u.Reason = strings.Repeat("r", maxShort+1) }},
		{"update.rollout", func(u *fleetapi.UpdateStatus) { u.Rollout = strings.Repeat("r", 65) }},
		{"update.deferred", func(u *fleetapi.UpdateStatus) { u.Deferred = "lunch" }},
		{"update.written", func(u *fleetapi.UpdateStatus) { u.Written = -1 }},
		{"update.securityFloor", func(u *fleetapi.UpdateStatus) { u.SecurityFloor = -1 }},
		{"update.neverRetry", func(u *fleetapi.UpdateStatus) { u.NeverRetry = make([]string, 65) }},
		{"update.neverRetry", func(u *fleetapi.UpdateStatus) { u.NeverRetry = []string{""} }},
	} {
		u := idleOn("hw1")
		tc.edit(u)
		a := e.mustPost(c, fleetapi.PathCheckIn, updateCheckIn(u), http.StatusBadRequest)
		wantProblem(t, tc.field, a, http.StatusBadRequest, fleetapi.CodeBadRequest, tc.field)
	}
	if st, at, err := e.st.DeviceUpdate(e.ctx, d.id); err != nil || st.State != "" || !at.IsZero() {
		t.Fatalf("a refused check-in stored %+v at %v, %v", st, at, err)
	}
	// A valid one is stored.
	e.mustPost(c, fleetapi.PathCheckIn, updateCheckIn(idleOn("hw1")), http.StatusOK)
	if st, _, _ := e.st.DeviceUpdate(e.ctx, d.id); st.Hardware != "hw1" {
		t.Fatalf("stored %+v", st)
	}
}

// get fetches a path (sent as it is, unclean) with optional headers.
func (e *env) get(c *http.Client, method, path string, header http.Header) (answer, error) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, method, e.ts.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if a.body, err = io.ReadAll(resp.Body); err != nil {
		return answer{}, err
	}
	if resp.StatusCode >= 400 && method != http.MethodHead {
		if resp.Header.Get("Content-Type") != "application/problem+json" {
			e.t.Fatalf("%s answered %d with %q, not a Problem: %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), a.body)
		}
		if err := json.Unmarshal(a.body, &a.problem); err != nil || a.problem.Status != resp.StatusCode {
			e.t.Fatalf("%s: Problem %s (%v) does not match status %d", path, a.body, err, resp.StatusCode)
		}
	}
	return a, nil
}

func testUpdateRepository(t *testing.T, eng engine) {
	dir, image := updatesRepo(t)
	// Things that must never be served: a secret beside the repository, a
	// link to it from inside, a dot-file.
	secret := filepath.Join(filepath.Dir(dir), "secret.key")
	if err := os.WriteFile(secret, []byte("private"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "metadata", "link.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "metadata", ".hidden.json"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, eng, withUpdates(dir, make(chan string, 10)))
	d := e.enroll()
	c := e.client(&d.cert)
	fetch := func(c *http.Client, method, path string, header http.Header, want int) answer {
		t.Helper()
		a, err := e.get(c, method, path, header)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if a.status != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, a.status, a.body, want)
		}
		return a
	}

	ts, err := os.ReadFile(filepath.Join(dir, "metadata", "timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	a := fetch(c, http.MethodGet, fleetapi.PathUpdates+"metadata/timestamp.json", nil, http.StatusOK)
	if !bytes.Equal(a.body, ts) || a.header.Get("Content-Type") != "application/json" || a.header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("timestamp.json: %q %v", a.body, a.header)
	}
	// The image, whole and by range (the installer resumes with Range).
	entries, err := os.ReadDir(filepath.Join(dir, "targets"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("targets: %v, %v", entries, err)
	}
	target := fleetapi.PathUpdates + "targets/" + entries[0].Name()
	if a := fetch(c, http.MethodGet, target, nil, http.StatusOK); !bytes.Equal(a.body, image) ||
		a.header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("image: %d bytes, %v", len(a.body), a.header)
	}
	a = fetch(c, http.MethodGet, target, http.Header{"Range": {"bytes=100-199"}}, http.StatusPartialContent)
	if !bytes.Equal(a.body, image[100:200]) {
		t.Fatalf("range: %q", a.body)
	}
	if a := fetch(c, http.MethodHead, target, nil, http.StatusOK); a.header.Get("Content-Length") != "13000" || len(a.body) != 0 {
		t.Fatalf("HEAD: %v", a.header)
	}

	// Only devices of this fleet.
	wantProblem(t, "no certificate", fetch(e.client(nil), http.MethodGet, fleetapi.PathUpdates+"metadata/timestamp.json", nil, http.StatusUnauthorized),
		http.StatusUnauthorized, fleetapi.CodeUnauthorized, "")
	forged := selfSigned(t, d.id, e.clock.Now().Add(time.Hour))
	// (The TLS client sends no certificate the server's CA list does not
	// name, so this is a refused handshake or a 401.)
	if a, err := e.get(e.client(&forged), http.MethodGet, fleetapi.PathUpdates+"metadata/timestamp.json", nil); err == nil && a.status != http.StatusUnauthorized {
		t.Fatalf("a self-signed certificate: %d %s", a.status, a.body)
	}

	// Nothing but the repository's regular files.
	for _, p := range []string{
		"", "metadata", "metadata/", "targets/", "metadata/nope.json", "metadata/link.json", "metadata/.hidden.json",
	} {
		a := fetch(c, http.MethodGet, fleetapi.PathUpdates+p, nil, http.StatusNotFound)
		if bytes.Contains(a.body, []byte("private")) {
			t.Fatalf("%q leaked the secret", p)
		}
	}
	for _, p := range []string{"../../../../etc/passwd", "metadata/../../secret.key", "%2e%2e/secret.key", "metadata/%2e%2e/%2e%2e/secret.key"} {
		a := fetch(c, http.MethodGet, fleetapi.PathUpdates+p, nil, http.StatusBadRequest)
		if bytes.Contains(a.body, []byte("private")) || !bytes.Contains(a.body, []byte("..")) {
			t.Fatalf("%q: %s", p, a.body)
		}
	}
	if a := fetch(c, http.MethodPost, fleetapi.PathUpdates+"metadata/timestamp.json", nil, http.StatusMethodNotAllowed); a.header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: Allow %q", a.header.Get("Allow"))
	}

	// A revoked device is told so.
	if err := e.st.RevokeDevice(e.ctx, "alice", d.id); err != nil {
		t.Fatal(err)
	}
	fetch(c, http.MethodGet, fleetapi.PathUpdates+"metadata/timestamp.json", nil, http.StatusForbidden)

	// No repository configured: 404 for everything.
	plain := newEnv(t, eng, nil)
	pd := plain.enroll()
	a, err = plain.get(plain.client(&pd.cert), http.MethodGet, fleetapi.PathUpdates+"metadata/timestamp.json", nil)
	if err != nil || a.status != http.StatusNotFound || !bytes.Contains(a.body, []byte("no update repository")) {
		t.Fatalf("without a repository: %d %s, %v", a.status, a.body, err)
	}
}

func TestUpdatesDirMustExist(t *testing.T) {
	eng := engine{"sqlite", func(t *testing.T) store.Options {
		return store.Options{SQLitePath: filepath.Join(t.TempDir(), "fleet.db")}
	}}
	e := newEnv(t, eng, nil)
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), filepath.Join(t.TempDir(), "file")} {
		if strings.HasSuffix(dir, "file") {
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := New(Options{Store: e.st, CA: e.ca, UpdatesDir: dir}); err == nil || !strings.Contains(err.Error(), dir) {
			t.Fatalf("updates dir %s: %v", dir, err)
		}
	}
}
