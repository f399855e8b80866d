package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/internal/testclock"
	"github.com/atriumroom/atrium/ota/release"
	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// publishRelease makes a TUF repository with one image, "atrium-2.0"
// (version 2.0, hardware hw1).
func publishRelease(t *testing.T) string {
	t.Helper()
	keys, err := release.GenerateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "repo")
	built := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	repo, err := release.Init(dir, keys, release.DefaultExpiry(), built)
	if err != nil {
		t.Fatal(err)
	}
	img := bytes.Repeat([]byte{7}, 4096)
	meta := release.ImageMeta{Hardware: []string{"hw1"}, Version: "2.0", SecurityVersion: 1, BuildTime: built,
		Partitions: map[string]release.PartitionMeta{"rootfs": {Size: int64(len(img)), SHA256: hex.EncodeToString(make([]byte, 32))}}}
	if err := repo.AddImage("atrium-2.0", bytes.NewReader(img), meta, built); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fleetDevice enrolls a device through the running device API and
// returns its ID and an mTLS client.
func fleetDevice(t *testing.T, ctx context.Context, srv *Server, roomID string) (string, *http.Client) {
	t.Helper()
	code, _, err := srv.Store.CreateEnrollmentCode(ctx, "admin", store.CodeScope{RoomID: roomID}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "room"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{RootCAs: srv.CA.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS13}
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	t.Cleanup(tr.CloseIdleConnections)
	var resp fleetapi.EnrollResponse
	post(t, &http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://"+srv.DeviceAddr().String()+fleetapi.PathEnroll,
		fleetapi.EnrollRequest{Code: code, CSR: csr, Facts: fleetapi.Facts{Model: "R1", Serial: "S1"}}, &resp)
	block, _ := pem.Decode([]byte(resp.Certificate))
	if block == nil {
		t.Fatalf("enrollment answered no certificate: %+v", resp)
	}
	devCfg := tlsCfg.Clone()
	devCfg.Certificates = []tls.Certificate{{Certificate: [][]byte{block.Bytes}, PrivateKey: key}}
	dtr := &http.Transport{TLSClientConfig: devCfg}
	t.Cleanup(dtr.CloseIdleConnections)
	return resp.DeviceID, &http.Client{Transport: dtr, Timeout: 10 * time.Second}
}

// post sends v as JSON and decodes a 200 answer into out.
func post(t *testing.T, c *http.Client, url string, v, out any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("POST %s: %s: %v", url, body, err)
	}
}

