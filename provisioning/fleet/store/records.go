package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// This file holds what the device API stores: the check-in outbox (events
// and command results), command delivery, log bundles.

// DeviceEvent is one stored outbox record of a device: an event it
// reported, the result of a command, or a record the server could not use
// (kept so the history shows it, and acknowledged so the device stops
// sending it).
type DeviceEvent struct {
	ID         int64
	DeviceID   string
	Key        string    // the record's key, unique per device
	At         time.Time // when it happened, by the device's clock
	ReceivedAt time.Time // when the server stored it
	// Type is the event's own type, or one of the Event* constants.
	Type    string
	Message string
	// Details is the event's details, or the whole result for a command
	// result, or the offending record (cut to MaxRejectedRecord bytes) for
	// a rejected one. JSON; nil when there is none.
	Details   json.RawMessage
	CommandID string // for command results
}

// Types of stored records that are not the device's own events.
const (
	// EventCommandResult: a command's result, which ended the command.
	EventCommandResult = "command.result"
	// EventResultIgnored: a well-formed result that changed no command: the
	// command is unknown, another device's, or had ended already.
	EventResultIgnored = "command.result.ignored"
	// EventRecordRejected: a malformed record (no key, neither or both of
	// event and result, an event without type, a result without command or
	// with an unknown status, details that are not JSON).
	EventRecordRejected = "record.rejected"
)

// MaxRejectedRecord bounds how much of a rejected record is kept.
const MaxRejectedRecord = 4096

// CheckInResult is what ProcessCheckIn gives back for the device.
type CheckInResult struct {
	// Acked lists the keys of the records now stored, including ones stored
	// by an earlier check-in and rejected ones.
	Acked []string
	// Commands are the device's commands not yet ended, oldest first.
	Commands []Command
	// Rollout is the active rollout covering the device, from which the
	// device API makes its update offer; nil when there is none.
	Rollout *DeviceRollout
	// Finished names the rollout in which this check-in moved the device
	// into a final state (committed, failed, rolled back), so the caller
	// can evaluate it at once; "" when it did not.
	Finished string
}

// ProcessCheckIn is a whole check-in in one transaction: RecordCheckIn,
// AddDeviceRecords, NextCommands and the device's active rollout. A revoked device gets [ErrRevoked] and
// nothing is stored.
func (s *Store) ProcessCheckIn(ctx context.Context, deviceID string, c CheckIn, recs []fleetapi.Record) (CheckInResult, error) {
	var res CheckInResult
	err := s.inTx(ctx, func(t *tx) error {
		if err := t.recordCheckIn(ctx, deviceID, c); err != nil {
			return err
		}
		var err error
		if res.Acked, err = t.addRecords(ctx, deviceID, recs); err != nil {
			return err
		}
		if res.Commands, err = t.nextCommands(ctx, deviceID); err != nil {
			return err
		}
		res.Rollout, err = t.deviceRollout(ctx, deviceID)
		res.Finished = t.finished
		return err
	})
	if err != nil {
		return CheckInResult{}, fmt.Errorf("check-in of device %s: %w", deviceID, err)
	}
	return res, nil
}

