package engine

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/atriumroom/atrium/ota/bootctl"
)

// State is a step of the update state machine; its string is the file
// format.
type State string

// The states. See the package documentation for the transitions.
const (
	StateIdle        State = "idle"
	StateChecking    State = "checking"
	StateDownloading State = "downloading"
	StateInstalling  State = "installing"
	StateRebooting   State = "rebooting"
	StateVerifying   State = "verifying"
	StateCommitted   State = "committed"
	StateRolledBack  State = "rolled-back"
	StateFailed      State = "failed"
)

func (s State) valid() bool {
	switch s {
	case StateIdle, StateChecking, StateDownloading, StateInstalling, StateRebooting,
		StateVerifying, StateCommitted, StateRolledBack, StateFailed:
		return true
	}
	return false
}

// settled reports whether no update is under way, so a new offer is
// welcome.
func (s State) settled() bool {
	switch s {
	case StateIdle, StateCommitted, StateRolledBack, StateFailed:
		return true
	}
	return false
}

// Target is the image the fleet chose, as TUF vouched for it (from
// release.Target: Name, Meta.Version, Meta.SecurityVersion,
// Meta.BuildTime, SHA256, Length, URL).
type Target struct {
	Name            string    `json:"name"`
	Version         string    `json:"version"`
	SecurityVersion int       `json:"security_version"`
	BuildTime       time.Time `json:"build_time"`
	SHA256          Hash      `json:"sha256"`
	Length          int64     `json:"length"`
	URL             string    `json:"url"`
	// Delta, when set, is a delta TUF lists from the image in the running
	// slot to this one: fetched instead of the image when it can be.
	Delta *Delta `json:"delta,omitempty"`
}

// Delta is a binary delta to a Target from the release the device runs
// (from release.DeltaTarget: Name, Meta.BaseVersion, Length, SHA256, URL).
type Delta struct {
	Name        string `json:"name"`
	BaseVersion string `json:"base_version"`
	Length      int64  `json:"length"`
	SHA256      Hash   `json:"sha256"`
	URL         string `json:"url"`
}

func (t Target) check() error {
	switch {
	case t.Name == "":
		return fmt.Errorf("target: no name: %w", ErrInvalidTarget)
	case t.Version == "":
		return fmt.Errorf("target %s: no version: %w", t.Name, ErrInvalidTarget)
	case t.URL == "":
		return fmt.Errorf("target %s: no URL: %w", t.Name, ErrInvalidTarget)
	case t.Length <= 0:
		return fmt.Errorf("target %s: length %d: %w", t.Name, t.Length, ErrInvalidTarget)
	case t.SecurityVersion < 0:
		return fmt.Errorf("target %s: security version %d: %w", t.Name, t.SecurityVersion, ErrInvalidTarget)
	case t.Delta != nil && (t.Delta.Name == "" || t.Delta.URL == "" || t.Delta.Length <= 0):
		return fmt.Errorf("target %s: delta %q (length %d, URL %q): %w", t.Name, t.Delta.Name, t.Delta.Length, t.Delta.URL, ErrInvalidTarget)
	}
	return nil
}

// same reports whether u is t. Not ==: a build time read back from the
// state file carries a different location than the caller's. The delta
// is left out: it is one way of fetching the image, and one found
// unusable is dropped from the record while the fleet still offers it.
func (t Target) same(u Target) bool {
	return t.Name == u.Name && t.Version == u.Version && t.SecurityVersion == u.SecurityVersion &&
		t.BuildTime.Equal(u.BuildTime) && t.SHA256 == u.SHA256 && t.Length == u.Length && t.URL == u.URL
}

// Hash is a SHA-256 digest, hex in JSON.
type Hash [32]byte

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("sha256 %q: want 64 hex digits", b)
	}
	_, err := hex.Decode(h[:], b)
	if err != nil {
		return fmt.Errorf("sha256 %q: %w", b, err)
	}
	return nil
}