// A rollout halts by itself when a device reports a rollback: fleetd's
// own loop evaluates it, nobody calls the store.
func TestRolloutHaltsByItself(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := Open(ctx, Options{DataDir: t.TempDir(), DeviceListen: "127.0.0.1:0", ConsoleListen: "127.0.0.1:0",
		UpdatesDir: publishRelease(t), RolloutInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	org, _ := srv.Store.CreateOrganisation(ctx, "admin", "Acme")
	site, _ := srv.Store.CreateSite(ctx, "admin", org.ID, "Amsterdam")
	room, err := srv.Store.CreateRoom(ctx, "admin", site.ID, "A1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var clients []*http.Client
	for range 3 {
		id, c := fleetDevice(t, ctx, srv, room.ID)
		ids, clients = append(ids, id), append(clients, c)
	}
	r, err := srv.Store.CreateRollout(ctx, "alice", store.NewRollout{OrgID: org.ID, Target: "atrium-2.0", Version: "2.0",
		Rings: []rollout.Ring{{Name: "everyone", Percent: 100}}, FailureThreshold: 50, SoakMinutes: 60})
	if err != nil {
		t.Fatal(err)
	}
	checkIn := func(i int, u *fleetapi.UpdateStatus) *fleetapi.UpdateOffer {
		t.Helper()
		var resp fleetapi.CheckInResponse
		post(t, clients[i], "https://"+srv.DeviceAddr().String()+fleetapi.PathCheckIn, fleetapi.CheckIn{
			Health: fleetapi.Health{Status: fleetapi.HealthOK}, Meeting: fleetapi.Meeting{State: "idle"}, Update: u}, &resp)
		return resp.Update
	}
	for i := range ids {
		o := checkIn(i, &fleetapi.UpdateStatus{Hardware: "hw1", Running: "1.0", State: fleetapi.UpdateIdle})
		if o == nil || o.Rollout != r.ID || o.Target != "atrium-2.0" {
			t.Fatalf("device %d offered %+v", i, o)
		}
	}
	rolledBack := func(reason string) *fleetapi.UpdateStatus {
		return &fleetapi.UpdateStatus{Hardware: "hw1", Running: "1.0", State: fleetapi.UpdateRolledBack,
			Rollout: r.ID, Version: "2.0", Reason: reason, NeverRetry: []string{"2.0"}}
	}
	// One of three failed: at 33% it is under the threshold; it keeps
	// running (and the soak keeps it from completing).
	checkIn(0, rolledBack("kiosk did not start"))
	waitState := func(want store.RolloutState) store.Rollout {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := srv.Store.Rollout(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State == want {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("rollout %s, want %s", got.State, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(200 * time.Millisecond)
	waitState(store.RolloutRunning)
	// A second failure: 2 of 3, above 50%: halted, with the reason.
	checkIn(1, rolledBack("boot failed"))
	halted := waitState(store.RolloutHalted)
	if want := "ring everyone: 2 of 3 devices failed (threshold 50%)"; halted.Reason != want {
		t.Fatalf("reason %q, want %q", halted.Reason, want)
	}
	if o := checkIn(2, &fleetapi.UpdateStatus{Hardware: "hw1", Running: "1.0", State: fleetapi.UpdateIdle}); o != nil {
		t.Fatalf("halted rollout still offers %+v", o)
	}
	entries, _ := srv.Store.Audit(ctx, "rollout:"+r.ID, 0)
	if last := entries[len(entries)-1]; last.Action != "rollout.halt" || last.Actor != "fleetd" {
		t.Fatalf("audit %+v", last)
	}
}

// The periodic pass advances rings with no check-in to prompt it, and
// the repository is served at PathUpdates.
func TestRolloutAdvancesOnItsOwnClock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	clock := testclock.New(time.Now())
	srv, err := Open(ctx, Options{DataDir: t.TempDir(), DeviceListen: "127.0.0.1:0", ConsoleListen: "127.0.0.1:0",
		UpdatesDir: publishRelease(t), RolloutInterval: 20 * time.Millisecond, Now: clock.Now, OfflineGrace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	org, _ := srv.Store.CreateOrganisation(ctx, "admin", "Acme")
	site, _ := srv.Store.CreateSite(ctx, "admin", org.ID, "Amsterdam")
	room, _ := srv.Store.CreateRoom(ctx, "admin", site.ID, "A1")
	_, c := fleetDevice(t, ctx, srv, room.ID)
	r, err := srv.Store.CreateRollout(ctx, "alice", store.NewRollout{OrgID: org.ID, Target: "atrium-2.0", Version: "2.0",
		Rings: []rollout.Ring{{Name: "a", Percent: 50}, {Name: "b", Percent: 100}}, SoakMinutes: 10})
	if err != nil {
		t.Fatal(err)
	}
	// The device never checks in with an update status: once offline
	// past the grace and the soak over, both rings pass by the clock
	// alone.
	clock.Advance(11 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := srv.Store.Rollout(ctx, r.ID)
		if got.State == store.RolloutRunning && got.Ring == 1 {
			clock.Advance(11 * time.Minute)
		}
		if got.State == store.RolloutCompleted {
			if !strings.Contains(got.Reason, "1 offline") {
				t.Fatalf("completed: %q", got.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout %+v did not complete", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := c.Get("https://" + srv.DeviceAddr().String() + fleetapi.PathUpdates + "metadata/timestamp.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"timestamp"`)) {
		t.Fatalf("timestamp.json: %d %s", resp.StatusCode, body)
	}
}
