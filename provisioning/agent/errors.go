package agent

import "errors"

var (
	// ErrEnrolled means Enroll was called on a device that is enrolled and
	// neither revoked nor holding an expired certificate: it must be
	// factory-reset before it can join a fleet again.
	ErrEnrolled = errors.New("device is already enrolled; factory-reset it before enrolling again")

	// ErrBadEnrollment means the server's enrollment or renewal answer is
	// unusable (a certificate for another key, a chain that does not
	// verify…). Nothing was stored.
	ErrBadEnrollment = errors.New("unusable answer from the fleet server")

	// ErrNotEnrolled means the operation needs the device's enrollment
	// (its certificate and server), and the device has none.
	ErrNotEnrolled = errors.New("device is not enrolled")

	// ErrRecordTooLarge means an event is larger than MaxRecordSize.
	ErrRecordTooLarge = errors.New("record too large for the outbox")
)
