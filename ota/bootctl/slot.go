package bootctl

import (
	"context"
	"fmt"
)

// Slot names one of the two root-filesystem slots.
type Slot string

// The two slots.
const (
	SlotA Slot = "a"
	SlotB Slot = "b"
)

// MaxTries bounds [Control.TryNext]'s count. GRUB script has no arithmetic,
// so [GRUBScript] spells out each decrement; nine is plenty for a health
// gate and keeps every counter a single digit.
const MaxTries = 9

// ParseSlot checks a slot name read from a file, a variable or a caller.
func ParseSlot(s string) (Slot, error) {
	switch Slot(s) {
	case SlotA, SlotB:
		return Slot(s), nil
	}
	return "", fmt.Errorf("slot %q: %w", s, ErrUnknownSlot)
}

// Other returns the other slot of the pair.
func (s Slot) Other() Slot {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// Status is the boot loader's view as the running system sees it.
type Status struct {
	// Booted is the slot running now, "" when the loader did not say.
	Booted Slot
	// Default is the slot the loader boots when no trial is under way, and
	// falls back to when one fails.
	Default Slot
	// Trying is the slot on trial, "" when none. A trial lasts until it is
	// blessed, rejected, or the loader falls back.
	Trying Slot
	// TriesLeft and TriesDone count the trial's boots; both are 0 without a
	// trial. TriesLeft 0 with Trying set means this boot is the last try.
	TriesLeft, TriesDone int
	// Bad lists slots whose trial failed or was rejected and that have not
	// been offered again.
	Bad []Slot
}

// Control drives the boot loader. Every method is idempotent: repeating it
// after a crash or with the same arguments leaves the same state.
type Control interface {
	// Status reports the loader's state and the booted slot.
	Status(ctx context.Context) (Status, error)
	// TryNext makes the next boots try s, up to tries times (1..MaxTries);
	// after that many boots without Bless the loader falls back to the
	// current default and s is reported bad. s must not be the default.
	TryNext(ctx context.Context, s Slot, tries int) error
	// Bless records that s, which must be the booted slot, is good: it
	// becomes the default and its trial ends. Blessing the default is a
	// no-op and leaves a pending trial of the other slot alone.
	Bless(ctx context.Context, s Slot) error
	// Reject gives up on s at once (the health gate failed): its trial
	// ends, it is reported bad, and the next boot starts the default. s
	// must not be the default.
	Reject(ctx context.Context, s Slot) error
}

func checkTries(n int) error {
	if n < 1 || n > MaxTries {
		return fmt.Errorf("%d tries, want 1..%d: %w", n, MaxTries, ErrBadTries)
	}
	return nil
}

// The three implementations.
var (
	_ Control = (*SystemdBoot)(nil)
	_ Control = (*GRUBEnv)(nil)
	_ Control = (*FileControl)(nil)
)
