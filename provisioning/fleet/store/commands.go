package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// CommandStatus is where a command is in its life.
type CommandStatus string

// A command is queued by the console, sent with a check-in's answer, and
// ends succeeded, failed (the device tried) or rejected (the device refused
// it as unknown or malformed, or it was cancelled before being sent).
const (
	CommandQueued    CommandStatus = "queued"
	CommandSent      CommandStatus = "sent"
	CommandSucceeded CommandStatus = "succeeded"
	CommandFailed    CommandStatus = "failed"
	CommandRejected  CommandStatus = "rejected"
)

// nextStatus says which statuses may follow which. A device may report a result
// for a command whose "sent" was never recorded (fleetd restarted between
// sending and recording), so queued may end directly.
var nextStatus = map[CommandStatus][]CommandStatus{
	CommandQueued: {CommandSent, CommandSucceeded, CommandFailed, CommandRejected},
	CommandSent:   {CommandSucceeded, CommandFailed, CommandRejected},
}

// Command is a remote action for one device.
type Command struct {
	ID             string
	DeviceID       string
	Kind           string
	Args           json.RawMessage
	IdempotencyKey string
	Status         CommandStatus
	Result         string
	CreatedBy      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// NewCommand is what the console asks for. The idempotency key makes a
// retried request (a double click, a resent POST) return the command
// already queued instead of queuing it twice.
type NewCommand struct {
	DeviceID       string
	Kind           string
	Args           json.RawMessage // JSON object; empty means {}
	IdempotencyKey string
}

const commandColumns = `id, device_id, kind, args, idempotency_key, status, result, created_by, created_at, updated_at`

func scanCommand(sc interface{ Scan(...any) error }) (Command, error) {
	var c Command
	var args, status string
	var created, updated int64
	if err := sc.Scan(&c.ID, &c.DeviceID, &c.Kind, &args, &c.IdempotencyKey, &status, &c.Result,
		&c.CreatedBy, &created, &updated); err != nil {
		return Command{}, err
	}
	c.Args, c.Status = json.RawMessage(args), CommandStatus(status)
	c.CreatedAt, c.UpdatedAt = fromMicro(created), fromMicro(updated)
	return c, nil
}

// EnqueueCommand queues a command. If the device already has a command
// with the same idempotency key, that command is returned with created
// false; if that earlier command differs in kind or arguments, the key was
// reused by mistake and it is [ErrConflict]. A revoked device gets
// [ErrRevoked].
func (s *Store) EnqueueCommand(ctx context.Context, actor string, nc NewCommand) (cmd Command, created bool, err error) {
	if nc.Kind == "" || nc.IdempotencyKey == "" {
		return Command{}, false, fmt.Errorf("enqueue command: kind and idempotency key required: %w", ErrInvalid)
	}
	args, err := jsonObject(nc.Args, "command arguments")
	if err != nil {
		return Command{}, false, fmt.Errorf("enqueue command: %w", err)
	}
	err = s.inTx(ctx, func(t *tx) error {
		var revoked sql.NullInt64
		if err := t.queryRow(ctx, `SELECT revoked_at FROM devices WHERE id = ?`, nc.DeviceID).Scan(&revoked); err != nil {
			return fmt.Errorf("device %s: %w", nc.DeviceID, notFound(err))
		}
		if revoked.Valid {
			return ErrRevoked
		}
		now := t.s.nowMicro()
		c := Command{ID: newID(), DeviceID: nc.DeviceID, Kind: nc.Kind, Args: args, IdempotencyKey: nc.IdempotencyKey,
			Status: CommandQueued, CreatedBy: actor, CreatedAt: fromMicro(now), UpdatedAt: fromMicro(now)}
		// ON CONFLICT DO NOTHING (both engines) rather than catching the
		// unique violation: on PostgreSQL a failed statement aborts the
		// whole transaction.
		res, err := t.exec(ctx, `INSERT INTO commands (`+commandColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id, idempotency_key) DO NOTHING`,
			c.ID, c.DeviceID, c.Kind, string(args), c.IdempotencyKey, string(c.Status), "", actor, now, now)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			cmd, created = c, true
			return t.audit(ctx, actor, "command.enqueue", "device:"+c.DeviceID, nil, c)
		}
		prev, err := scanCommand(t.queryRow(ctx, `SELECT `+commandColumns+` FROM commands WHERE device_id = ? AND idempotency_key = ?`,
			nc.DeviceID, nc.IdempotencyKey))
		if err != nil {
			return notFound(err)
		}
		if prev.Kind != nc.Kind || !bytes.Equal(prev.Args, args) {
			return fmt.Errorf("idempotency key %q already used for a different command %s: %w", nc.IdempotencyKey, prev.ID, ErrConflict)
		}
		cmd = prev
		return nil
	})
	if err != nil {
		return Command{}, false, fmt.Errorf("enqueue command %s for device %s: %w", nc.Kind, nc.DeviceID, err)
	}
	return cmd, created, nil
}

// Command returns one command.
func (s *Store) Command(ctx context.Context, id string) (Command, error) {
	c, err := scanCommand(s.queryRow(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = ?`, id))
	if err != nil {
		return Command{}, fmt.Errorf("command %s: %w", id, notFound(err))
	}
	return c, nil
}

// Commands lists a device's commands, oldest first; with a status, only
// those in it (e.g. the queued ones to send).
func (s *Store) Commands(ctx context.Context, deviceID string, status CommandStatus) ([]Command, error) {
	rows, err := s.query(ctx, `SELECT `+commandColumns+` FROM commands WHERE device_id = ? AND (? = '' OR status = ?)
		ORDER BY created_at, id`, deviceID, string(status), string(status))
	if err != nil {
		return nil, fmt.Errorf("list commands of device %s: %w", deviceID, err)
	}
	defer rows.Close()
	var out []Command
	for rows.Next() {
		c, err := scanCommand(rows)
		if err != nil {
			return nil, fmt.Errorf("list commands of device %s: %w", deviceID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list commands of device %s: %w", deviceID, err)
	}
	return out, nil
}

// SetCommandStatus moves a command on. Reporting the status it already has
// with the same result is accepted and changes nothing (a device retrying
// its report); any other move not allowed by the life cycle is
// [ErrConflict].
func (s *Store) SetCommandStatus(ctx context.Context, actor, id string, status CommandStatus, result string) (Command, error) {
	if _, known := map[CommandStatus]bool{CommandQueued: true, CommandSent: true, CommandSucceeded: true,
		CommandFailed: true, CommandRejected: true}[status]; !known {
		return Command{}, fmt.Errorf("set status of command %s: unknown status %q: %w", id, status, ErrInvalid)
	}
	var out Command
	err := s.inTx(ctx, func(t *tx) error {
		before, err := scanCommand(t.queryRow(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = ?`, id))
		if err != nil {
			return notFound(err)
		}
		if before.Status == status && before.Result == result {
			out = before
			return nil
		}
		allowed := false
		for _, n := range nextStatus[before.Status] {
			allowed = allowed || n == status
		}
		if !allowed {
			return fmt.Errorf("%s → %s: %w", before.Status, status, ErrConflict)
		}
		now := t.s.nowMicro()
		// The status in the WHERE clause makes a concurrent change lose
		// rather than overwrite.
		res, err := t.exec(ctx, `UPDATE commands SET status = ?, result = ?, updated_at = ? WHERE id = ? AND status = ?`,
			string(status), result, now, id, string(before.Status))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return fmt.Errorf("changed concurrently: %w", ErrConflict)
		}
		out = before
		out.Status, out.Result, out.UpdatedAt = status, result, fromMicro(now)
		return t.audit(ctx, actor, "command.status", "device:"+before.DeviceID,
			map[string]any{"command": id, "status": before.Status, "result": before.Result},
			map[string]any{"command": id, "status": status, "result": result})
	})
	if err != nil {
		return Command{}, fmt.Errorf("set status of command %s: %w", id, err)
	}
	return out, nil
}
