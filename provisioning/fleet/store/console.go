package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// This file holds the console's reads: lists of the hierarchy, the device
// list with its filters, profile history, samples and device events.

// Organisations lists every organisation by name.
func (s *Store) Organisations(ctx context.Context) ([]Organisation, error) {
	rows, err := s.query(ctx, `SELECT id, name, created_at FROM organisations ORDER BY name, id`)
	if err != nil {
		return nil, fmt.Errorf("list organisations: %w", err)
	}
	defer rows.Close()
	var out []Organisation
	for rows.Next() {
		var o Organisation
		var created int64
		if err := rows.Scan(&o.ID, &o.Name, &created); err != nil {
			return nil, fmt.Errorf("list organisations: %w", err)
		}
		o.CreatedAt = fromMicro(created)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list organisations: %w", err)
	}
	return out, nil
}

// Sites lists the sites of an organisation ("" for all) by name.
func (s *Store) Sites(ctx context.Context, orgID string) ([]Site, error) {
	q, args := `SELECT id, org_id, name, created_at, window_start, window_end FROM sites`, []any{}
	if orgID != "" {
		q, args = q+` WHERE org_id = ?`, append(args, orgID)
	}
	rows, err := s.query(ctx, q+` ORDER BY name, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list sites of %q: %w", orgID, err)
	}
	defer rows.Close()
	var out []Site
	for rows.Next() {
		st, err := scanSite(rows)
		if err != nil {
			return nil, fmt.Errorf("list sites of %q: %w", orgID, err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sites of %q: %w", orgID, err)
	}
	return out, nil
}

// Rooms lists the rooms of a site ("" for all) by name.
func (s *Store) Rooms(ctx context.Context, siteID string) ([]Room, error) {
	q, args := `SELECT id, site_id, name, created_at FROM rooms`, []any{}
	if siteID != "" {
		q, args = q+` WHERE site_id = ?`, append(args, siteID)
	}
	rows, err := s.query(ctx, q+` ORDER BY name, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list rooms of %q: %w", siteID, err)
	}
	defer rows.Close()
	var out []Room
	for rows.Next() {
		var r Room
		var created int64
		if err := rows.Scan(&r.ID, &r.SiteID, &r.Name, &created); err != nil {
			return nil, fmt.Errorf("list rooms of %q: %w", siteID, err)
		}
		r.CreatedAt = fromMicro(created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list rooms of %q: %w", siteID, err)
	}
	return out, nil
}

// DeviceFilter selects devices for the console's list. Empty fields do not
// filter.
type DeviceFilter struct {
	SiteID string
	RoomID string
	Health string
	// Version matches the device's versions["roomd"] exactly.
	Version string
	// Online, when set, keeps only the devices that are (true) or are not
	// (false) online.
	Online *bool
	// OnlineWindow is how recent a device's last check-in must be for it to
	// count as online; 0 means DefaultOnlineWindow.
	OnlineWindow time.Duration
	// Limit caps the list; 0 or less means no cap.
	Limit int
}

// DefaultOnlineWindow is three missed 60-second check-ins.
const DefaultOnlineWindow = 3 * time.Minute

// DeviceSummary is one row of the console's device list: the device with
// where it is, how its profile went, and whether it is online.
type DeviceSummary struct {
	Device
	RoomName string
	SiteID   string
	SiteName string
	OrgID    string
	// ProfileApplied is the profile version in effect on the device.
	ProfileApplied string
	// ProfileStatus and ProfileReason are the outcome of the last profile
	// the device received (ProfileVersion names it).
	ProfileVersion string
	ProfileStatus  string
	ProfileReason  string
	Online         bool
}

const summaryQuery = `SELECT %s, r.name, s.id, s.name, s.org_id,
	d.profile_applied, d.profile_last_version, d.profile_status, d.profile_reason
	FROM devices d JOIN rooms r ON r.id = d.room_id JOIN sites s ON s.id = r.site_id`

func (s *Store) scanSummary(sc interface{ Scan(...any) error }, onlineSince int64) (DeviceSummary, error) {
	var ds DeviceSummary
	targets, finish := deviceScanTargets(&ds.Device)
	targets = append(targets, &ds.RoomName, &ds.SiteID, &ds.SiteName, &ds.OrgID,
		&ds.ProfileApplied, &ds.ProfileVersion, &ds.ProfileStatus, &ds.ProfileReason)
	if err := sc.Scan(targets...); err != nil {
		return DeviceSummary{}, err
	}
	if err := finish(); err != nil {
		return DeviceSummary{}, err
	}
	ds.Online = !ds.LastCheckIn.IsZero() && ds.LastCheckIn.UnixMicro() >= onlineSince
	return ds, nil
}

// DeviceSummaries lists devices matching the filter, ordered by site, room
// and enrollment. Every filter is an equality or range on an indexed
// column.
func (s *Store) DeviceSummaries(ctx context.Context, f DeviceFilter) ([]DeviceSummary, error) {
	window := f.OnlineWindow
	if window <= 0 {
		window = DefaultOnlineWindow
	}
	onlineSince := s.nowMicro() - window.Microseconds()
	var where []string
	var args []any
	add := func(cond string, arg any) { where, args = append(where, cond), append(args, arg) }
	if f.SiteID != "" {
		add("r.site_id = ?", f.SiteID)
	}
	if f.RoomID != "" {
		add("d.room_id = ?", f.RoomID)
	}
	if f.Health != "" {
		add("d.health = ?", f.Health)
	}
	if f.Version != "" {
		add("d.roomd_version = ?", f.Version)
	}
	if f.Online != nil {
		if *f.Online {
			add("d.last_checkin >= ?", onlineSince)
		} else {
			add("(d.last_checkin IS NULL OR d.last_checkin < ?)", onlineSince)
		}
	}
	q := fmt.Sprintf(summaryQuery, deviceColumnsOf("d."))
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY s.name, r.name, d.created_at, d.id"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list device summaries: %w", err)
	}
	defer rows.Close()
	var out []DeviceSummary
	for rows.Next() {
		ds, err := s.scanSummary(rows, onlineSince)
		if err != nil {
			return nil, fmt.Errorf("list device summaries: %w", err)
		}
		out = append(out, ds)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list device summaries: %w", err)
	}
	return out, nil
}

