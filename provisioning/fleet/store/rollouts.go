package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/atriumroom/atrium/ota/release"
	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// This file holds over-the-air updates: rollouts, each device's update
// status, and the sites' maintenance windows. The decisions (rings, the
// offer, advance and halt) are the rollout package's; this file keeps
// their state and applies them in transactions.

// RolloutState is a rollout's state.
type RolloutState string

// Rollout states. Running, paused and halted are active: an organisation
// has at most one active rollout.
const (
	RolloutRunning   RolloutState = rollout.StateRunning
	RolloutPaused    RolloutState = rollout.StatePaused
	RolloutHalted    RolloutState = rollout.StateHalted
	RolloutAborted   RolloutState = rollout.StateAborted
	RolloutCompleted RolloutState = rollout.StateCompleted
)

// Active reports whether the state holds the organisation's one slot.
func (s RolloutState) Active() bool { return rollout.Active(string(s)) }

// Rollout is one release rolled out to an organisation (or one of its
// sites) ring by ring.
type Rollout struct {
	ID     string
	OrgID  string
	SiteID string // "" = the whole organisation
	// Target and Version name the release (its TUF target name and the
	// version its metadata gives).
	Target, Version string
	Rings           []rollout.Ring
	Ring            int       // index of the ring open now
	RingOpened      time.Time // when it opened
	// FailureThreshold is the percent of a ring's devices that may fail
	// or roll back before the rollout halts by itself.
	FailureThreshold int
	// SoakMinutes is how long a ring stays open, at least, before the
	// next one opens.
	SoakMinutes int
	// Immediate ignores the maintenance windows (rooms still never update
	// during a meeting).
	Immediate bool
	State     RolloutState
	Reason    string // why it halted, was aborted or completed
	// AcceptedFailures is how many devices had failed when it was last
	// resumed from a halt; only a further failure halts it again.
	AcceptedFailures int
	CreatedBy        string
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// View is the rollout as the rollout package's logic takes it.
func (r Rollout) View() rollout.View {
	return rollout.View{
		ID: r.ID, Target: r.Target, Version: r.Version, Rings: r.Rings, Ring: r.Ring,
		RingOpened: r.RingOpened, FailureThreshold: r.FailureThreshold, SoakMinutes: r.SoakMinutes,
		Immediate: r.Immediate, State: string(r.State), AcceptedFailures: r.AcceptedFailures,
	}
}

// NewRollout is what CreateRollout needs. Rings nil means
// rollout.DefaultRings.
type NewRollout struct {
	OrgID, SiteID    string
	Target, Version  string
	Rings            []rollout.Ring
	FailureThreshold int // percent, 0 to 100
	SoakMinutes      int // 0 to MaxSoakMinutes
	Immediate        bool
}

// Bounds of a rollout's fields.
const (
	MaxSoakMinutes   = 7 * 24 * 60
	MaxVersionLength = 64
)

// Validate checks a new rollout's fields (not that the organisation,
// site or release exist) and names the first bad one.
func (nr NewRollout) Validate() error {
	switch {
	case nr.OrgID == "":
		return fmt.Errorf("organisation: required: %w", ErrInvalid)
	case release.ValidName(nr.Target) != nil:
		return fmt.Errorf("target: %v: %w", release.ValidName(nr.Target), ErrInvalid)
	case nr.Version == "" || len(nr.Version) > MaxVersionLength || !utf8.ValidString(nr.Version) ||
		strings.ContainsFunc(nr.Version, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return fmt.Errorf("version: %q must be 1 to %d printable characters: %w", nr.Version, MaxVersionLength, ErrInvalid)
	case nr.FailureThreshold < 0 || nr.FailureThreshold > 100:
		return fmt.Errorf("failure threshold: %d is not a percent from 0 to 100: %w", nr.FailureThreshold, ErrInvalid)
	case nr.SoakMinutes < 0 || nr.SoakMinutes > MaxSoakMinutes:
		return fmt.Errorf("soak minutes: %d is not from 0 to %d: %w", nr.SoakMinutes, MaxSoakMinutes, ErrInvalid)
	}
	if nr.Rings != nil {
		if err := rollout.ValidateRings(nr.Rings); err != nil {
			return fmt.Errorf("rings: %w: %w", err, ErrInvalid)
		}
	}
	return nil
}

// rolloutColumns is what scanRollout reads, in its order.
const rolloutColumns = `id, org_id, site_id, target, version, rings, ring, ring_opened, failure_threshold,
	soak_minutes, immediate, state, reason, accepted_failures, created_by, created_at, updated_at`

func scanRollout(sc interface{ Scan(...any) error }) (Rollout, error) {
	var r Rollout
	var site sql.NullString
	var rings, state string
	var opened, created, updated int64
	var immediate int
	if err := sc.Scan(&r.ID, &r.OrgID, &site, &r.Target, &r.Version, &rings, &r.Ring, &opened,
		&r.FailureThreshold, &r.SoakMinutes, &immediate, &state, &r.Reason, &r.AcceptedFailures,
		&r.CreatedBy, &created, &updated); err != nil {
		return Rollout{}, err
	}
	if err := json.Unmarshal([]byte(rings), &r.Rings); err != nil {
		return Rollout{}, fmt.Errorf("rollout %s: stored rings: %w", r.ID, err)
	}
	r.SiteID, r.Immediate, r.State = site.String, immediate != 0, RolloutState(state)
	r.RingOpened, r.CreatedAt, r.UpdatedAt = fromMicro(opened), fromMicro(created), fromMicro(updated)
	return r, nil
}

// CreateRollout starts a rollout, running, with its first ring open. It
// is [ErrInvalid] for bad fields or a site outside the organisation,
// [ErrNotFound] for an unknown organisation or site, and [ErrConflict]
// when the organisation has an active rollout already. Audited. Whether
// the release exists is the caller's check (the store has no catalog).
func (s *Store) CreateRollout(ctx context.Context, actor string, nr NewRollout) (Rollout, error) {
	if nr.Rings == nil {
		nr.Rings = rollout.DefaultRings()
	}
	if err := nr.Validate(); err != nil {
		return Rollout{}, fmt.Errorf("create rollout: %w", err)
	}
	now := fromMicro(s.nowMicro())
	r := Rollout{
		ID: newID(), OrgID: nr.OrgID, SiteID: nr.SiteID, Target: nr.Target, Version: nr.Version,
		Rings: nr.Rings, RingOpened: now, FailureThreshold: nr.FailureThreshold, SoakMinutes: nr.SoakMinutes,
		Immediate: nr.Immediate, State: RolloutRunning, CreatedBy: actor, CreatedAt: now, UpdatedAt: now,
	}
	rings, err := json.Marshal(r.Rings)
	if err != nil {
		return Rollout{}, fmt.Errorf("create rollout: rings: %w", err)
	}
	err = s.inTx(ctx, func(t *tx) error {
		var orgName string
		if err := t.queryRow(ctx, `SELECT name FROM organisations WHERE id = ?`, r.OrgID).Scan(&orgName); err != nil {
			return fmt.Errorf("organisation %s: %w", r.OrgID, notFound(err))
		}
		if r.SiteID != "" {
			var siteOrg string
			if err := t.queryRow(ctx, `SELECT org_id FROM sites WHERE id = ?`, r.SiteID).Scan(&siteOrg); err != nil {
				return fmt.Errorf("site %s: %w", r.SiteID, notFound(err))
			}
			if siteOrg != r.OrgID {
				return fmt.Errorf("site %s is not in organisation %s: %w", r.SiteID, r.OrgID, ErrInvalid)
			}
		}
		var otherID, otherState string
		err := t.queryRow(ctx, `SELECT id, state FROM rollouts WHERE org_id = ? AND state IN ('running', 'paused', 'halted')`,
			r.OrgID).Scan(&otherID, &otherState)
		switch {
		case err == nil:
			return fmt.Errorf("organisation %q already has rollout %s (%s); abort it first: %w", orgName, otherID, otherState, ErrConflict)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		// The unique index on active rollouts still catches a concurrent
		// creation that passed the check above (as ErrConflict).
		if _, err := t.exec(ctx, `INSERT INTO rollouts (`+rolloutColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.OrgID, nullable(r.SiteID), r.Target, r.Version, string(rings), r.Ring, r.RingOpened.UnixMicro(),
			r.FailureThreshold, r.SoakMinutes, boolInt(r.Immediate), string(r.State), r.Reason, r.AcceptedFailures,
			r.CreatedBy, r.CreatedAt.UnixMicro(), r.UpdatedAt.UnixMicro()); err != nil {
			return err
		}
		return t.audit(ctx, actor, "rollout.create", "rollout:"+r.ID, nil, r)
	})
	if err != nil {
		return Rollout{}, fmt.Errorf("create rollout of %s: %w", nr.Target, err)
	}
	return r, nil
}

// Rollout returns one rollout.
func (s *Store) Rollout(ctx context.Context, id string) (Rollout, error) {
	r, err := scanRollout(s.queryRow(ctx, `SELECT `+rolloutColumns+` FROM rollouts WHERE id = ?`, id))
	if err != nil {
		return Rollout{}, fmt.Errorf("rollout %s: %w", id, notFound(err))
	}
	return r, nil
}

// Rollouts lists the rollouts of an organisation ("" for all), newest
// first.
func (s *Store) Rollouts(ctx context.Context, orgID string) ([]Rollout, error) {
	return s.listRollouts(ctx, fmt.Sprintf("list rollouts of %q", orgID),
		`SELECT `+rolloutColumns+` FROM rollouts WHERE ? = '' OR org_id = ? ORDER BY created_at DESC, id`, orgID, orgID)
}

// ActiveRollouts lists the rollouts that are running, paused or halted,
// oldest first: what fleetd's evaluation loop visits.
func (s *Store) ActiveRollouts(ctx context.Context) ([]Rollout, error) {
	return s.listRollouts(ctx, "list active rollouts",
		`SELECT `+rolloutColumns+` FROM rollouts WHERE state IN ('running', 'paused', 'halted') ORDER BY created_at, id`)
}

func (s *Store) listRollouts(ctx context.Context, op, q string, args ...any) ([]Rollout, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	var out []Rollout
	for rows.Next() {
		r, err := scanRollout(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// PauseRollout stops offers until it is resumed: running → paused.
// Devices cancel an update they have not yet armed. Any other state is
// [ErrConflict], and the error says the state.
func (s *Store) PauseRollout(ctx context.Context, actor, id string) (Rollout, error) {
	return s.transition(ctx, actor, id, "pause", func(t *tx, r *Rollout) error {
		if r.State != RolloutRunning {
			return fmt.Errorf("rollout is %s, not running: %w", r.State, ErrConflict)
		}
		r.State, r.Reason = RolloutPaused, ""
		return nil
	})
}

// ResumeRollout sets a paused or halted rollout running again. Resuming
// from a halt accepts the failures so far: the threshold halts it again
// only when a further device fails. Any other state is [ErrConflict].
func (s *Store) ResumeRollout(ctx context.Context, actor, id string) (Rollout, error) {
	return s.transition(ctx, actor, id, "resume", func(t *tx, r *Rollout) error {
		switch r.State {
		case RolloutPaused:
		case RolloutHalted:
			// Counted as the evaluation counts: devices not revoked.
			if err := t.queryRow(ctx, `SELECT COUNT(*) FROM rollout_devices rd JOIN devices d ON d.id = rd.device_id
				WHERE rd.rollout_id = ? AND rd.state IN (?, ?) AND d.revoked_at IS NULL`,
				r.ID, fleetapi.UpdateFailed, fleetapi.UpdateRolledBack).Scan(&r.AcceptedFailures); err != nil {
				return fmt.Errorf("count failures: %w", err)
			}
		default:
			return fmt.Errorf("rollout is %s, not paused or halted: %w", r.State, ErrConflict)
		}
		r.State, r.Reason = RolloutRunning, ""
		return nil
	})
}

// MaxReason bounds a rollout's reason.
const MaxReason = 1024

// AbortRollout ends an active rollout for good; reason ("" for none
// given) is kept with it. A rollout that has ended is [ErrConflict].
func (s *Store) AbortRollout(ctx context.Context, actor, id, reason string) (Rollout, error) {
	reason = strings.TrimSpace(reason)
	if len(reason) > MaxReason || !utf8.ValidString(reason) {
		return Rollout{}, fmt.Errorf("abort rollout %s: reason: at most %d bytes of UTF-8: %w", id, MaxReason, ErrInvalid)
	}
	if reason == "" {
		reason = "aborted by " + actor
	}
	return s.transition(ctx, actor, id, "abort", func(t *tx, r *Rollout) error {
		if !r.State.Active() {
			return fmt.Errorf("rollout is %s already: %w", r.State, ErrConflict)
		}
		r.State, r.Reason = RolloutAborted, reason
		return nil
	})
}

// transition changes one rollout in a transaction: change edits it (or
// refuses); the row is written back only if nobody changed it meanwhile,
// and audited as "rollout."+verb.
func (s *Store) transition(ctx context.Context, actor, id, verb string, change func(*tx, *Rollout) error) (Rollout, error) {
	var after Rollout
	err := s.inTx(ctx, func(t *tx) error {
		before, err := scanRollout(t.queryRow(ctx, `SELECT `+rolloutColumns+` FROM rollouts WHERE id = ?`, id))
		if err != nil {
			return notFound(err)
		}
		after = before
		if err := change(t, &after); err != nil {
			return err
		}
		return t.writeRollout(ctx, actor, "rollout."+verb, before, &after)
	})
	if err != nil {
		return Rollout{}, fmt.Errorf("%s rollout %s: %w", verb, id, err)
	}
	return after, nil
}

// writeRollout stores after's mutable fields over before, on the
// condition that the row is still before (a concurrent change makes it
// [ErrConflict]), and audits the change.
func (t *tx) writeRollout(ctx context.Context, actor, action string, before Rollout, after *Rollout) error {
	after.UpdatedAt = fromMicro(t.s.nowMicro())
	if !after.UpdatedAt.After(before.UpdatedAt) {
		// Keep updated_at strictly rising so it can serve as the row's
		// version even when the clock has not moved.
		after.UpdatedAt = before.UpdatedAt.Add(time.Microsecond)
	}
	res, err := t.exec(ctx, `UPDATE rollouts SET ring = ?, ring_opened = ?, state = ?, reason = ?, accepted_failures = ?,
		updated_at = ? WHERE id = ? AND updated_at = ?`,
		after.Ring, after.RingOpened.UnixMicro(), string(after.State), after.Reason, after.AcceptedFailures,
		after.UpdatedAt.UnixMicro(), before.ID, before.UpdatedAt.UnixMicro())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return fmt.Errorf("changed concurrently: %w", ErrConflict)
	}
	return t.audit(ctx, actor, action, "rollout:"+before.ID, before, *after)
}

// RolloutDevice is one device in a rollout's scope.
type RolloutDevice struct {
	DeviceID, RoomName, SiteName string
	Ring                         int       // index into the rollout's rings
	LastSeen                     time.Time // last check-in; zero before the first
	// Status is the latest status it reported about this rollout; zero
	// when it has not reported on it ("pending").
	Status    fleetapi.UpdateStatus
	UpdatedAt time.Time // when Status was stored; zero with it
	// Current is the update status of its latest check-in, whatever it
	// was about (zero when it sent none).
	Current fleetapi.UpdateStatus
}

// Member is the device as rollout.Evaluate takes it.
func (d RolloutDevice) Member() rollout.Member {
	m := rollout.Member{DeviceID: d.DeviceID, Ring: d.Ring, LastSeen: d.LastSeen}
	if d.Current.State != "" {
		cur := d.Current
		m.Device = &cur
	}
	if d.Status.State != "" {
		st := d.Status
		m.Status = &st
	}
	return m
}

// RolloutDevices lists every device in the rollout's scope (the
// organisation, or its site; revoked devices left out) by site, room and
// id, with its ring and statuses.
func (s *Store) RolloutDevices(ctx context.Context, id string) ([]RolloutDevice, error) {
	r, err := s.Rollout(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("rollout devices: %w", err)
	}
	rows, err := s.query(ctx, rolloutDevicesQuery, r.ID, r.OrgID, r.SiteID, r.SiteID)
	if err != nil {
		return nil, fmt.Errorf("rollout %s devices: %w", id, err)
	}
	out, err := scanRolloutDevices(rows, r)
	if err != nil {
		return nil, fmt.Errorf("rollout %s devices: %w", id, err)
	}
	return out, nil
}

const rolloutDevicesQuery = `SELECT d.id, rm.name, s.name, d.last_checkin, d.update_status, rd.status, rd.updated_at
	FROM devices d JOIN rooms rm ON rm.id = d.room_id JOIN sites s ON s.id = rm.site_id
	LEFT JOIN rollout_devices rd ON rd.rollout_id = ? AND rd.device_id = d.id
	WHERE s.org_id = ? AND (? = '' OR s.id = ?) AND d.revoked_at IS NULL
	ORDER BY s.name, rm.name, d.id`

func scanRolloutDevices(rows *sql.Rows, r Rollout) ([]RolloutDevice, error) {
	defer rows.Close()
	var out []RolloutDevice
	for rows.Next() {
		var d RolloutDevice
		var seen, updated sql.NullInt64
		var current string
		var status sql.NullString
		if err := rows.Scan(&d.DeviceID, &d.RoomName, &d.SiteName, &seen, &current, &status, &updated); err != nil {
			return nil, err
		}
		if seen.Valid {
			d.LastSeen = fromMicro(seen.Int64)
		}
		if updated.Valid {
			d.UpdatedAt = fromMicro(updated.Int64)
		}
		if current != "" {
			if err := json.Unmarshal([]byte(current), &d.Current); err != nil {
				return nil, fmt.Errorf("device %s: stored update status: %w", d.DeviceID, err)
			}
		}
		if status.Valid {
			if err := json.Unmarshal([]byte(status.String), &d.Status); err != nil {
				return nil, fmt.Errorf("device %s: stored rollout status: %w", d.DeviceID, err)
			}
		}
		d.Ring = rollout.RingOf(r.Rings, r.ID, d.DeviceID)
		out = append(out, d)
	}
	return out, rows.Err()
}

// EvaluateRollout runs rollout.Evaluate on a rollout and applies its
// decision in one transaction: open the next ring, halt, or complete,
// audited as actor "fleetd". rel is the rollout's release (its hardware
// decides which devices can take it); grace is how long a device may be
// offline before it stops holding a ring back. A rollout that is not
// running gets rollout.Wait and is left as it is. A concurrent change of
// the rollout is [ErrConflict] (try again later).
func (s *Store) EvaluateRollout(ctx context.Context, id string, rel rollout.Release, grace time.Duration) (Rollout, rollout.Decision, error) {
	var after Rollout
	var dec rollout.Decision
	err := s.inTx(ctx, func(t *tx) error {
		before, err := scanRollout(t.queryRow(ctx, `SELECT `+rolloutColumns+` FROM rollouts WHERE id = ?`, id))
		if err != nil {
			return notFound(err)
		}
		after = before
		if before.State != RolloutRunning {
			dec = rollout.Decision{Action: rollout.Wait}
			return nil
		}
		if rel.Target != before.Target {
			return fmt.Errorf("release %q is not the rollout's %q: %w", rel.Target, before.Target, ErrInvalid)
		}
		rows, err := t.query(ctx, rolloutDevicesQuery, before.ID, before.OrgID, before.SiteID, before.SiteID)
		if err != nil {
			return err
		}
		devs, err := scanRolloutDevices(rows, before)
		if err != nil {
			return err
		}
		members := make([]rollout.Member, len(devs))
		for i, d := range devs {
			members[i] = d.Member()
		}
		now := fromMicro(t.s.nowMicro())
		dec = rollout.Evaluate(before.View(), rel, members, now, grace)
		var action string
		switch dec.Action {
		case rollout.Wait:
			return nil
		case rollout.Advance:
			after.Ring, after.RingOpened, action = before.Ring+1, now, "rollout.advance"
		case rollout.Halt:
			after.State, after.Reason, action = RolloutHalted, dec.Reason, "rollout.halt"
		case rollout.Complete:
			after.State, after.Reason, action = RolloutCompleted, dec.Reason, "rollout.complete"
		default:
			return fmt.Errorf("unknown decision %v", dec.Action)
		}
		return t.writeRollout(ctx, "fleetd", action, before, &after)
	})
	if err != nil {
		return Rollout{}, rollout.Decision{}, fmt.Errorf("evaluate rollout %s: %w", id, err)
	}
	return after, dec, nil
}

// DeviceUpdate returns the update status of the device's latest check-in
// and when it was stored; the zero status and time when it never sent
// one.
func (s *Store) DeviceUpdate(ctx context.Context, deviceID string) (fleetapi.UpdateStatus, time.Time, error) {
	var raw string
	var at sql.NullInt64
	if err := s.queryRow(ctx, `SELECT update_status, update_at FROM devices WHERE id = ?`, deviceID).Scan(&raw, &at); err != nil {
		return fleetapi.UpdateStatus{}, time.Time{}, fmt.Errorf("update status of device %s: %w", deviceID, notFound(err))
	}
	var st fleetapi.UpdateStatus
	if raw == "" {
		return st, time.Time{}, nil
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return fleetapi.UpdateStatus{}, time.Time{}, fmt.Errorf("update status of device %s: stored: %w", deviceID, err)
	}
	var t time.Time
	if at.Valid {
		t = fromMicro(at.Int64)
	}
	return st, t, nil
}

// Site returns one site.
func (s *Store) Site(ctx context.Context, id string) (Site, error) {
	st, err := scanSite(s.queryRow(ctx, `SELECT id, org_id, name, created_at, window_start, window_end FROM sites WHERE id = ?`, id))
	if err != nil {
		return Site{}, fmt.Errorf("site %s: %w", id, notFound(err))
	}
	return st, nil
}

// scanSite reads id, org_id, name, created_at, window_start, window_end.
func scanSite(sc interface{ Scan(...any) error }) (Site, error) {
	var st Site
	var created int64
	var start, end string
	if err := sc.Scan(&st.ID, &st.OrgID, &st.Name, &created, &start, &end); err != nil {
		return Site{}, err
	}
	st.CreatedAt = fromMicro(created)
	if start != "" || end != "" {
		st.MaintenanceWindow = &fleetapi.MaintenanceWindow{Start: start, End: end}
	}
	return st, nil
}

// SetSiteMaintenanceWindow sets when the site's rooms may install updates
// and reboot; nil returns it to fleetapi.DefaultMaintenanceWindow. An
// invalid window is [ErrInvalid] (the error names the bad time) and
// changes nothing. Audited.
func (s *Store) SetSiteMaintenanceWindow(ctx context.Context, actor, siteID string, w *fleetapi.MaintenanceWindow) error {
	var start, end string
	if w != nil {
		if err := w.Validate(); err != nil {
			return fmt.Errorf("set maintenance window of site %s: %w: %w", siteID, err, ErrInvalid)
		}
		start, end = w.Start, w.End
	}
	err := s.inTx(ctx, func(t *tx) error {
		before, err := scanSite(t.queryRow(ctx, `SELECT id, org_id, name, created_at, window_start, window_end FROM sites WHERE id = ?`, siteID))
		if err != nil {
			return notFound(err)
		}
		if _, err := t.exec(ctx, `UPDATE sites SET window_start = ?, window_end = ? WHERE id = ?`, start, end, siteID); err != nil {
			return err
		}
		return t.audit(ctx, actor, "site.maintenance_window", "site:"+siteID,
			map[string]any{"maintenance_window": before.MaintenanceWindow}, map[string]any{"maintenance_window": w})
	})
	if err != nil {
		return fmt.Errorf("set maintenance window of site %s: %w", siteID, err)
	}
	return nil
}

// windowOf is the site's window, or the default.
func windowOf(start, end string) fleetapi.MaintenanceWindow {
	if start == "" && end == "" {
		return fleetapi.DefaultMaintenanceWindow()
	}
	return fleetapi.MaintenanceWindow{Start: start, End: end}
}

// DeviceRollout is what a check-in needs to make the device its offer:
// the active rollout covering the device, its site's maintenance window,
// and whether the device already failed or rolled back this rollout.
type DeviceRollout struct {
	Rollout      rollout.View
	Window       fleetapi.MaintenanceWindow
	FailedBefore bool
}

// deviceRollout finds the device's active rollout in one indexed query
// (nil when there is none).
func (t *tx) deviceRollout(ctx context.Context, deviceID string) (*DeviceRollout, error) {
	var v rollout.View
	var rings, start, end, rdState string
	var opened int64
	var immediate int
	err := t.queryRow(ctx, `SELECT r.id, r.target, r.version, r.rings, r.ring, r.ring_opened, r.failure_threshold,
		r.soak_minutes, r.immediate, r.state, r.accepted_failures, s.window_start, s.window_end, COALESCE(rd.state, '')
		FROM devices d JOIN rooms rm ON rm.id = d.room_id JOIN sites s ON s.id = rm.site_id
		JOIN rollouts r ON r.org_id = s.org_id AND r.state IN ('running', 'paused', 'halted')
		LEFT JOIN rollout_devices rd ON rd.rollout_id = r.id AND rd.device_id = d.id
		WHERE d.id = ? AND (r.site_id IS NULL OR r.site_id = s.id)`, deviceID).
		Scan(&v.ID, &v.Target, &v.Version, &rings, &v.Ring, &opened, &v.FailureThreshold, &v.SoakMinutes,
			&immediate, &v.State, &v.AcceptedFailures, &start, &end, &rdState)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("find the device's rollout: %w", err)
	}
	if err := json.Unmarshal([]byte(rings), &v.Rings); err != nil {
		return nil, fmt.Errorf("rollout %s: stored rings: %w", v.ID, err)
	}
	v.RingOpened, v.Immediate = fromMicro(opened), immediate != 0
	return &DeviceRollout{Rollout: v, Window: windowOf(start, end), FailedBefore: rollout.Failed(rdState)}, nil
}

// recordUpdate stores the check-in's update status, when it is about a
// rollout covering the device, as the device's status in that rollout. It
// returns true when this moved the device into a final state there (the
// rollout may then advance or halt). A failure or rollback already stored
// is final and never overwritten (the version is never retried); a final
// state reported again is not rewritten, so devices that stay committed
// cost no write.
func (t *tx) recordUpdate(ctx context.Context, deviceID string, st *fleetapi.UpdateStatus, now int64) (bool, error) {
	if st == nil || st.Rollout == "" {
		return false, nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return false, fmt.Errorf("update status: %w", err)
	}
	res, err := t.exec(ctx, `INSERT INTO rollout_devices (rollout_id, device_id, state, status, updated_at)
		SELECT r.id, d.id, ?, ?, ?
		FROM rollouts r JOIN sites s ON s.org_id = r.org_id JOIN rooms rm ON rm.site_id = s.id
		JOIN devices d ON d.room_id = rm.id
		WHERE r.id = ? AND d.id = ? AND (r.site_id IS NULL OR r.site_id = s.id)
		ON CONFLICT (rollout_id, device_id) DO UPDATE SET state = excluded.state, status = excluded.status,
			updated_at = excluded.updated_at
		WHERE rollout_devices.state NOT IN ('failed', 'rolled-back')
			AND (rollout_devices.state <> excluded.state OR excluded.state NOT IN ('committed', 'failed', 'rolled-back'))`,
		st.State, string(b), now, st.Rollout, deviceID)
	if err != nil {
		return false, fmt.Errorf("rollout status: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("rollout status: %w", err)
	}
	return n == 1 && rollout.Final(st.State), nil
}
