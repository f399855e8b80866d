package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// Device is an enrolled appliance.
type Device struct {
	ID           string
	RoomID       string
	Hardware     json.RawMessage // facts reported at enrollment (model, serial, MACs)
	CertSerial   string          // serial of the current client certificate
	CertNotAfter time.Time
	Revoked      bool
	RevokedAt    time.Time // zero unless revoked
	LastCheckIn  time.Time // zero before the first check-in
	Health       string
	Versions     json.RawMessage // JSON object: component → version
	MeetingState string
	CreatedAt    time.Time
	// Inventory is the last check-in's inventory (JSON object: versions,
	// peripherals, network…), {} before the first.
	Inventory json.RawMessage
	// Problems are the last check-in's health problems, in the device's
	// words.
	Problems []string
}

// deviceColumnList is what scanDevice reads, in its order.
var deviceColumnList = []string{"id", "room_id", "hardware", "cert_serial", "cert_not_after", "revoked_at", "last_checkin",
	"health", "versions", "meeting_state", "created_at", "inventory", "problems"}

// deviceColumns selects a device from the devices table alone.
var deviceColumns = deviceColumnsOf("")

// deviceColumnsOf prefixes each column with a table alias ("d.") for joins.
func deviceColumnsOf(alias string) string {
	cols := make([]string, len(deviceColumnList))
	for i, c := range deviceColumnList {
		cols[i] = alias + c
	}
	return strings.Join(cols, ", ")
}

// deviceScanTargets returns the Scan targets for deviceColumnList and a
// function that finishes the Device after the scan.
func deviceScanTargets(d *Device) ([]any, func() error) {
	var hw, versions, inventory, problems string
	var notAfter, created int64
	var revoked, checkin sql.NullInt64
	targets := []any{&d.ID, &d.RoomID, &hw, &d.CertSerial, &notAfter, &revoked, &checkin,
		&d.Health, &versions, &d.MeetingState, &created, &inventory, &problems}
	return targets, func() error {
		d.Hardware, d.Versions, d.Inventory = json.RawMessage(hw), json.RawMessage(versions), json.RawMessage(inventory)
		d.CertNotAfter, d.CreatedAt = fromMicro(notAfter), fromMicro(created)
		if revoked.Valid {
			d.Revoked, d.RevokedAt = true, fromMicro(revoked.Int64)
		}
		if checkin.Valid {
			d.LastCheckIn = fromMicro(checkin.Int64)
		}
		if err := json.Unmarshal([]byte(problems), &d.Problems); err != nil {
			return fmt.Errorf("device %s: stored problems: %w", d.ID, err)
		}
		if len(d.Problems) == 0 {
			d.Problems = nil
		}
		return nil
	}
}

func scanDevice(sc interface{ Scan(...any) error }) (Device, error) {
	var d Device
	targets, finish := deviceScanTargets(&d)
	if err := sc.Scan(targets...); err != nil {
		return Device{}, err
	}
	if err := finish(); err != nil {
		return Device{}, err
	}
	return d, nil
}

// Device returns one device.
func (s *Store) Device(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(s.queryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`, id))
	if err != nil {
		return Device{}, fmt.Errorf("device %s: %w", id, notFound(err))
	}
	return d, nil
}

// DeviceByCertSerial returns the device holding a certificate; the API's
// mTLS check uses it (and refuses a revoked one).
func (s *Store) DeviceByCertSerial(ctx context.Context, serial string) (Device, error) {
	d, err := scanDevice(s.queryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE cert_serial = ?`, serial))
	if err != nil {
		return Device{}, fmt.Errorf("device with certificate %s: %w", serial, notFound(err))
	}
	return d, nil
}

// Devices lists the devices of a room, or all devices when roomID is "".
func (s *Store) Devices(ctx context.Context, roomID string) ([]Device, error) {
	rows, err := s.query(ctx, `SELECT `+deviceColumns+` FROM devices WHERE ? = '' OR room_id = ? ORDER BY created_at, id`, roomID, roomID)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out, nil
}

