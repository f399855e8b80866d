package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ScopeKind is the level a profile applies to.
type ScopeKind string

// The levels, from the widest to the narrowest; a narrower level wins.
const (
	ScopeOrg    ScopeKind = "org"
	ScopeSite   ScopeKind = "site"
	ScopeRoom   ScopeKind = "room"
	ScopeDevice ScopeKind = "device"
)

// Scope names one organisation, site, room or device.
type Scope struct {
	Kind ScopeKind
	ID   string
}

func (sc Scope) String() string { return string(sc.Kind) + ":" + sc.ID }

func (sc Scope) valid() bool {
	switch sc.Kind {
	case ScopeOrg, ScopeSite, ScopeRoom, ScopeDevice:
		return sc.ID != ""
	}
	return false
}

// Profile is one version of the settings set at a scope: a JSON object of
// setting → value. Validation of the keys is the API's job; the store only
// insists on an object.
type Profile struct {
	Scope     Scope
	Version   int64
	Body      json.RawMessage
	CreatedBy string
	CreatedAt time.Time
}

// Profile returns the current version at a scope ([ErrNotFound] when none
// was ever set).
func (s *Store) Profile(ctx context.Context, sc Scope) (Profile, error) {
	p := Profile{Scope: sc}
	var body string
	var created int64
	err := s.queryRow(ctx, `SELECT version, body, created_by, created_at FROM profiles
		WHERE scope = ? AND scope_id = ? ORDER BY version DESC LIMIT 1`, string(sc.Kind), sc.ID).
		Scan(&p.Version, &body, &p.CreatedBy, &created)
	if err != nil {
		return Profile{}, fmt.Errorf("profile %s: %w", sc, notFound(err))
	}
	p.Body, p.CreatedAt = json.RawMessage(body), fromMicro(created)
	return p, nil
}

// SetProfile stores a new version of the profile at sc. baseVersion is the
// version the editor started from (0 for a first profile); if someone saved
// in between, it is [ErrConflict] and nothing changes. A body that is not a
// JSON object is [ErrInvalid] and nothing changes. The change and its audit
// entry (before and after bodies) are one transaction.
func (s *Store) SetProfile(ctx context.Context, actor string, sc Scope, baseVersion int64, body json.RawMessage) (Profile, error) {
	if !sc.valid() {
		return Profile{}, fmt.Errorf("set profile %s: unknown scope: %w", sc, ErrInvalid)
	}
	canon, err := jsonObject(body, "profile")
	if err != nil {
		return Profile{}, fmt.Errorf("set profile %s: %w", sc, err)
	}
	p := Profile{Scope: sc, Version: baseVersion + 1, Body: canon, CreatedBy: actor, CreatedAt: fromMicro(s.nowMicro())}
	err = s.inTx(ctx, func(t *tx) error {
		if err := t.scopeExists(ctx, sc); err != nil {
			return err
		}
		var cur int64
		var before *string
		if err := t.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM profiles WHERE scope = ? AND scope_id = ?`,
			string(sc.Kind), sc.ID).Scan(&cur); err != nil {
			return err
		}
		if cur != baseVersion {
			return fmt.Errorf("profile is at version %d, edit started from %d: %w", cur, baseVersion, ErrConflict)
		}
		if cur > 0 {
			if err := t.queryRow(ctx, `SELECT body FROM profiles WHERE scope = ? AND scope_id = ? AND version = ?`,
				string(sc.Kind), sc.ID, cur).Scan(&before); err != nil {
				return err
			}
		}
		// Two concurrent savers from the same base both pass the check
		// above; the primary key on (scope, scope_id, version) turns the
		// second insert into ErrConflict.
		if _, err := t.exec(ctx, `INSERT INTO profiles (scope, scope_id, version, body, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, string(sc.Kind), sc.ID, p.Version, string(canon), actor, p.CreatedAt.UnixMicro()); err != nil {
			return err
		}
		var b any
		if before != nil {
			b = json.RawMessage(*before)
		}
		return t.audit(ctx, actor, fmt.Sprintf("profile.set v%d", p.Version), "profile:"+sc.String(), b, canon)
	})
	if err != nil {
		return Profile{}, fmt.Errorf("set profile %s: %w", sc, err)
	}
	return p, nil
}

