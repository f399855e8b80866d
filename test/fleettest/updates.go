package fleettest

import (
	"bytes"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/console"
	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
)

// Room is a room made in the console for one device to enroll into.
type Room struct {
	OrgID, SiteID, RoomID string
	// Code is an activation code for the room, valid for two hours.
	Code string
}

// NewRoom creates an organisation, a site and a room through the console,
// and an activation code for the room.
func (f *Fleetd) NewRoom(c *Console, org, site, room string) Room {
	f.t.Helper()
	var r Room
	var node console.Node
	f.Must(c.Do(http.MethodPost, "/api/v1/orgs", map[string]string{"name": org}, &node), http.StatusCreated, "create org")
	r.OrgID = node.ID
	f.Must(c.Do(http.MethodPost, "/api/v1/orgs/"+r.OrgID+"/sites", map[string]string{"name": site}, &node), http.StatusCreated, "create site")
	r.SiteID = node.ID
	f.Must(c.Do(http.MethodPost, "/api/v1/sites/"+r.SiteID+"/rooms", map[string]string{"name": room}, &node), http.StatusCreated, "create room")
	r.RoomID = node.ID
	var nc console.NewCode
	f.Must(c.Do(http.MethodPost, "/api/v1/enrollment-codes", map[string]any{"roomId": r.RoomID, "lifetimeMinutes": 120}, &nc),
		http.StatusCreated, "create code")
	r.Code = nc.Code
	return r
}

// Release runs `fleetd release ARGS…` with the fleetd binary and returns
// its standard output. A release repository is made before the fleetd
// that serves it starts, hence no *Fleetd.
func Release(t testing.TB, binary string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"release"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fleetd release %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// Rollout starts an immediate rollout of target to the whole organisation:
// one ring of 100 %, no soak, halted when half the devices fail.
func (f *Fleetd) Rollout(c *Console, orgID, target string) console.RolloutView {
	f.t.Helper()
	var rv console.RolloutView
	f.Must(c.Do(http.MethodPost, "/api/v1/rollouts", map[string]any{
		"orgId": orgID, "target": target, "rings": []rollout.Ring{{Name: "everyone", Percent: 100}},
		"failureThreshold": 50, "soakMinutes": 0, "immediate": true,
	}, &rv), http.StatusCreated, "create rollout of "+target)
	return rv
}

// RolloutDetail is the console's page of rollout id.
func (f *Fleetd) RolloutDetail(c *Console, id string) console.RolloutDetail {
	f.t.Helper()
	var rd console.RolloutDetail
	f.Must(c.Do(http.MethodGet, "/api/v1/rollouts/"+id, nil, &rd), http.StatusOK, "rollout "+id)
	return rd
}

// WaitRollout polls rollout id until it is in state.
func (f *Fleetd) WaitRollout(c *Console, id, state string, timeout time.Duration) console.RolloutDetail {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rd := f.RolloutDetail(c, id)
		if rd.Rollout.State == state {
			return rd
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("rollout %s: %s (%s), want %s within %s; devices %+v\n--- fleetd ---\n%s",
				id, rd.Rollout.State, rd.Rollout.Reason, state, timeout, rd.Devices, f.Log())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Must fails the test, with fleetd's log, when a console call (what)
// answered status rather than want.
func (f *Fleetd) Must(status, want int, what string) {
	f.t.Helper()
	if status != want {
		f.t.Fatalf("%s: HTTP %d, want %d\n--- fleetd ---\n%s", what, status, want, f.Log())
	}
}