// RevokeDevice marks a device revoked: its certificate is refused from its
// next call on, and no command can be queued for it. Revoking twice is
// [ErrConflict].
func (s *Store) RevokeDevice(ctx context.Context, actor, id string) error {
	err := s.inTx(ctx, func(t *tx) error {
		before, err := scanDevice(t.queryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`, id))
		if err != nil {
			return notFound(err)
		}
		if before.Revoked {
			return fmt.Errorf("already revoked: %w", ErrConflict)
		}
		now := t.s.nowMicro()
		if _, err := t.exec(ctx, `UPDATE devices SET revoked_at = ? WHERE id = ?`, now, id); err != nil {
			return err
		}
		after := before
		after.Revoked, after.RevokedAt = true, fromMicro(now)
		return t.audit(ctx, actor, "device.revoke", "device:"+id, before, after)
	})
	if err != nil {
		return fmt.Errorf("revoke device %s: %w", id, err)
	}
	return nil
}

// RenewCertificate records the device's new certificate after a renewal.
func (s *Store) RenewCertificate(ctx context.Context, id, serial string, notAfter time.Time) error {
	return s.ReplaceCertificate(ctx, id, "", serial, notAfter)
}

// ReplaceCertificate records the device's new certificate in place of the
// one with serial oldSerial ("" replaces whatever is current). When the
// device's current serial is no longer oldSerial (a concurrent renewal won)
// it is [ErrConflict] and nothing changes, so a renewal made with an old
// certificate can never replace a newer one. A revoked device gets
// [ErrRevoked]. Audited as the device's own change.
func (s *Store) ReplaceCertificate(ctx context.Context, id, oldSerial, serial string, notAfter time.Time) error {
	if serial == "" || notAfter.IsZero() {
		return fmt.Errorf("renew certificate of device %s: serial and expiry required: %w", id, ErrInvalid)
	}
	err := s.inTx(ctx, func(t *tx) error {
		before, err := scanDevice(t.queryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`, id))
		if err != nil {
			return notFound(err)
		}
		if before.Revoked {
			return ErrRevoked
		}
		if oldSerial != "" && before.CertSerial != oldSerial {
			return fmt.Errorf("certificate %s is no longer current: %w", oldSerial, ErrConflict)
		}
		res, err := t.exec(ctx, `UPDATE devices SET cert_serial = ?, cert_not_after = ? WHERE id = ? AND cert_serial = ?`,
			serial, notAfter.UTC().UnixMicro(), id, before.CertSerial)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return fmt.Errorf("certificate changed concurrently: %w", ErrConflict)
		}
		after := before
		after.CertSerial, after.CertNotAfter = serial, notAfter.UTC().Truncate(time.Microsecond)
		return t.audit(ctx, "device:"+id, "device.renew_certificate", "device:"+id,
			map[string]any{"cert_serial": before.CertSerial, "cert_not_after": before.CertNotAfter},
			map[string]any{"cert_serial": after.CertSerial, "cert_not_after": after.CertNotAfter})
	})
	if err != nil {
		return fmt.Errorf("renew certificate of device %s: %w", id, err)
	}
	return nil
}

// CheckIn is what a device reports on each check-in. Only Health,
// Versions and MeetingState are required; the zero value of every other
// field stores "nothing reported".
type CheckIn struct {
	Health       string
	Versions     json.RawMessage // JSON object: component → version
	MeetingState string
	// Inventory is the device's inventory as a JSON object; empty stores {}.
	Inventory json.RawMessage
	// Problems are the health problems the device reports.
	Problems []string
	// HealthSample, when set, is stored as a telemetry sample of kind
	// SampleHealth: the health history the console draws.
	HealthSample json.RawMessage
	// CallQuality, when set, is stored as a sample of kind SampleCall.
	CallQuality json.RawMessage
	// ProfileApplied is the profile version in effect on the device.
	ProfileApplied string
	// ProfileLast is how the last profile the device received went.
	ProfileLast ProfileOutcome
	// Update is the device's update status; nil from a device that
	// cannot update itself. It replaces the stored one, and when it names
	// a rollout covering the device it is also the device's status there.
	Update *fleetapi.UpdateStatus
}

