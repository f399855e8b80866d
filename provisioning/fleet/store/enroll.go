package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// CodeScope says what an enrollment code covers: a whole site (the
// redeemer names a room of that site) or one room. Exactly one is set.
type CodeScope struct {
	SiteID string
	RoomID string
}

// EnrollmentCode is a stored code. The code itself is never stored, only
// its SHA-256, so a database leak does not hand out codes.
type EnrollmentCode struct {
	Hash      string // hex SHA-256 of the normalised code
	Scope     CodeScope
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero while unused
	DeviceID  string    // the device that redeemed it
	// Hint is the code's last HintLen characters, kept so people can tell
	// codes apart in the console. It is not enough to guess the code.
	Hint      string
	RevokedAt time.Time // zero unless revoked before use
}

// HintLen is how many of a code's last characters its Hint keeps: 20 of
// its 96 bits, leaving 76 unknown.
const HintLen = 4

// codeEncoding is base32 (A–Z, 2–7): no 0/O or 1/I/L pairs to misread when
// a code is typed from a screen.
var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// codeBytes is the code's entropy: 96 bits make guessing hopeless even
// before the API's rate limit, in 20 typed characters.
const codeBytes = 12

// NormaliseCode is the form that is hashed: upper case, without the
// spaces and dashes people type between groups.
func NormaliseCode(code string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, strings.ToUpper(code))
}

// HashCode is the stored form of a code.
func HashCode(code string) string {
	sum := sha256.Sum256([]byte(NormaliseCode(code)))
	return hex.EncodeToString(sum[:])
}

