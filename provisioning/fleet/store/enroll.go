package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
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
}

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
	}
	err := s.inTx(ctx, func(t *tx) error {
		if _, err := t.exec(ctx, `INSERT INTO enrollment_codes (code_hash, site_id, room_id, created_by, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?)`, ec.Hash, nullable(scope.SiteID), nullable(scope.RoomID), actor, now, ec.ExpiresAt.UnixMicro()); err != nil {
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
// it enrolls: the code, the room it asks for (empty for a room-scoped
// code), its hardware facts, and the certificate issued to it.
type Redemption struct {
	Code         string
	RoomID       string
	Hardware     json.RawMessage
	CertSerial   string
	CertNotAfter time.Time
}

// Redeem spends a code and creates the device in the same transaction. It
// fails with [ErrNotFound] for an unknown code, [ErrCodeExpired],
// [ErrCodeUsed] (also for the loser of two concurrent redeems), or
// [ErrWrongScope] when the room is not covered by the code.
func (s *Store) Redeem(ctx context.Context, r Redemption) (Device, error) {
	hw, err := jsonObject(r.Hardware, "hardware facts")
	if err != nil {
		return Device{}, fmt.Errorf("redeem: %w", err)
	}
	if r.CertSerial == "" || r.CertNotAfter.IsZero() {
		return Device{}, fmt.Errorf("redeem: certificate serial and expiry required: %w", ErrInvalid)
	}
	hash := HashCode(r.Code)
	var dev Device
	err = s.inTx(ctx, func(t *tx) error {
		now := t.s.nowMicro()
		var site, room *string
		var expires int64
		var used *int64
		err := t.queryRow(ctx, `SELECT site_id, room_id, expires_at, used_at FROM enrollment_codes WHERE code_hash = ?`, hash).
			Scan(&site, &room, &expires, &used)
		if err != nil {
			return notFound(err)
		}
		switch {
		case used != nil:
			return ErrCodeUsed
		case now >= expires:
			return ErrCodeExpired
		}
		roomID := r.RoomID
		if room != nil {
			if roomID != "" && roomID != *room {
				return ErrWrongScope
			}
			roomID = *room
		} else {
			if roomID == "" {
				return fmt.Errorf("site-wide code needs a room: %w", ErrWrongScope)
			}
			var roomSite string
			if err := t.queryRow(ctx, `SELECT site_id FROM rooms WHERE id = ?`, roomID).Scan(&roomSite); err != nil {
				if errors.Is(notFound(err), ErrNotFound) {
					return fmt.Errorf("room %s: %w", roomID, ErrWrongScope)
				}
				return err
			}
			if roomSite != *site {
				return ErrWrongScope
			}
		}
		dev = Device{
			ID: newID(), RoomID: roomID, Hardware: hw, CertSerial: r.CertSerial,
			CertNotAfter: r.CertNotAfter.UTC().Truncate(time.Microsecond), Versions: json.RawMessage("{}"),
			CreatedAt: fromMicro(now),
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
