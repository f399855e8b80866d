package bootctl

import "errors"

// ErrUnknownSlot means a slot name is neither "a" nor "b", whether it came
// from a caller or from the loader's state.
var ErrUnknownSlot = errors.New("unknown slot")

// ErrCorrupt means the loader's state cannot be understood (a truncated
// grubenv, an entry name that does not follow the scheme, a missing default,
// malformed JSON). Nothing was changed; a person or a repair step must look.
var ErrCorrupt = errors.New("boot state corrupt")

// ErrBadTries means a try count outside 1..[MaxTries].
var ErrBadTries = errors.New("try count out of range")

// ErrIsDefault means the operation needs a slot other than the default:
// trying the default slot is meaningless and rejecting it would leave
// nothing to fall back to.
var ErrIsDefault = errors.New("slot is the default")

// ErrNotBooted means Bless was asked for a slot that is not running now:
// only the running system can vouch for itself.
var ErrNotBooted = errors.New("slot is not the booted one")

// ErrNoEntry means the slot has no boot loader entry (systemd-boot): the
// installer has not written one yet.
var ErrNoEntry = errors.New("slot has no boot entry")
