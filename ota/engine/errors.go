package engine

import "errors"

// ErrNeverRetry means the offered version once failed to boot or failed
// the health gate on this device; it is never installed again.
var ErrNeverRetry = errors.New("version is in the never-retry set")

// ErrBelowFloor means the offered image's security version is below the
// device's floor (the highest security version it has committed): a
// downgrade to an image with known holes.
var ErrBelowFloor = errors.New("security version below the device's floor")

// ErrBusy means an offer cannot be taken now: another update is under way,
// or the device runs a slot that is not the loader's default (a trial or a
// rejected image awaiting its reboot), so the other slot is the only good
// one and must not be overwritten.
var ErrBusy = errors.New("update in progress")

// ErrWrongState means a health verdict arrived while no update is being
// verified.
var ErrWrongState = errors.New("no update being verified")

// ErrInvalidTarget means the offered target is unusable: no name, version,
// URL, or a length of zero or less. Nothing was changed.
var ErrInvalidTarget = errors.New("invalid target")

// ErrCorruptState means the state file could not be understood. [New]
// returns it together with a working engine reset to idle (see [New]).
var ErrCorruptState = errors.New("update state file corrupt")

// ErrNotCancellable means Cancel came after the boot loader was armed
// (rebooting, verifying): the health gate or the loader decides from
// there.
var ErrNotCancellable = errors.New("update armed; it can no longer be cancelled")