// CreateEnrollmentCode makes a single-use code valid for ttl and returns it
// in clear (the only time it exists in clear) with its stored record.
func (s *Store) CreateEnrollmentCode(ctx context.Context, actor string, scope CodeScope, ttl time.Duration) (string, EnrollmentCode, error) {
	if (scope.SiteID == "") == (scope.RoomID == "") {
		return "", EnrollmentCode{}, fmt.Errorf("create enrollment code: scope needs exactly one of site and room: %w", ErrInvalid)
	}
	if ttl <= 0 {
		return "", EnrollmentCode{}, fmt.Errorf("create enrollment code: ttl %v: %w", ttl, ErrInvalid)
	}
	var raw [codeBytes]byte
	_, _ = rand.Read(raw[:]) // never fails
	code := codeEncoding.EncodeToString(raw[:])
	now := s.nowMicro()
	ec := EnrollmentCode{
		Hash: HashCode(code), Scope: scope, CreatedBy: actor,
		CreatedAt: fromMicro(now), ExpiresAt: fromMicro(now + ttl.Microseconds()),
		Hint: code[len(code)-HintLen:],
	}
	err := s.inTx(ctx, func(t *tx) error {
		if _, err := t.exec(ctx, `INSERT INTO enrollment_codes (code_hash, site_id, room_id, created_by, created_at, expires_at, hint)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, ec.Hash, nullable(scope.SiteID), nullable(scope.RoomID), actor, now, ec.ExpiresAt.UnixMicro(), ec.Hint); err != nil {
			return err
		}
		// The audit entry names the hash, never the code.
		return t.audit(ctx, actor, "enrollment_code.create", "code:"+ec.Hash[:16], nil, ec)
	})
	if err != nil {
		return "", EnrollmentCode{}, fmt.Errorf("create enrollment code: %w", err)
	}
	return code, ec, nil
}

// Redemption is what a device presents, and what the server decided, when
// it enrolls: the code, the room it asks for, its hardware facts, and the
// certificate issued to it.
//
// The room: a room-scoped code names its own (RoomID, if given, must be
// that room). A site-wide code needs RoomID, a room of the code's site, or
// RoomName: the site's room of that name, created when missing (audited
// as created by the enrolling device).
//
// The certificate: either CertSerial and CertNotAfter, or Issue. Issue is
// called inside the redeeming transaction once the code has been checked,
// with the new device's ID, so the certificate can carry that ID and the
// device row its serial; no certificate is issued for a bad code, and an
// error from Issue spends nothing.
type Redemption struct {
	Code         string
	RoomID       string
	RoomName     string
	Hardware     json.RawMessage
	CertSerial   string
	CertNotAfter time.Time
	Issue        func(deviceID string) (serial string, notAfter time.Time, err error)
}

// maxRoomName bounds a room name a device asks for (a host-name label).
const maxRoomName = 63

// Redeem spends a code and creates the device in the same transaction. It
// fails with [ErrNotFound] for an unknown or revoked code,
// [ErrCodeExpired], [ErrCodeUsed] (also for the loser of two concurrent
// redeems), or [ErrWrongScope] when the room is not covered by the code or
// a site-wide code names no room. An invalid room name is [ErrInvalid].
func (s *Store) Redeem(ctx context.Context, r Redemption) (Device, error) {
	hw, err := jsonObject(r.Hardware, "hardware facts")
	if err != nil {
		return Device{}, fmt.Errorf("redeem: %w", err)
	}
	if r.Issue == nil && (r.CertSerial == "" || r.CertNotAfter.IsZero()) {
		return Device{}, fmt.Errorf("redeem: certificate serial and expiry, or an issuer, required: %w", ErrInvalid)
	}
	roomName := strings.TrimSpace(r.RoomName)
	if len(roomName) > maxRoomName || strings.IndexFunc(roomName, unicode.IsControl) >= 0 {
		return Device{}, fmt.Errorf("redeem: room name %q must be at most %d printable bytes: %w", roomName, maxRoomName, ErrInvalid)
	}
	hash := HashCode(r.Code)
	var dev Device
	err = s.inTx(ctx, func(t *tx) error {
		now := t.s.nowMicro()
		var site, room *string
		var expires int64
		var used, revoked *int64
		err := t.queryRow(ctx, `SELECT site_id, room_id, expires_at, used_at, revoked_at FROM enrollment_codes WHERE code_hash = ?`, hash).
			Scan(&site, &room, &expires, &used, &revoked)
		if err != nil {
			return notFound(err)
		}
		switch {
		case revoked != nil:
			// A revoked code answers like an unknown one: it never was
			// usable from the device's point of view.
			return fmt.Errorf("code revoked: %w", ErrNotFound)
		case used != nil:
			return ErrCodeUsed
		case now >= expires:
			return ErrCodeExpired
		}
		devID := newID()
		roomID, err := t.redeemRoom(ctx, r.RoomID, roomName, site, room, devID)
		if err != nil {
			return err
		}
		serial, notAfter := r.CertSerial, r.CertNotAfter
		if r.Issue != nil {
			if serial, notAfter, err = r.Issue(devID); err != nil {
				return fmt.Errorf("issue certificate: %w", err)
			}
		}
		dev = Device{
			ID: devID, RoomID: roomID, Hardware: hw, CertSerial: serial,
			CertNotAfter: notAfter.UTC().Truncate(time.Microsecond), Versions: json.RawMessage("{}"),
			Inventory: json.RawMessage("{}"), CreatedAt: fromMicro(now),
		}
		if _, err := t.exec(ctx, `INSERT INTO devices (id, room_id, hardware, cert_serial, cert_not_after, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, dev.ID, dev.RoomID, string(hw), dev.CertSerial, dev.CertNotAfter.UnixMicro(), now); err != nil {
			return err
		}
		// The guard against double use: only an unused code is updated, and
		// the row lock (PostgreSQL) or the write lock (SQLite) makes a
		// concurrent redeemer see it used once we commit.
		res, err := t.exec(ctx, `UPDATE enrollment_codes SET used_at = ?, device_id = ? WHERE code_hash = ? AND used_at IS NULL`,
			now, dev.ID, hash)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return ErrCodeUsed
		}
		return t.audit(ctx, "device:"+dev.ID, "device.enroll", "device:"+dev.ID, nil, dev)
	})
	if err != nil {
		return Device{}, fmt.Errorf("redeem enrollment code: %w", err)
	}
	return dev, nil
}

// redeemRoom decides the room a redeemed code puts the device in (see
// Redemption), creating a named room of a site-wide code's site.
func (t *tx) redeemRoom(ctx context.Context, roomID, roomName string, codeSite, codeRoom *string, devID string) (string, error) {
	if codeRoom != nil {
		if roomID != "" && roomID != *codeRoom {
			return "", ErrWrongScope
		}
		return *codeRoom, nil
	}
	if roomID != "" {
		var roomSite string
		if err := t.queryRow(ctx, `SELECT site_id FROM rooms WHERE id = ?`, roomID).Scan(&roomSite); err != nil {
			if errors.Is(notFound(err), ErrNotFound) {
				return "", fmt.Errorf("room %s: %w", roomID, ErrWrongScope)
			}
			return "", err
		}
		if roomSite != *codeSite {
			return "", ErrWrongScope
		}
		return roomID, nil
	}
	if roomName == "" {
		return "", fmt.Errorf("site-wide code needs a room: %w", ErrWrongScope)
	}
	err := t.queryRow(ctx, `SELECT id FROM rooms WHERE site_id = ? AND name = ?`, *codeSite, roomName).Scan(&roomID)
	if err == nil {
		return roomID, nil
	}
	if !errors.Is(notFound(err), ErrNotFound) {
		return "", err
	}
	// Both engines serialise this transaction's writes against another
	// enrollment creating the same room: SQLite by its write lock, and
	// PostgreSQL by the unique (site_id, name), where the loser fails with
	// ErrConflict and the device retries.
	r := Room{ID: newID(), SiteID: *codeSite, Name: roomName, CreatedAt: fromMicro(t.s.nowMicro())}
	if _, err := t.exec(ctx, `INSERT INTO rooms (id, site_id, name, created_at) VALUES (?, ?, ?, ?)`,
		r.ID, r.SiteID, r.Name, r.CreatedAt.UnixMicro()); err != nil {
		return "", err
	}
	if err := t.audit(ctx, "device:"+devID, "room.create", "room:"+r.ID, nil, r); err != nil {
		return "", err
	}
	return r.ID, nil
}

