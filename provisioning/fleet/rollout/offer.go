package rollout

import (
	"fmt"
	"slices"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// Rollout states. The store keeps them; these are their spellings.
const (
	StateRunning   = "running"   // offers are made and rings advance
	StatePaused    = "paused"    // stopped by a person; resumable
	StateHalted    = "halted"    // stopped by too many failures; resumable
	StateAborted   = "aborted"   // ended by a person
	StateCompleted = "completed" // every ring done
)

// Active reports whether a rollout in this state still holds its
// organisation's one slot (running, paused or halted).
func Active(state string) bool {
	return state == StateRunning || state == StatePaused || state == StateHalted
}

// View is what the offer and the evaluation need of a rollout.
type View struct {
	ID               string
	Target, Version  string
	Rings            []Ring
	Ring             int       // index of the ring open now
	RingOpened       time.Time // when it opened
	FailureThreshold int       // percent of a ring's devices
	SoakMinutes      int
	Immediate        bool
	State            string
	// AcceptedFailures is how many devices had failed when a person last
	// resumed the rollout from a halt: the threshold halts it again only
	// once a further device fails.
	AcceptedFailures int
}

// Final reports whether an update state ends an update.
func Final(state string) bool {
	return state == fleetapi.UpdateCommitted || state == fleetapi.UpdateFailed || state == fleetapi.UpdateRolledBack
}

// Failed reports whether an update state is a failure (failed to install,
// or rolled back after a reboot).
func Failed(state string) bool {
	return state == fleetapi.UpdateFailed || state == fleetapi.UpdateRolledBack
}

// Eligible reports whether a device that reported st can take the release
// at all: it updates itself, the release lists its hardware, the version
// is not one it refuses for good, and the release's security version is
// not below its floor. A device that is not eligible is never offered the
// release and does not hold a ring back.
func Eligible(rel Release, st *fleetapi.UpdateStatus) bool {
	return Ineligible(rel, st) == ""
}

// Ineligible says, for people, why a device can never take rel, or ""
// when it can: Eligible's rules with their reasons.
func Ineligible(rel Release, st *fleetapi.UpdateStatus) string {
	switch {
	case st == nil || st.State == "":
		return "it reports no update state (it cannot update itself, or has not checked in since it could)"
	case !rel.RunsOn(st.Hardware):
		return fmt.Sprintf("the release is not built for its hardware %q", st.Hardware)
	case slices.Contains(st.NeverRetry, rel.Version):
		return rel.Version + " failed on it before: it never retries that version"
	case rel.SecurityVersion < st.SecurityFloor:
		return fmt.Sprintf("the release's security version %d is below the device's floor %d", rel.SecurityVersion, st.SecurityFloor)
	}
	return ""
}

// Offer decides what a device is offered on a check-in. st is the update
// status it reports now (nil from a device that cannot update itself);
// failedBefore says whether the fleet already holds a failure or rollback
// of this device for this rollout; window is the maintenance window of
// the device's site. It returns nil when the device gets no offer: the
// rollout is not running, the device's ring has not opened, it runs the
// version already, it is not eligible, or it failed this rollout before
// (never retried).
func Offer(v View, rel Release, deviceID string, st *fleetapi.UpdateStatus, failedBefore bool, window fleetapi.MaintenanceWindow) *fleetapi.UpdateOffer {
	switch {
	case v.State != StateRunning, rel.Target != v.Target, failedBefore, st == nil:
		return nil
	case st.Running == v.Version, !Eligible(rel, st):
		return nil
	case st.Rollout == v.ID && Failed(st.State):
		return nil
	}
	ring := RingOf(v.Rings, v.ID, deviceID)
	if ring < 0 || ring > v.Ring {
		return nil
	}
	o := &fleetapi.UpdateOffer{Rollout: v.ID, Target: v.Target, Version: v.Version, Repository: fleetapi.PathUpdates}
	if !v.Immediate {
		w := window
		o.Window = &w
	}
	return o
}
