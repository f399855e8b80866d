package apiv1

import "time"

// EventUpdateChanged carries an UpdateStatus whenever the update engine's
// state, progress or deferral changes.
const EventUpdateChanged EventType = "update.changed"

// Update states (UpdateStatus.State): the update engine's. Committed,
// rolled-back and failed end an update; the others are under way.
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

// Why an offered update waits (UpdateStatus.Deferred).
const (
	DeferredWindow  = "maintenance-window" // outside the maintenance window
	DeferredMeeting = "meeting"            // a meeting is under way
)

// UpdateStatus is the answer of GET /update: the room's software updates.
type UpdateStatus struct {
	// Enabled says roomd runs its update engine; Disabled says why not
	// (no [update] section, no trusted root, no fleet…).
	Enabled  bool   `json:"enabled"`
	Disabled string `json:"disabled,omitempty"`
	// Hardware is the device's hardware ID, which an image must list.
	Hardware string `json:"hardware,omitempty"`
	// Running is the version of the image running now; Slot its A/B slot.
	Running string `json:"running"`
	Slot    string `json:"slot,omitempty"`
	// State is the update engine's state (the Update* constants).
	State string `json:"state"`
	// Rollout, Target and Version name the update under way or last
	// finished.
	Rollout string `json:"rollout,omitempty"`
	Target  string `json:"target,omitempty"`
	Version string `json:"version,omitempty"`
	// Written and Length are the download's progress in bytes.
	Written int64 `json:"written,omitempty"`
	Length  int64 `json:"length,omitempty"`
	// Reason says why the last update failed, rolled back or was refused.
	Reason string `json:"reason,omitempty"`
	// Deferred says why an offered update waits: DeferredWindow (until
	// NextWindow) or DeferredMeeting.
	Deferred   string    `json:"deferred,omitempty"`
	NextWindow time.Time `json:"nextWindow,omitzero"`
	// NeverRetry lists versions that failed on this room and are never
	// installed again; SecurityFloor is the lowest security version it
	// accepts.
	NeverRetry    []string `json:"neverRetry,omitempty"`
	SecurityFloor int      `json:"securityFloor"`
}
