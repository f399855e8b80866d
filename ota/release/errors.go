package release

import "errors"

// Sentinel errors. Client errors wrap one of these together with go-tuf's
// error, so errors.Is works on both and the message keeps go-tuf's detail.
var (
	// ErrRollback: the server offered metadata older than what the device
	// already trusts (a rollback attack or a stale mirror), or a version
	// other than the one the role above names (mix and match).
	ErrRollback = errors.New("metadata version rollback or mismatch")
	// ErrExpired: metadata expired at the device's reference time (a freeze
	// attack, or a repository nobody re-signed).
	ErrExpired = errors.New("metadata expired")
	// ErrBadSignature: metadata lacks a threshold of valid signatures from
	// the keys the trusted root names.
	ErrBadSignature = errors.New("metadata signature invalid")
	// ErrTooLarge: a download exceeded its size limit (endless data attack).
	ErrTooLarge = errors.New("download larger than limit")
	// ErrTimeout: a download did not finish in time (slow retrieval attack).
	ErrTimeout = errors.New("download timed out")
	// ErrMismatch: a file's length or hash differs from what the signed
	// metadata above it says (mix and match, tampering).
	ErrMismatch = errors.New("length or hash mismatch")
	// ErrUnknownTarget: TUF's targets metadata does not list the name.
	ErrUnknownTarget = errors.New("target not listed by TUF")
	// ErrWrongHardware: the image does not list this device's hardware.
	ErrWrongHardware = errors.New("image not built for this hardware")
	// ErrBadImageMeta: a target's custom metadata is missing, has unknown
	// fields or invalid values.
	ErrBadImageMeta = errors.New("invalid image metadata")
	// ErrNotRefreshed: Target was called before a successful Refresh.
	ErrNotRefreshed = errors.New("metadata not refreshed")
	// ErrMissingKey: the operation needs a role key that Keys does not hold
	// (offline keys are only present where they are used).
	ErrMissingKey = errors.New("role key not available")
	// ErrWrongKey: a signing key is not the one the root names for its
	// role; what it signed would be refused by every device.
	ErrWrongKey = errors.New("key not trusted by root for its role")
	// ErrTargetExists: a different image was already published under the
	// name; releases are immutable.
	ErrTargetExists = errors.New("target name already published")
	// ErrNoDelta: no delta from the device's base to the image is
	// published (download the full image instead).
	ErrNoDelta = errors.New("no delta published for this base")
	// ErrBadName: a target name outside the allowed alphabet.
	ErrBadName = errors.New("invalid target name")
)
