package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/provisioning/fleet/console"
	"github.com/atriumroom/atrium/test/fleettest"
	"github.com/atriumroom/atrium/test/pgtest"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// rig is one fleet (fleetd on an engine, an organisation with one site and
// room) and the roomd binary to enroll in it.
type rig struct {
	t       *testing.T
	fleet   *fleettest.Fleetd
	con     *fleettest.Console
	roomBin string
	orgID   string
	siteID  string
	roomID  string
}

func newRig(t *testing.T, engine string) *rig {
	t.Helper()
	opts := fleettest.Options{Binary: fleetdBinary(t)}
	if engine == "postgres" {
		opts.PostgresDSN = pgtest.Start(t).NewDatabase(t)
	}
	r := &rig{t: t, fleet: fleettest.Start(t, opts), roomBin: roomdBinary(t)}
	r.con = r.fleet.Login()
	var node console.Node
	r.fleet.Must(r.con.Do(http.MethodPost, "/api/v1/orgs", map[string]string{"name": "Acme"}, &node), http.StatusCreated, "create org")
	r.orgID = node.ID
	r.fleet.Must(r.con.Do(http.MethodPost, "/api/v1/orgs/"+r.orgID+"/sites", map[string]string{"name": "Head office"}, &node), http.StatusCreated, "create site")
	r.siteID = node.ID
	r.fleet.Must(r.con.Do(http.MethodPost, "/api/v1/sites/"+r.siteID+"/rooms", map[string]string{"name": "Lab 4"}, &node), http.StatusCreated, "create room")
	r.roomID = node.ID
	return r
}

// code creates an activation code for the room.
func (r *rig) code() string {
	r.t.Helper()
	var nc console.NewCode
	r.fleet.Must(r.con.Do(http.MethodPost, "/api/v1/enrollment-codes", map[string]any{"roomId": r.roomID, "lifetimeMinutes": 60}, &nc),
		http.StatusCreated, "create code")
	return nc.Code
}

// startRoom runs roomd with its state in stateDir, managed by the fleet at
// server (fleetd itself, or a proxy in front of it).
func (r *rig) startRoom(stateDir, server string) *roomdtest.Daemon {
	r.t.Helper()
	d := roomdtest.Launch(r.t, r.roomBin, roomdtest.Options{Config: func(c *config.Config) {
		c.Daemon.StateDir = stateDir
		c.Fleet.Server = server
		c.Fleet.CAFile = r.fleet.CAFile()
		c.Fleet.Identity = "file"
	}})
	if err := d.WaitReady(roomdtest.ReadyTimeout); err != nil {
		r.t.Fatalf("roomd: %v\n%s", err, d.Log())
	}
	return d
}

func enroll(t *testing.T, d *roomdtest.Daemon, code string) apiv1.FleetStatus {
	t.Helper()
	st, err := d.Client.FleetEnroll(roomdtest.Context(t, 30*time.Second), apiv1.FleetEnrollRequest{Code: code})
	if err != nil {
		t.Fatalf("enroll: %v\n--- roomd ---\n%s", err, d.Log())
	}
	if !st.Enrolled || st.DeviceID == "" {
		t.Fatalf("enroll answered %+v", st)
	}
	return st
}

func (r *rig) device(id string) console.DeviceDetail {
	r.t.Helper()
	var dd console.DeviceDetail
	r.fleet.Must(r.con.Do(http.MethodGet, "/api/v1/devices/"+id, nil, &dd), http.StatusOK, "device "+id)
	return dd
}

func (r *rig) command(id string) console.CommandView {
	r.t.Helper()
	var cv console.CommandView
	r.fleet.Must(r.con.Do(http.MethodGet, "/api/v1/commands/"+id, nil, &cv), http.StatusOK, "command "+id)
	return cv
}

func (r *rig) sendCommand(deviceID, kind string, args any) console.CommandView {
	r.t.Helper()
	body := map[string]any{"kind": kind}
	if args != nil {
		body["args"] = args
	}
	var cv console.CommandView
	r.fleet.Must(r.con.Do(http.MethodPost, "/api/v1/devices/"+deviceID+"/commands", body, &cv), http.StatusCreated, "command "+kind)
	return cv
}

func (r *rig) setProfile(kind, id string, body string) {
	r.t.Helper()
	var cur console.ProfileView
	r.fleet.Must(r.con.Do(http.MethodGet, "/api/v1/profiles/"+kind+"/"+id, nil, &cur), http.StatusOK, "read profile")
	r.fleet.Must(r.con.Do(http.MethodPut, "/api/v1/profiles/"+kind+"/"+id,
		console.ProfileRequest{BaseVersion: cur.Current.Version, Body: json.RawMessage(body)}, nil), http.StatusOK, "save profile")
}

// waitFor polls cond until it holds or timeout passes.
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

func fleetStatus(t *testing.T, d *roomdtest.Daemon) apiv1.FleetStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := d.Client.Fleet(ctx)
	if err != nil {
		t.Fatalf("fleet status: %v", err)
	}
	return st
}

// failJoin makes roomd fail one meeting (a Janus that refuses the
// connection): one "meeting.failed" event for the fleet's history.
func failJoin(t *testing.T, d *roomdtest.Daemon) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := d.Client.Join(ctx, "janus+ws://127.0.0.1:1/?room=1")
	if err == nil {
		t.Fatal("a join to a closed port succeeded")
	}
	waitFor(t, 20*time.Second, "meeting failed", func() bool {
		st, err := d.Client.Status(ctx)
		return err == nil && st.Meeting.State == apiv1.MeetingFailed
	})
}

func countEvents(evs []console.EventView, typ string) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func describeEvents(evs []console.EventView) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s %s %s\n", e.At.Format(time.TimeOnly), e.Type, e.Message)
	}
	return b.String()
}

func ctxFor(t *testing.T) context.Context { return roomdtest.Context(t, 10*time.Second) }