// DeviceSummary returns one device's summary, online judged with
// DefaultOnlineWindow.
func (s *Store) DeviceSummary(ctx context.Context, id string) (DeviceSummary, error) {
	onlineSince := s.nowMicro() - DefaultOnlineWindow.Microseconds()
	ds, err := s.scanSummary(s.queryRow(ctx, fmt.Sprintf(summaryQuery, deviceColumnsOf("d."))+` WHERE d.id = ?`, id), onlineSince)
	if err != nil {
		return DeviceSummary{}, fmt.Errorf("device summary %s: %w", id, notFound(err))
	}
	return ds, nil
}

// ProfileHistory lists the versions of the profile at a scope, newest
// first, at most limit (0 or less means 50).
func (s *Store) ProfileHistory(ctx context.Context, sc Scope, limit int) ([]Profile, error) {
	if !sc.valid() {
		return nil, fmt.Errorf("profile history %s: unknown scope: %w", sc, ErrInvalid)
	}
	if limit <= 0 {
		limit = 50
	}
	rows, err := s.query(ctx, `SELECT version, body, created_by, created_at FROM profiles
		WHERE scope = ? AND scope_id = ? ORDER BY version DESC LIMIT ?`, string(sc.Kind), sc.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("profile history %s: %w", sc, err)
	}
	defer rows.Close()
	var out []Profile
	for rows.Next() {
		p := Profile{Scope: sc}
		var body string
		var created int64
		if err := rows.Scan(&p.Version, &body, &p.CreatedBy, &created); err != nil {
			return nil, fmt.Errorf("profile history %s: %w", sc, err)
		}
		p.Body, p.CreatedAt = json.RawMessage(body), fromMicro(created)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("profile history %s: %w", sc, err)
	}
	return out, nil
}
