package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
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
}

const deviceColumns = `id, room_id, hardware, cert_serial, cert_not_after, revoked_at, last_checkin,
	health, versions, meeting_state, created_at`

func scanDevice(sc interface{ Scan(...any) error }) (Device, error) {
	var d Device
	var hw, versions string
	var notAfter, created int64
	var revoked, checkin sql.NullInt64
	if err := sc.Scan(&d.ID, &d.RoomID, &hw, &d.CertSerial, &notAfter, &revoked, &checkin,
		&d.Health, &versions, &d.MeetingState, &created); err != nil {
		return Device{}, err
	}
	d.Hardware, d.Versions = json.RawMessage(hw), json.RawMessage(versions)
	d.CertNotAfter, d.CreatedAt = fromMicro(notAfter), fromMicro(created)
	if revoked.Valid {
		d.Revoked, d.RevokedAt = true, fromMicro(revoked.Int64)
	}
	if checkin.Valid {
		d.LastCheckIn = fromMicro(checkin.Int64)
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
	err := s.inTx(ctx, func(t *tx) error {
		before, err := scanDevice(t.queryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`, id))
		if err != nil {
			return notFound(err)
		}
		if before.Revoked {
			return ErrRevoked
		}
		if _, err := t.exec(ctx, `UPDATE devices SET cert_serial = ?, cert_not_after = ? WHERE id = ?`,
			serial, notAfter.UTC().UnixMicro(), id); err != nil {
			return err
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

// CheckIn is what a device reports on each check-in.
type CheckIn struct {
	Health       string
	Versions     json.RawMessage // JSON object
	MeetingState string
}

// RecordCheckIn stores a check-in and its time. A revoked device gets
// [ErrRevoked] and nothing is stored. Check-ins are not audited: they are
// the device's state, not a change someone made.
func (s *Store) RecordCheckIn(ctx context.Context, id string, c CheckIn) error {
	versions, err := jsonObject(c.Versions, "versions")
	if err != nil {
		return fmt.Errorf("check-in of device %s: %w", id, err)
	}
	err = s.inTx(ctx, func(t *tx) error {
		var revoked sql.NullInt64
		if err := t.queryRow(ctx, `SELECT revoked_at FROM devices WHERE id = ?`, id).Scan(&revoked); err != nil {
			return notFound(err)
		}
		if revoked.Valid {
			return ErrRevoked
		}
		_, err := t.exec(ctx, `UPDATE devices SET last_checkin = ?, health = ?, versions = ?, meeting_state = ? WHERE id = ?`,
			t.s.nowMicro(), c.Health, string(versions), c.MeetingState, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("check-in of device %s: %w", id, err)
	}
	return nil
}
