package install

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrInvalidTarget means the Target itself is unusable (no URL, a length of
// zero or less); nothing was touched.
var ErrInvalidTarget = errors.New("invalid target")

// ErrTooLarge means the image is larger than the slot's device. It is
// returned before anything is written.
var ErrTooLarge = errors.New("image larger than the slot")

// ErrTooLong means the server sent (or announced) more bytes than the
// target's length: "endless data". The download stops at length+1 bytes
// and the extra bytes are never written.
var ErrTooLong = errors.New("server sent more data than the target's length")

// ErrTruncated means the body ended before the target's length. What was
// received is synced and reported, so calling Install again resumes.
var ErrTruncated = errors.New("server sent less data than the target's length")

// ErrStalled means no byte arrived for the installer's stall timeout
// (headers included). What was received is synced and reported, so calling
// Install again resumes.
var ErrStalled = errors.New("download stalled")

// ErrBadResponse means the server answered with a status or headers an
// install cannot use: an error status, a 206 for a range it was not asked
// for, or a Content-Range other than the one requested.
var ErrBadResponse = errors.New("unusable server response")

// ErrHashMismatch means the image's SHA-256 is not the one the target
// vouched for. Install returns it as a *HashMismatchError; the slot must not
// be booted, and the persisted progress has been reset to 0 so the next
// attempt starts over rather than trusting any byte on the device.
var ErrHashMismatch = errors.New("image hash mismatch")

// HashMismatchError says which check failed and what it saw. It matches
// ErrHashMismatch with errors.Is.
type HashMismatchError struct {
	// Stage is "download" (the hash computed over the bytes as they were
	// written, including any prefix re-read on resume) or "read-back" (the
	// whole image read again from the device after the final sync).
	Stage string
	Want  [32]byte
	Got   [32]byte
}

func (e *HashMismatchError) Error() string {
	return fmt.Sprintf("%v at %s: want sha256 %s, got %s", ErrHashMismatch, e.Stage,
		hex.EncodeToString(e.Want[:]), hex.EncodeToString(e.Got[:]))
}

// Is makes errors.Is(err, ErrHashMismatch) true.
func (e *HashMismatchError) Is(target error) bool { return target == ErrHashMismatch }