// EnrollmentCodes lists codes, newest first: with includeUsed, every code;
// without, only those still redeemable (unused, unrevoked, unexpired).
func (s *Store) EnrollmentCodes(ctx context.Context, includeUsed bool) ([]EnrollmentCode, error) {
	q := `SELECT code_hash, site_id, room_id, created_by, created_at, expires_at, used_at, device_id, hint, revoked_at
		FROM enrollment_codes`
	var args []any
	if !includeUsed {
		q += ` WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > ?`
		args = append(args, s.nowMicro())
	}
	rows, err := s.query(ctx, q+` ORDER BY created_at DESC, code_hash`, args...)
	if err != nil {
		return nil, fmt.Errorf("list enrollment codes: %w", err)
	}
	defer rows.Close()
	var out []EnrollmentCode
	for rows.Next() {
		var ec EnrollmentCode
		var site, room, device *string
		var created, expires int64
		var used, revoked sql.NullInt64
		if err := rows.Scan(&ec.Hash, &site, &room, &ec.CreatedBy, &created, &expires, &used, &device, &ec.Hint, &revoked); err != nil {
			return nil, fmt.Errorf("list enrollment codes: %w", err)
		}
		ec.Scope = CodeScope{SiteID: deref(site), RoomID: deref(room)}
		ec.DeviceID = deref(device)
		ec.CreatedAt, ec.ExpiresAt = fromMicro(created), fromMicro(expires)
		if used.Valid {
			ec.UsedAt = fromMicro(used.Int64)
		}
		if revoked.Valid {
			ec.RevokedAt = fromMicro(revoked.Int64)
		}
		out = append(out, ec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list enrollment codes: %w", err)
	}
	return out, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// RevokeEnrollmentCode ends an unused code before its expiry; a device
// presenting it afterwards is told the code is unknown. A used or already
// revoked code is [ErrConflict], an unknown hash [ErrNotFound].
func (s *Store) RevokeEnrollmentCode(ctx context.Context, actor, hash string) error {
	err := s.inTx(ctx, func(t *tx) error {
		var used, revoked sql.NullInt64
		if err := t.queryRow(ctx, `SELECT used_at, revoked_at FROM enrollment_codes WHERE code_hash = ?`, hash).
			Scan(&used, &revoked); err != nil {
			return notFound(err)
		}
		switch {
		case used.Valid:
			return fmt.Errorf("already used: %w", ErrConflict)
		case revoked.Valid:
			return fmt.Errorf("already revoked: %w", ErrConflict)
		}
		now := t.s.nowMicro()
		if _, err := t.exec(ctx, `UPDATE enrollment_codes SET revoked_at = ? WHERE code_hash = ? AND used_at IS NULL`, now, hash); err != nil {
			return err
		}
		return t.audit(ctx, actor, "enrollment_code.revoke", "code:"+hash[:min(16, len(hash))], nil,
			map[string]any{"hash": hash, "revoked_at": fromMicro(now)})
	})
	if err != nil {
		return fmt.Errorf("revoke enrollment code %.16s: %w", hash, err)
	}
	return nil
}

// jsonObject checks that b is one JSON object (empty means {}), and returns
// it compacted.
func jsonObject(b json.RawMessage, what string) (json.RawMessage, error) {
	if len(strings.TrimSpace(string(b))) == 0 {
		return json.RawMessage("{}"), nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s must be a JSON object: %v: %w", what, err, ErrInvalid)
	}
	if m == nil {
		return nil, fmt.Errorf("%s must be a JSON object, not null: %w", what, ErrInvalid)
	}
	out, err := json.Marshal(m) // canonical: sorted keys, compact
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", what, err, ErrInvalid)
	}
	return out, nil
}
