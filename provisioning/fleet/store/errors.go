package store

import "errors"

// Sentinel errors. Operations wrap them with what was being done; test with
// errors.Is.
var (
	// ErrNotFound: the record asked for, or one it refers to (a site, a
	// room, a device), does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the change clashes with what is stored: a duplicate name,
	// a stale profile version, an idempotency key reused for a different
	// command, or a command status change out of order.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input is malformed (bad JSON, a profile that is not a
	// JSON object, an unknown scope or status, a non-positive duration).
	ErrInvalid = errors.New("invalid input")
	// ErrCodeUsed: the enrollment code was already redeemed.
	ErrCodeUsed = errors.New("enrollment code already used")
	// ErrCodeExpired: the enrollment code is past its expiry time.
	ErrCodeExpired = errors.New("enrollment code expired")
	// ErrWrongScope: the enrollment code does not cover the room asked for.
	ErrWrongScope = errors.New("enrollment code not valid for this room")
	// ErrRevoked: the device is revoked; it may no longer check in or be
	// sent commands.
	ErrRevoked = errors.New("device revoked")
	// ErrSchemaTooNew: the database was migrated by a newer version of this
	// code; it is refused rather than misread.
	ErrSchemaTooNew = errors.New("database schema is newer than this program")
)
