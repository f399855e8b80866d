package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// Organisation is the top of the fleet: it holds sites.
type Organisation struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Site is a place (a building, an office) holding rooms.
type Site struct {
	ID        string
	OrgID     string
	Name      string
	CreatedAt time.Time
	// MaintenanceWindow is when its rooms may install updates and
	// reboot; nil means fleetapi.DefaultMaintenanceWindow.
	MaintenanceWindow *fleetapi.MaintenanceWindow `json:",omitempty"`
}

// Room is a meeting room holding devices.
type Room struct {
	ID        string
	SiteID    string
	Name      string
	CreatedAt time.Time
}

// CreateOrganisation adds an organisation; a duplicate name is
// [ErrConflict].
func (s *Store) CreateOrganisation(ctx context.Context, actor, name string) (Organisation, error) {
	o := Organisation{ID: newID(), Name: strings.TrimSpace(name), CreatedAt: fromMicro(s.nowMicro())}
	if o.Name == "" {
		return Organisation{}, fmt.Errorf("create organisation: empty name: %w", ErrInvalid)
	}
	err := s.inTx(ctx, func(t *tx) error {
		if _, err := t.exec(ctx, `INSERT INTO organisations (id, name, created_at) VALUES (?, ?, ?)`,
			o.ID, o.Name, o.CreatedAt.UnixMicro()); err != nil {
			return err
		}
		return t.audit(ctx, actor, "organisation.create", "org:"+o.ID, nil, o)
	})
	if err != nil {
		return Organisation{}, fmt.Errorf("create organisation %q: %w", o.Name, err)
	}
	return o, nil
}

// CreateSite adds a site to an organisation ([ErrNotFound] when the
// organisation does not exist, [ErrConflict] for a duplicate name in it).
func (s *Store) CreateSite(ctx context.Context, actor, orgID, name string) (Site, error) {
	st := Site{ID: newID(), OrgID: orgID, Name: strings.TrimSpace(name), CreatedAt: fromMicro(s.nowMicro())}
	if st.Name == "" {
		return Site{}, fmt.Errorf("create site: empty name: %w", ErrInvalid)
	}
	err := s.inTx(ctx, func(t *tx) error {
		if _, err := t.exec(ctx, `INSERT INTO sites (id, org_id, name, created_at) VALUES (?, ?, ?, ?)`,
			st.ID, st.OrgID, st.Name, st.CreatedAt.UnixMicro()); err != nil {
			return err
		}
		return t.audit(ctx, actor, "site.create", "site:"+st.ID, nil, st)
	})
	if err != nil {
		return Site{}, fmt.Errorf("create site %q: %w", st.Name, err)
	}
	return st, nil
}

// CreateRoom adds a room to a site ([ErrNotFound] when the site does not
// exist, [ErrConflict] for a duplicate name in it).
func (s *Store) CreateRoom(ctx context.Context, actor, siteID, name string) (Room, error) {
	r := Room{ID: newID(), SiteID: siteID, Name: strings.TrimSpace(name), CreatedAt: fromMicro(s.nowMicro())}
	if r.Name == "" {
		return Room{}, fmt.Errorf("create room: empty name: %w", ErrInvalid)
	}
	err := s.inTx(ctx, func(t *tx) error {
		if _, err := t.exec(ctx, `INSERT INTO rooms (id, site_id, name, created_at) VALUES (?, ?, ?, ?)`,
			r.ID, r.SiteID, r.Name, r.CreatedAt.UnixMicro()); err != nil {
			return err
		}
		return t.audit(ctx, actor, "room.create", "room:"+r.ID, nil, r)
	})
	if err != nil {
		return Room{}, fmt.Errorf("create room %q: %w", r.Name, err)
	}
	return r, nil
}

// Room returns one room.
func (s *Store) Room(ctx context.Context, id string) (Room, error) {
	var r Room
	var created int64
	err := s.queryRow(ctx, `SELECT id, site_id, name, created_at FROM rooms WHERE id = ?`, id).
		Scan(&r.ID, &r.SiteID, &r.Name, &created)
	if err != nil {
		return Room{}, fmt.Errorf("room %s: %w", id, notFound(err))
	}
	r.CreatedAt = fromMicro(created)
	return r, nil
}

// AuditEntry is one change: who did what to which subject, when, and the
// subject before and after (JSON; nil for a creation or deletion).
type AuditEntry struct {
	ID      int64
	At      time.Time
	Actor   string
	Action  string
	Subject string // "kind:id", e.g. "device:3f…", "profile:room:9a…"
	Before  json.RawMessage
	After   json.RawMessage
}

// audit writes an entry inside the change's own transaction.
func (t *tx) audit(ctx context.Context, actor, action, subject string, before, after any) error {
	enc := func(v any) (any, error) {
		switch v := v.(type) {
		case nil:
			return nil, nil
		case json.RawMessage:
			if v == nil {
				return nil, nil
			}
			return string(v), nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("audit %s: %w", action, err)
		}
		return string(b), nil
	}
	b, err := enc(before)
	if err != nil {
		return err
	}
	a, err := enc(after)
	if err != nil {
		return err
	}
	if _, err := t.exec(ctx, `INSERT INTO audit_log (at, actor, action, subject, before_json, after_json) VALUES (?, ?, ?, ?, ?, ?)`,
		t.s.nowMicro(), actor, action, subject, b, a); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// Audit returns the entries for a subject ("" for all), oldest first, at
// most limit of the newest ones (limit ≤ 0 means 100).
func (s *Store) Audit(ctx context.Context, subject string, limit int) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.query(ctx, `SELECT id, at, actor, action, subject, before_json, after_json FROM audit_log
		WHERE ? = '' OR subject = ? ORDER BY id DESC LIMIT ?`, subject, subject, limit)
	if err != nil {
		return nil, fmt.Errorf("audit %q: %w", subject, err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		var before, after *string
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Subject, &before, &after); err != nil {
			return nil, fmt.Errorf("audit %q: %w", subject, err)
		}
		e.At = fromMicro(at)
		if before != nil {
			e.Before = json.RawMessage(*before)
		}
		if after != nil {
			e.After = json.RawMessage(*after)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit %q: %w", subject, err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
