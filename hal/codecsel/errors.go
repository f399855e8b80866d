package codecsel

import "errors"

// Sentinel errors.
var (
	// ErrNoCodec is returned when no factory, hardware or software, could
	// open a session for the codec; it wraps the last factory's error when
	// one was tried.
	ErrNoCodec = errors.New("no codec can open this session")

	// errStalled is the cause with which a hardware call's context is
	// cancelled when its time budget runs out.
	errStalled = errors.New("hardware call exceeded the stall timeout")
)