// scopeExists checks the organisation, site, room or device named.
func (t *tx) scopeExists(ctx context.Context, sc Scope) error {
	table := map[ScopeKind]string{ScopeOrg: "organisations", ScopeSite: "sites", ScopeRoom: "rooms", ScopeDevice: "devices"}[sc.Kind]
	var one int
	if err := t.queryRow(ctx, `SELECT 1 FROM `+table+` WHERE id = ?`, sc.ID).Scan(&one); err != nil {
		return fmt.Errorf("%s: %w", sc, notFound(err))
	}
	return nil
}

// Effective is a device's configuration in effect: each setting with the
// scope it comes from.
type Effective struct {
	Values  map[string]json.RawMessage
	Sources map[string]Scope
	// Versions names the profile version used at each scope that has one.
	Versions map[Scope]int64
}

// EffectiveProfile merges the current profiles of the device's
// organisation, site, room and the device itself, in that order: a later
// scope replaces an earlier one's value key by key (values are not merged
// deeper than the top level).
func (s *Store) EffectiveProfile(ctx context.Context, deviceID string) (Effective, error) {
	var roomID, siteID, orgID string
	err := s.queryRow(ctx, `SELECT r.id, s.id, s.org_id FROM devices d
		JOIN rooms r ON r.id = d.room_id JOIN sites s ON s.id = r.site_id WHERE d.id = ?`, deviceID).
		Scan(&roomID, &siteID, &orgID)
	if err != nil {
		return Effective{}, fmt.Errorf("effective profile of device %s: %w", deviceID, notFound(err))
	}
	chain := []Scope{{ScopeOrg, orgID}, {ScopeSite, siteID}, {ScopeRoom, roomID}, {ScopeDevice, deviceID}}
	// One statement reads the current version at all four scopes, so a
	// profile saved meanwhile is seen whole or not at all.
	rows, err := s.query(ctx, `SELECT p.scope, p.scope_id, p.version, p.body FROM profiles p
		WHERE ((p.scope = 'org' AND p.scope_id = ?) OR (p.scope = 'site' AND p.scope_id = ?)
			OR (p.scope = 'room' AND p.scope_id = ?) OR (p.scope = 'device' AND p.scope_id = ?))
		AND p.version = (SELECT MAX(q.version) FROM profiles q WHERE q.scope = p.scope AND q.scope_id = p.scope_id)`,
		orgID, siteID, roomID, deviceID)
	if err != nil {
		return Effective{}, fmt.Errorf("effective profile of device %s: %w", deviceID, err)
	}
	defer rows.Close()
	found := map[Scope]Profile{}
	for rows.Next() {
		var p Profile
		var kind, body string
		if err := rows.Scan(&kind, &p.Scope.ID, &p.Version, &body); err != nil {
			return Effective{}, fmt.Errorf("effective profile of device %s: %w", deviceID, err)
		}
		p.Scope.Kind, p.Body = ScopeKind(kind), json.RawMessage(body)
		found[p.Scope] = p
	}
	if err := rows.Err(); err != nil {
		return Effective{}, fmt.Errorf("effective profile of device %s: %w", deviceID, err)
	}
	eff := Effective{Values: map[string]json.RawMessage{}, Sources: map[string]Scope{}, Versions: map[Scope]int64{}}
	for _, sc := range chain {
		p, ok := found[sc]
		if !ok {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(p.Body, &m); err != nil {
			return Effective{}, fmt.Errorf("effective profile of device %s: stored profile %s: %w", deviceID, sc, err)
		}
		for k, v := range m {
			eff.Values[k], eff.Sources[k] = v, sc
		}
		eff.Versions[sc] = p.Version
	}
	return eff, nil
}
