package rollout

import (
	"fmt"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// DefaultOfflineGrace is how long a device may go without checking in
// before it stops holding its ring back.
const DefaultOfflineGrace = 24 * time.Hour

// Member is one device in a rollout's scope, as the evaluation sees it.
type Member struct {
	DeviceID string
	Ring     int       // RingOf for this rollout
	LastSeen time.Time // last check-in; zero when it never checked in
	// Device is the update status of its latest check-in (nil when it
	// reported none: it cannot update itself).
	Device *fleetapi.UpdateStatus
	// Status is the latest status it reported about this rollout (nil:
	// none yet, "pending").
	Status *fleetapi.UpdateStatus
}

// Outcome is where one member stands in a rollout.
type Outcome int

const (
	// Pending: the device should still update (or is updating).
	Pending Outcome = iota
	// Updated: it committed the version, or runs it already.
	Updated
	// FailedUpdate: it failed or rolled back this rollout's version.
	FailedUpdate
	// Skipped: it cannot take the release (no update support, other
	// hardware, the version refused for good, below its security floor).
	Skipped
	// Offline: pending, but not seen within the offline grace.
	Offline
)

var outcomeNames = [...]string{"pending", "updated", "failed", "skipped", "offline"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Done reports whether the outcome no longer holds a ring back.
func (o Outcome) Done() bool { return o != Pending }

// OutcomeOf classifies one member at now.
func OutcomeOf(v View, rel Release, m Member, now time.Time, grace time.Duration) Outcome {
	if m.Status != nil && m.Status.Rollout == v.ID {
		switch {
		case Failed(m.Status.State):
			return FailedUpdate
		case m.Status.State == fleetapi.UpdateCommitted:
			return Updated
		}
	}
	if m.Device != nil && m.Device.Running == v.Version {
		return Updated
	}
	if m.LastSeen.IsZero() || now.Sub(m.LastSeen) > grace {
		return Offline
	}
	if !Eligible(rel, m.Device) {
		return Skipped
	}
	return Pending
}

// Action is what an evaluation asks of the store.
type Action int

const (
	Wait     Action = iota // nothing to change
	Advance                // open the next ring
	Halt                   // stop: too many failures
	Complete               // the last ring is done
)

var actionNames = [...]string{"wait", "advance", "halt", "complete"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Decision is an evaluation's result: the action and the reason a person
// reads in the console (empty for Wait).
type Decision struct {
	Action Action
	Reason string
}

// Evaluate decides what a running rollout does next, given every member
// of its scope. In order:
//   - Halt when, in any open ring, the failed share of its devices is
//     above FailureThreshold percent, and more devices have failed than
//     when a person last resumed it.
//   - Otherwise, once every member of the open rings is done (updated,
//     failed, skipped, or offline longer than grace) and the open ring
//     has soaked SoakMinutes: Advance, or Complete after the last ring.
//
// A rollout that is not running always gets Wait.
func Evaluate(v View, rel Release, members []Member, now time.Time, grace time.Duration) Decision {
	if v.State != StateRunning || v.Ring < 0 || v.Ring >= len(v.Rings) {
		return Decision{Action: Wait}
	}
	type tally struct{ members, failed int }
	rings := make([]tally, len(v.Rings))
	counts := make(map[Outcome]int)
	allDone, totalFailed := true, 0
	for _, m := range members {
		if m.Ring < 0 || m.Ring > v.Ring {
			continue
		}
		o := OutcomeOf(v, rel, m, now, grace)
		counts[o]++
		rings[m.Ring].members++
		if o == FailedUpdate {
			rings[m.Ring].failed++
			totalFailed++
		}
		allDone = allDone && o.Done()
	}
	if totalFailed > v.AcceptedFailures {
		for i, t := range rings[:v.Ring+1] {
			if t.members > 0 && t.failed*100 > v.FailureThreshold*t.members {
				return Decision{Action: Halt, Reason: fmt.Sprintf("ring %s: %d of %d devices failed (threshold %d%%)",
					v.Rings[i].Name, t.failed, t.members, v.FailureThreshold)}
			}
		}
	}
	soaked := !now.Before(v.RingOpened.Add(time.Duration(v.SoakMinutes) * time.Minute))
	if !allDone || !soaked {
		return Decision{Action: Wait}
	}
	summary := fmt.Sprintf("%d updated, %d failed, %d skipped, %d offline",
		counts[Updated], counts[FailedUpdate], counts[Skipped], counts[Offline])
	if v.Ring == len(v.Rings)-1 {
		return Decision{Action: Complete, Reason: fmt.Sprintf("all rings done: %s", summary)}
	}
	return Decision{Action: Advance, Reason: fmt.Sprintf("ring %s done (%s); ring %s opens",
		v.Rings[v.Ring].Name, summary, v.Rings[v.Ring+1].Name)}
}