// AddDeviceRecords stores a device's outbox records in one transaction and
// returns the keys it acknowledges, in the order given.
//
// Every record is stored at most once per (device, key); a record sent
// again is acknowledged again and not stored again. A result ends its
// command (the command's status becomes the result's, audited as the
// device's change) unless the command had ended already. A record the
// server cannot use is never an error, because the device would then send
// it forever: a result for an unknown command, another device's command or
// an ended one is stored as [EventResultIgnored]; a malformed record as
// [EventRecordRejected] (a keyless one under the empty key, so it too is
// stored once). Each is logged and acknowledged like any other.
//
// Errors are the database's, or [ErrNotFound] for an unknown device.
func (s *Store) AddDeviceRecords(ctx context.Context, deviceID string, recs []fleetapi.Record) (acked []string, err error) {
	err = s.inTx(ctx, func(t *tx) error {
		var one int
		if err := t.queryRow(ctx, `SELECT 1 FROM devices WHERE id = ?`, deviceID).Scan(&one); err != nil {
			return notFound(err)
		}
		acked, err = t.addRecords(ctx, deviceID, recs)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("add records of device %s: %w", deviceID, err)
	}
	return acked, nil
}

func (t *tx) addRecords(ctx context.Context, deviceID string, recs []fleetapi.Record) ([]string, error) {
	acked := make([]string, 0, len(recs))
	for i, rec := range recs {
		var one int
		err := t.queryRow(ctx, `SELECT 1 FROM device_events WHERE device_id = ? AND record_key = ?`, deviceID, rec.Key).Scan(&one)
		if err == nil {
			acked = append(acked, rec.Key) // sent again: stored already
			continue
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		ev, end, err := t.classify(ctx, deviceID, rec)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if ev.Type == EventRecordRejected || ev.Type == EventResultIgnored {
			t.s.log.Warn("device record not used", "device", deviceID, "key", rec.Key, "type", ev.Type, "reason", ev.Message)
		}
		// ON CONFLICT guards a concurrent check-in of the same device
		// (PostgreSQL): the loser stores nothing and changes no command.
		res, err := t.exec(ctx, `INSERT INTO device_events (device_id, record_key, at, received_at, type, message, details, command_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, record_key) DO NOTHING`,
			deviceID, rec.Key, ev.At.UnixMicro(), ev.ReceivedAt.UnixMicro(), ev.Type, ev.Message, nullableJSON(ev.Details), ev.CommandID)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		} else if n == 1 && end != nil {
			if err := t.endCommand(ctx, deviceID, end); err != nil {
				return nil, fmt.Errorf("record %d: %w", i, err)
			}
		}
		acked = append(acked, rec.Key)
	}
	return acked, nil
}

// commandEnd is a result that ends a command.
type commandEnd struct {
	before Command
	status CommandStatus
	detail string
}

// classify turns a record into the event to store and, for a result that
// ends its command, that end.
func (t *tx) classify(ctx context.Context, deviceID string, rec fleetapi.Record) (DeviceEvent, *commandEnd, error) {
	now := fromMicro(t.s.nowMicro())
	ev := DeviceEvent{DeviceID: deviceID, Key: rec.Key, At: rec.At.UTC().Truncate(time.Microsecond), ReceivedAt: now}
	if rec.At.IsZero() {
		ev.At = now
	}
	reject := func(reason string) (DeviceEvent, *commandEnd, error) {
		ev.Type, ev.Message, ev.CommandID = EventRecordRejected, reason, ""
		if b, err := json.Marshal(rec); err == nil && len(b) <= MaxRejectedRecord {
			ev.Details = b
		} else {
			ev.Details = nil
		}
		return ev, nil, nil
	}
	switch {
	case rec.Key == "":
		return reject("record has no key")
	case (rec.Event == nil) == (rec.Result == nil):
		return reject("record must carry exactly one of event and result")
	case rec.Event != nil:
		e := rec.Event
		if e.Type == "" {
			return reject("event has no type")
		}
		if len(e.Details) > 0 && !json.Valid(e.Details) {
			return reject("event details are not JSON")
		}
		ev.Type, ev.Message, ev.Details = e.Type, e.Message, e.Details
		return ev, nil, nil
	}
	r := rec.Result
	status := CommandStatus(r.Status)
	switch {
	case r.CommandID == "":
		return reject("result names no command")
	case status != CommandSucceeded && status != CommandFailed && status != CommandRejected:
		return reject(fmt.Sprintf("result status %q is not succeeded, failed or rejected", r.Status))
	case len(r.Output) > 0 && !json.Valid(r.Output):
		return reject("result output is not JSON")
	}
	details, err := json.Marshal(r)
	if err != nil {
		return reject("result does not encode: " + err.Error())
	}
	ev.Details, ev.CommandID = details, r.CommandID
	cmd, err := scanCommand(t.queryRow(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = ?`, r.CommandID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		ev.Type, ev.Message = EventResultIgnored, "result for unknown command "+r.CommandID
		return ev, nil, nil
	case err != nil:
		return DeviceEvent{}, nil, err
	case cmd.DeviceID != deviceID:
		ev.Type, ev.Message = EventResultIgnored, "result for command "+r.CommandID+" of another device"
		return ev, nil, nil
	case cmd.Status != CommandQueued && cmd.Status != CommandSent:
		ev.Type, ev.Message = EventResultIgnored, fmt.Sprintf("command %s had ended already as %s", r.CommandID, cmd.Status)
		return ev, nil, nil
	}
	ev.Type, ev.Message = EventCommandResult, fmt.Sprintf("%s %s", cmd.Kind, status)
	if r.Detail != "" {
		ev.Message += ": " + r.Detail
	}
	return ev, &commandEnd{before: cmd, status: status, detail: r.Detail}, nil
}

// endCommand sets a command's final status from a device's result.
func (t *tx) endCommand(ctx context.Context, deviceID string, e *commandEnd) error {
	now := t.s.nowMicro()
	res, err := t.exec(ctx, `UPDATE commands SET status = ?, result = ?, updated_at = ? WHERE id = ? AND status = ?`,
		string(e.status), e.detail, now, e.before.ID, string(e.before.Status))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		// Only a concurrent change gets here: the record is stored and the
		// command keeps the status someone else gave it.
		return nil
	}
	return t.audit(ctx, "device:"+deviceID, "command.status", "device:"+deviceID,
		map[string]any{"command": e.before.ID, "status": e.before.Status, "result": e.before.Result},
		map[string]any{"command": e.before.ID, "status": e.status, "result": e.detail})
}

func nullableJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// NextCommands returns the device's commands not yet ended (queued and
// sent), oldest first, and marks the queued ones sent in the same
// transaction. Sent ones are given again until their result arrives: a
// device that lost an answer gets its commands once more, and its results'
// keys keep that from doing anything twice in the history.
func (s *Store) NextCommands(ctx context.Context, deviceID string) ([]Command, error) {
	var out []Command
	err := s.inTx(ctx, func(t *tx) error {
		var err error
		out, err = t.nextCommands(ctx, deviceID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("next commands of device %s: %w", deviceID, err)
	}
	return out, nil
}

func (t *tx) nextCommands(ctx context.Context, deviceID string) ([]Command, error) {
	rows, err := t.query(ctx, `SELECT `+commandColumns+` FROM commands WHERE device_id = ? AND status IN ('queued', 'sent')
		ORDER BY created_at, id`, deviceID)
	if err != nil {
		return nil, err
	}
	var out []Command
	for rows.Next() {
		c, err := scanCommand(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	now := t.s.nowMicro()
	kept := out[:0]
	for _, c := range out {
		if c.Status != CommandQueued {
			kept = append(kept, c)
			continue
		}
		res, err := t.exec(ctx, `UPDATE commands SET status = 'sent', updated_at = ? WHERE id = ? AND status = 'queued'`, now, c.ID)
		if err != nil {
			return nil, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, err
		} else if n != 1 {
			// Ended or cancelled meanwhile by a concurrent transaction
			// (PostgreSQL reads committed data per statement): not for
			// the device any more.
			continue
		}
		c.Status, c.UpdatedAt = CommandSent, fromMicro(now)
		kept = append(kept, c)
		if err := t.audit(ctx, "device:"+deviceID, "command.status", "device:"+deviceID,
			map[string]any{"command": c.ID, "status": CommandQueued},
			map[string]any{"command": c.ID, "status": CommandSent}); err != nil {
			return nil, err
		}
	}
	return kept, nil
}

// DeviceEvents returns a device's newest limit stored records (0 or less
// means 100), oldest first.
func (s *Store) DeviceEvents(ctx context.Context, deviceID string, limit int) ([]DeviceEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.query(ctx, `SELECT id, device_id, record_key, at, received_at, type, message, details, command_id
		FROM device_events WHERE device_id = ? ORDER BY id DESC LIMIT ?`, deviceID, limit)
	if err != nil {
		return nil, fmt.Errorf("events of device %s: %w", deviceID, err)
	}
	defer rows.Close()
	var out []DeviceEvent
	for rows.Next() {
		var ev DeviceEvent
		var at, received int64
		var details *string
		if err := rows.Scan(&ev.ID, &ev.DeviceID, &ev.Key, &at, &received, &ev.Type, &ev.Message, &details, &ev.CommandID); err != nil {
			return nil, fmt.Errorf("events of device %s: %w", deviceID, err)
		}
		ev.At, ev.ReceivedAt = fromMicro(at), fromMicro(received)
		if details != nil {
			ev.Details = json.RawMessage(*details)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of device %s: %w", deviceID, err)
	}
	slices.Reverse(out)
	return out, nil
}

// PurgeDeviceEvents deletes device records received longer than keep ago
// (on the injected clock) and returns how many went. Keep it well above
// how long a device may stay offline: a record resent after its stored
// copy is purged would be stored again.
func (s *Store) PurgeDeviceEvents(ctx context.Context, keep time.Duration) (int64, error) {
	if keep <= 0 {
		return 0, fmt.Errorf("purge device events: retention %v: %w", keep, ErrInvalid)
	}
	res, err := s.exec(ctx, `DELETE FROM device_events WHERE received_at < ?`, s.nowMicro()-keep.Microseconds())
	if err != nil {
		return 0, fmt.Errorf("purge device events: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge device events: %w", err)
	}
	if n > 0 {
		s.log.Info("purged device events", "events", n, "older_than", keep)
	}
	return n, nil
}

// LogBundleMeta describes a stored log bundle.
type LogBundleMeta struct {
	CommandID  string
	DeviceID   string
	Size       int64
	SHA256     string // hex
	UploadedAt time.Time
}

// PutLogBundle stores the log bundle a device uploaded for one of its
// collect-logs commands, replacing an earlier upload for the same command.
// A command that does not exist or is another device's is [ErrNotFound];
// one of another kind, or empty data, is [ErrInvalid].
func (s *Store) PutLogBundle(ctx context.Context, deviceID, commandID string, data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("store log bundle of command %s: empty: %w", commandID, ErrInvalid)
	}
	sum := sha256.Sum256(data)
	err := s.inTx(ctx, func(t *tx) error {
		var owner, kind string
		if err := t.queryRow(ctx, `SELECT device_id, kind FROM commands WHERE id = ?`, commandID).Scan(&owner, &kind); err != nil {
			return notFound(err)
		}
		if owner != deviceID {
			return fmt.Errorf("command of another device: %w", ErrNotFound)
		}
		if kind != fleetapi.CommandCollectLogs {
			return fmt.Errorf("command is %s, not %s: %w", kind, fleetapi.CommandCollectLogs, ErrInvalid)
		}
		_, err := t.exec(ctx, `INSERT INTO log_bundles (command_id, device_id, size, sha256, uploaded_at, data)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (command_id) DO UPDATE SET
			size = excluded.size, sha256 = excluded.sha256, uploaded_at = excluded.uploaded_at, data = excluded.data`,
			commandID, deviceID, int64(len(data)), hex.EncodeToString(sum[:]), t.s.nowMicro(), data)
		return err
	})
	if err != nil {
		return fmt.Errorf("store log bundle of command %s: %w", commandID, err)
	}
	return nil
}

// LogBundle returns the bundle stored for a command ([ErrNotFound] when
// none was uploaded).
func (s *Store) LogBundle(ctx context.Context, commandID string) (LogBundleMeta, []byte, error) {
	var m LogBundleMeta
	var at int64
	var data []byte
	err := s.queryRow(ctx, `SELECT command_id, device_id, size, sha256, uploaded_at, data FROM log_bundles WHERE command_id = ?`, commandID).
		Scan(&m.CommandID, &m.DeviceID, &m.Size, &m.SHA256, &at, &data)
	if err != nil {
		return LogBundleMeta{}, nil, fmt.Errorf("log bundle of command %s: %w", commandID, notFound(err))
	}
	m.UploadedAt = fromMicro(at)
	return m, data, nil
}