// Record is the state file's content. Field names are the file format.
type Record struct {
	State State `json:"state"`
	// Target is the update under way or last finished; nil in idle.
	Target *Target `json:"target,omitempty"`
	// Slot is the slot the target is written to: the one not running
	// when it was offered.
	Slot bootctl.Slot `json:"slot,omitempty"`
	// Written is the install progress: bytes synced to the slot.
	Written int64 `json:"written"`
	// Attempts counts failed install attempts for the target.
	Attempts int `json:"attempts"`
	// Reason says why the last update failed or rolled back.
	Reason string `json:"reason,omitempty"`
	// NeverRetry lists versions that failed to boot or the health gate.
	NeverRetry []string `json:"never_retry,omitempty"`
	// SecurityFloor is the highest security version committed.
	SecurityFloor int `json:"security_floor"`
	// LastTrusted is the latest time the device has reason to believe
	// has passed: the clock at a transition, or a committed image's build
	// time. A clock reading earlier than this (an RTC back in 1970) is
	// not believed.
	LastTrusted time.Time `json:"last_trusted"`
	// Updated is the (trusted) time of the last transition.
	Updated time.Time `json:"updated"`
	// SlotVersions is the version each slot holds as far as the engine
	// knows: set when an update commits, removed when a slot starts to be
	// overwritten. A slot absent here holds what the device image shipped
	// (the running system's os-release says which version that is).
	SlotVersions map[bootctl.Slot]string `json:"slot_versions,omitempty"`
}

func (r Record) check() error {
	if !r.State.valid() {
		return fmt.Errorf("state %q unknown", r.State)
	}
	if r.State != StateIdle {
		if r.Target == nil {
			return fmt.Errorf("state %s without a target", r.State)
		}
		if err := r.Target.check(); err != nil {
			return err
		}
		if _, err := bootctl.ParseSlot(string(r.Slot)); err != nil {
			return fmt.Errorf("state %s: %w", r.State, err)
		}
	}
	if r.Target != nil && (r.Written < 0 || r.Written > r.Target.Length) {
		return fmt.Errorf("written %d outside 0..%d", r.Written, r.Target.Length)
	}
	for slot, v := range r.SlotVersions {
		if _, err := bootctl.ParseSlot(string(slot)); err != nil || v == "" {
			return fmt.Errorf("slot_versions: slot %q version %q", slot, v)
		}
	}
	if r.Attempts < 0 || r.SecurityFloor < 0 {
		return fmt.Errorf("attempts %d, security floor %d: negative", r.Attempts, r.SecurityFloor)
	}
	return nil
}

func (r Record) neverRetry(version string) bool { return slices.Contains(r.NeverRetry, version) }

func (r *Record) addNeverRetry(version string) {
	if !r.neverRetry(version) {
		r.NeverRetry = append(r.NeverRetry, version)
	}
}

func (r Record) clone() Record {
	r.NeverRetry = slices.Clone(r.NeverRetry)
	r.SlotVersions = maps.Clone(r.SlotVersions)
	if r.Target != nil {
		t := *r.Target
		if t.Delta != nil {
			d := *t.Delta
			t.Delta = &d
		}
		r.Target = &t
	}
	return r
}

// salvage keeps what a corrupt state file still says about the two
// safety lists: the never-retry set and the security floor. Each field
// is decoded on its own so that one bad field does not lose the others.
func salvage(data []byte) Record {
	r := Record{State: StateIdle}
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return r
	}
	var nr []string
	if json.Unmarshal(fields["never_retry"], &nr) == nil {
		for _, v := range nr {
			if v != "" {
				r.addNeverRetry(v)
			}
		}
	}
	var floor int
	if json.Unmarshal(fields["security_floor"], &floor) == nil && floor > 0 {
		r.SecurityFloor = floor
	}
	var lt time.Time
	if json.Unmarshal(fields["last_trusted"], &lt) == nil {
		r.LastTrusted = lt
	}
	return r
}
