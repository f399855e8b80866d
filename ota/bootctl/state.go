package bootctl

import "fmt"

// loaderState is what GRUB's variables and FileControl's file hold: a
// loader that remembers a default, at most one slot on trial with its
// counters, and at most one bad slot. At most one because only the
// non-default slot can be tried, and so only it can go bad.
type loaderState struct {
	Default   Slot
	Try       Slot
	TriesLeft int
	TriesDone int
	Bad       Slot
}

// check reports the first way s cannot be a state a loader left behind.
func (s loaderState) check() error {
	if _, err := ParseSlot(string(s.Default)); err != nil {
		return fmt.Errorf("default: %w", err)
	}
	for _, f := range []struct {
		name string
		slot Slot
	}{{"try", s.Try}, {"bad", s.Bad}} {
		if f.slot == "" {
			continue
		}
		if _, err := ParseSlot(string(f.slot)); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if f.slot == s.Default {
			return fmt.Errorf("%s slot %q is also the default", f.name, f.slot)
		}
	}
	if s.TriesLeft < 0 || s.TriesLeft > MaxTries || s.TriesDone < 0 || s.TriesDone > MaxTries {
		return fmt.Errorf("tries left %d, done %d: want 0..%d", s.TriesLeft, s.TriesDone, MaxTries)
	}
	return nil
}

func (s loaderState) status(booted Slot) Status {
	st := Status{Booted: booted, Default: s.Default, Trying: s.Try}
	if s.Try != "" {
		st.TriesLeft, st.TriesDone = s.TriesLeft, s.TriesDone
	}
	if s.Bad != "" {
		st.Bad = []Slot{s.Bad}
	}
	return st
}

func (s loaderState) tryNext(slot Slot, tries int) (loaderState, error) {
	if _, err := ParseSlot(string(slot)); err != nil {
		return s, err
	}
	if err := checkTries(tries); err != nil {
		return s, err
	}
	if slot == s.Default {
		return s, fmt.Errorf("try slot %s: %w", slot, ErrIsDefault)
	}
	s.Try, s.TriesLeft, s.TriesDone = slot, tries, 0
	if s.Bad == slot {
		s.Bad = "" // a fresh image deserves a fresh chance
	}
	return s, nil
}

func (s loaderState) bless(slot, booted Slot) (loaderState, error) {
	if _, err := ParseSlot(string(slot)); err != nil {
		return s, err
	}
	if slot != booted {
		return s, fmt.Errorf("bless slot %s while %q runs: %w", slot, booted, ErrNotBooted)
	}
	s.Default = slot
	if s.Try == slot {
		s.Try, s.TriesLeft, s.TriesDone = "", 0, 0
	}
	if s.Bad == slot {
		s.Bad = ""
	}
	return s, nil
}

func (s loaderState) reject(slot Slot) (loaderState, error) {
	if _, err := ParseSlot(string(slot)); err != nil {
		return s, err
	}
	if slot == s.Default {
		return s, fmt.Errorf("reject slot %s: %w", slot, ErrIsDefault)
	}
	if s.Try == slot {
		s.Try, s.TriesLeft, s.TriesDone = "", 0, 0
	}
	s.Bad = slot
	return s, nil
}

// boot is the loader's part on each start: take a try if one is left,
// otherwise give up on the trial and start the default.
func (s loaderState) boot() (loaderState, Slot) {
	if s.Try != "" {
		if s.TriesLeft > 0 {
			s.TriesLeft--
			s.TriesDone++
			return s, s.Try
		}
		s.Bad = s.Try
		s.Try, s.TriesLeft, s.TriesDone = "", 0, 0
	}
	return s, s.Default
}
