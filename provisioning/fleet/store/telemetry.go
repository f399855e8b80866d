package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Sample is one telemetry record from a device (health, call quality…).
type Sample struct {
	ID       int64
	DeviceID string
	At       time.Time
	Kind     string
	Body     json.RawMessage
}

// AddSample stores a sample at the clock's current time. Samples are not
// audited: they are measurements, not changes.
func (s *Store) AddSample(ctx context.Context, deviceID, kind string, body json.RawMessage) error {
	if kind == "" || !json.Valid(body) {
		return fmt.Errorf("add %q sample for device %s: kind and valid JSON body required: %w", kind, deviceID, ErrInvalid)
	}
	if _, err := s.exec(ctx, `INSERT INTO telemetry (device_id, at, kind, body) VALUES (?, ?, ?, ?)`,
		deviceID, s.nowMicro(), kind, string(body)); err != nil {
		return fmt.Errorf("add %q sample for device %s: %w", kind, deviceID, err)
	}
	return nil
}

// Samples lists a device's samples of a kind ("" for all) taken at or after
// since: the newest limit of them (0 or less means 1000), oldest first.
func (s *Store) Samples(ctx context.Context, deviceID, kind string, since time.Time, limit int) ([]Sample, error) {
	if limit <= 0 {
		limit = 1000
	}
	q, args := `SELECT id, device_id, at, kind, body FROM telemetry WHERE device_id = ? AND at >= ?`,
		[]any{deviceID, since.UTC().UnixMicro()}
	if kind != "" {
		q, args = q+` AND kind = ?`, append(args, kind)
	}
	rows, err := s.query(ctx, q+` ORDER BY at DESC, id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list samples of device %s: %w", deviceID, err)
	}
	defer rows.Close()
	var out []Sample
	for rows.Next() {
		var sm Sample
		var at int64
		var body string
		if err := rows.Scan(&sm.ID, &sm.DeviceID, &at, &sm.Kind, &body); err != nil {
			return nil, fmt.Errorf("list samples of device %s: %w", deviceID, err)
		}
		sm.At, sm.Body = fromMicro(at), json.RawMessage(body)
		out = append(out, sm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list samples of device %s: %w", deviceID, err)
	}
	slices.Reverse(out)
	return out, nil
}

// PurgeSamples deletes samples older than keep (measured on the injected
// clock) and returns how many went. The caller runs it periodically.
func (s *Store) PurgeSamples(ctx context.Context, keep time.Duration) (int64, error) {
	if keep <= 0 {
		return 0, fmt.Errorf("purge samples: retention %v: %w", keep, ErrInvalid)
	}
	res, err := s.exec(ctx, `DELETE FROM telemetry WHERE at < ?`, s.nowMicro()-keep.Microseconds())
	if err != nil {
		return 0, fmt.Errorf("purge samples: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge samples: %w", err)
	}
	if n > 0 {
		s.log.Info("purged telemetry", "samples", n, "older_than", keep)
	}
	return n, nil
}
