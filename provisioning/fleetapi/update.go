package fleetapi

import (
	"errors"
	"fmt"
	"time"
)

// Updates follow Uptane's split of duties: the fleet decides which image a
// device should run (an UpdateOffer from a rollout), and the release's TUF
// repository proves the image is genuine. A device installs an offered
// target only when its own TUF client lists it for its hardware, so a
// compromised fleet server can withhold updates but never make a device
// install anything the release keys did not sign.

// PathUpdates is where fleetd serves the TUF repository of releases (plain
// static files: PathUpdates+"metadata/…" and PathUpdates+"targets/…"),
// behind the same mTLS as the check-in.
const PathUpdates = "/device/v1/updates/"

// UpdateOffer is the fleet's choice of image for one device.
type UpdateOffer struct {
	// Rollout identifies the rollout that made the offer; the device
	// echoes it in UpdateStatus.
	Rollout string `json:"rollout"`
	// Target is the image's TUF target name.
	Target string `json:"target"`
	// Version is the image's version, as the release's metadata says (the
	// device believes only its TUF metadata).
	Version string `json:"version"`
	// Repository is the base URL of the TUF repository. A relative URL
	// (normally PathUpdates) resolves against the fleet server's URL.
	Repository string `json:"repository"`
	// Window limits installing and rebooting to a daily maintenance window
	// in the device's local time; nil means at any time (an urgent
	// rollout). Either way the device never installs or reboots during a
	// meeting.
	Window *MaintenanceWindow `json:"window,omitempty"`
}

// MaintenanceWindow is a daily period in the device's local time zone
// (the one its profile sets). End before Start wraps past midnight
// ("22:00"–"04:00"); Start equal to End is the whole day.
type MaintenanceWindow struct {
	Start string `json:"start"` // "HH:MM", 24-hour
	End   string `json:"end"`   // "HH:MM", 24-hour
}

// DefaultMaintenanceWindow is the window of a site that has not set one:
// the small hours, when rooms are empty.
func DefaultMaintenanceWindow() MaintenanceWindow {
	return MaintenanceWindow{Start: "02:00", End: "05:00"}
}

// ErrBadWindow is wrapped by every MaintenanceWindow validation error.
var ErrBadWindow = errors.New("invalid maintenance window")

// parseClock reads "HH:MM" as minutes after midnight.
func parseClock(field, s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, fmt.Errorf("%w: %s %q is not a 24-hour HH:MM time", ErrBadWindow, field, s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Validate checks both times.
func (w MaintenanceWindow) Validate() error {
	if _, err := parseClock("start", w.Start); err != nil {
		return err
	}
	_, err := parseClock("end", w.End)
	return err
}

// bounds returns the window's start and end in minutes after midnight.
func (w MaintenanceWindow) bounds() (start, end int, err error) {
	if start, err = parseClock("start", w.Start); err != nil {
		return 0, 0, err
	}
	end, err = parseClock("end", w.End)
	return start, end, err
}

// Contains reports whether t (in its own location) is inside the window.
// An invalid window contains nothing.
func (w MaintenanceWindow) Contains(t time.Time) bool {
	start, end, err := w.bounds()
	if err != nil {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	switch {
	case start == end:
		return true
	case start < end:
		return m >= start && m < end
	default: // wraps past midnight
		return m >= start || m < end
	}
}

// Next returns t if t is inside the window, else the window's next start
// after t, in t's location. Days are counted on the calendar, so a
// daylight-saving change moves the instant, not the local time. An invalid
// window yields the zero time.
func (w MaintenanceWindow) Next(t time.Time) time.Time {
	start, _, err := w.bounds()
	if err != nil {
		return time.Time{}
	}
	if w.Contains(t) {
		return t
	}
	y, mo, d := t.Date()
	next := time.Date(y, mo, d, start/60, start%60, 0, 0, t.Location())
	if !next.After(t) {
		next = time.Date(y, mo, d+1, start/60, start%60, 0, 0, t.Location())
	}
	return next
}

// UpdateStatus is a device's update state in every check-in. The fleet
// derives each device's rollout status from it.
type UpdateStatus struct {
	// Hardware is the device's hardware ID, which a release's images must
	// list.
	Hardware string `json:"hardware"`
	// Running is the version of the image the device runs.
	Running string `json:"running"`
	// Slot is the A/B slot it runs from ("a" or "b").
	Slot string `json:"slot,omitempty"`
	// State is the update engine's state: one of the Update* constants.
	State string `json:"state"`
	// Rollout is the rollout whose offer State is about ("" when idle).
	Rollout string `json:"rollout,omitempty"`
	// Version is the version being installed, or the last one finished.
	Version string `json:"version,omitempty"`
	// Written and Length are the install's progress in bytes.
	Written int64 `json:"written,omitempty"`
	Length  int64 `json:"length,omitempty"`
	// Reason says why the last update failed or was rolled back, or why an
	// offer was refused.
	Reason string `json:"reason,omitempty"`
	// Deferred says why the device is waiting: DeferredWindow or
	// DeferredMeeting; "" when it is not.
	Deferred string `json:"deferred,omitempty"`
	// NextWindow is when the maintenance window next opens, while
	// Deferred is DeferredWindow.
	NextWindow time.Time `json:"nextWindow,omitzero"`
	// NeverRetry lists versions the device refuses for good: they failed
	// to boot or failed the health gate.
	NeverRetry []string `json:"neverRetry,omitempty"`
	// SecurityFloor is the lowest security version the device accepts.
	SecurityFloor int `json:"securityFloor"`
}

// Update states (UpdateStatus.State), the device's update engine states.
// Committed, rolled-back and failed end an update; the rest are under way.
const (
	UpdateIdle        = "idle"
	UpdateChecking    = "checking"
	UpdateDownloading = "downloading"
	UpdateInstalling  = "installing"
	UpdateRebooting   = "rebooting"
	UpdateVerifying   = "verifying"
	UpdateCommitted   = "committed"
	UpdateRolledBack  = "rolled-back"
	UpdateFailed      = "failed"
)

// Why a device waits with an offered update.
const (
	DeferredWindow  = "maintenance-window" // outside the maintenance window
	DeferredMeeting = "meeting"            // a meeting is under way
)