// ProfileOutcome is how applying one profile version went on a device.
type ProfileOutcome struct {
	Version string
	Status  string // "applied", "rejected", "rolled-back", or "" before any
	Reason  string
}

// Telemetry sample kinds written by check-ins.
const (
	SampleHealth = "health"
	SampleCall   = "call"
)

// RecordCheckIn stores a check-in and its time. A revoked device gets
// [ErrRevoked] and nothing is stored. Check-ins are not audited: they are
// the device's state, not a change someone made.
func (s *Store) RecordCheckIn(ctx context.Context, id string, c CheckIn) error {
	err := s.inTx(ctx, func(t *tx) error { return t.recordCheckIn(ctx, id, c) })
	if err != nil {
		return fmt.Errorf("check-in of device %s: %w", id, err)
	}
	return nil
}

// recordCheckIn is RecordCheckIn inside a transaction.
func (t *tx) recordCheckIn(ctx context.Context, id string, c CheckIn) error {
	versions, err := jsonObject(c.Versions, "versions")
	if err != nil {
		return err
	}
	inventory, err := jsonObject(c.Inventory, "inventory")
	if err != nil {
		return err
	}
	var vm map[string]json.RawMessage
	_ = json.Unmarshal(versions, &vm) // jsonObject checked it
	var roomd string
	if raw, ok := vm["roomd"]; ok {
		if err := json.Unmarshal(raw, &roomd); err != nil {
			return fmt.Errorf("versions.roomd must be a string: %w", ErrInvalid)
		}
	}
	problems, err := json.Marshal(c.Problems)
	if err != nil || c.Problems == nil {
		problems = []byte("[]")
	}
	for _, sm := range []struct {
		kind string
		body json.RawMessage
	}{{SampleHealth, c.HealthSample}, {SampleCall, c.CallQuality}} {
		if sm.body != nil && !json.Valid(sm.body) {
			return fmt.Errorf("%s sample is not valid JSON: %w", sm.kind, ErrInvalid)
		}
	}
	var revoked sql.NullInt64
	if err := t.queryRow(ctx, `SELECT revoked_at FROM devices WHERE id = ?`, id).Scan(&revoked); err != nil {
		return notFound(err)
	}
	if revoked.Valid {
		return ErrRevoked
	}
	now := t.s.nowMicro()
	update, updateAt := "", sql.NullInt64{}
	if c.Update != nil {
		b, err := json.Marshal(c.Update)
		if err != nil {
			return fmt.Errorf("update status: %w", err)
		}
		update, updateAt = string(b), sql.NullInt64{Int64: now, Valid: true}
	}
	if _, err := t.exec(ctx, `UPDATE devices SET last_checkin = ?, health = ?, versions = ?, meeting_state = ?,
		inventory = ?, problems = ?, roomd_version = ?, profile_applied = ?, profile_last_version = ?,
		profile_status = ?, profile_reason = ?, update_status = ?, update_at = ? WHERE id = ?`,
		now, c.Health, string(versions), c.MeetingState, string(inventory), string(problems), roomd,
		c.ProfileApplied, c.ProfileLast.Version, c.ProfileLast.Status, c.ProfileLast.Reason, update, updateAt, id); err != nil {
		return err
	}
	if final, err := t.recordUpdate(ctx, id, c.Update, now); err != nil {
		return err
	} else if final {
		t.finished = c.Update.Rollout
	}
	for _, sm := range []struct {
		kind string
		body json.RawMessage
	}{{SampleHealth, c.HealthSample}, {SampleCall, c.CallQuality}} {
		if sm.body == nil {
			continue
		}
		if _, err := t.exec(ctx, `INSERT INTO telemetry (device_id, at, kind, body) VALUES (?, ?, ?, ?)`,
			id, now, sm.kind, string(sm.body)); err != nil {
			return fmt.Errorf("%s sample: %w", sm.kind, err)
		}
	}
	return nil
}
