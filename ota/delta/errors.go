package delta

import "errors"

// Sentinel errors returned (wrapped, with the detail) by Apply and Make.
var (
	// ErrWrongBase: the base Apply was given is not the image the delta
	// was made from (its length or SHA-256 differs). Nothing was written.
	ErrWrongBase = errors.New("delta made for another base image")
	// ErrCorrupt: the delta is not a well-formed delta (bad magic, bad
	// operation, a copy outside the base, truncated, trailing data).
	ErrCorrupt = errors.New("corrupt delta")
	// ErrTargetMismatch: the delta applied but what it produced does not
	// have the length or SHA-256 the delta promises; dst must be discarded.
	ErrTargetMismatch = errors.New("delta output does not match its target")
	// ErrBaseTooShort: Make's base is shorter than the size it was told.
	ErrBaseTooShort = errors.New("base shorter than its stated size")
)
