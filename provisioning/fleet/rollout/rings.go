package rollout

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Ring is one stage of a rollout. Percent is cumulative: the ring holds
// the devices whose bucket is below it and not in an earlier ring.
type Ring struct {
	Name    string `json:"name"`
	Percent int    `json:"percent"`
}

// Bounds of a ring list.
const (
	MaxRings    = 8
	MaxRingName = 40
)

// ErrBadRings is wrapped by every ValidateRings error.
var ErrBadRings = errors.New("invalid rollout rings")

// RingError is ValidateRings' error: which ring is at fault (Index, from
// 0; -1 for the list as a whole) and which of its fields ("name",
// "percent"; "" for the list), so that an API can point at
// "rings[1].percent". It wraps ErrBadRings.
type RingError struct {
	Index  int
	Field  string
	Name   string // the ring's name, for the message
	Detail string
}

func (e *RingError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("%v: %s", ErrBadRings, e.Detail)
	}
	return fmt.Sprintf("%v: ring %d (%q): %s", ErrBadRings, e.Index+1, e.Name, e.Detail)
}

func (e *RingError) Unwrap() error { return ErrBadRings }

// ValidateRings checks a ring list: 1 to MaxRings rings, names of 1 to
// MaxRingName characters and unique, percents strictly rising from 1 to
// 100, the last exactly 100 (so every device is in some ring). The error,
// a *RingError, names the ring at fault.
func ValidateRings(rings []Ring) error {
	if len(rings) == 0 || len(rings) > MaxRings {
		return &RingError{Index: -1, Detail: fmt.Sprintf("%d rings; 1 to %d allowed", len(rings), MaxRings)}
	}
	seen := make(map[string]bool, len(rings))
	prev := 0
	for i, r := range rings {
		bad := func(field, format string, args ...any) error {
			return &RingError{Index: i, Field: field, Name: r.Name, Detail: fmt.Sprintf(format, args...)}
		}
		if n := utf8.RuneCountInString(r.Name); n == 0 || n > MaxRingName || !utf8.ValidString(r.Name) {
			return bad("name", "name must be 1 to %d characters", MaxRingName)
		}
		if seen[r.Name] {
			return bad("name", "name used twice")
		}
		seen[r.Name] = true
		if r.Percent < 1 || r.Percent > 100 {
			return bad("percent", "percent %d is not between 1 and 100", r.Percent)
		}
		if r.Percent <= prev {
			return bad("percent", "percent %d must be above the previous ring's %d (percents are cumulative)", r.Percent, prev)
		}
		prev = r.Percent
	}
	if last := len(rings) - 1; rings[last].Percent != 100 {
		return &RingError{Index: last, Field: "percent", Name: rings[last].Name,
			Detail: fmt.Sprintf("the last ring must be 100 percent, not %d", rings[last].Percent)}
	}
	return nil
}

// DefaultRings is the usual progression: one percent of canaries, then a
// tenth of the fleet, then everyone.
func DefaultRings() []Ring {
	return []Ring{{"canary", 1}, {"early", 10}, {"all", 100}}
}

// Bucket is a device's place, 0 to 99, in one rollout's order.
func Bucket(rolloutID, deviceID string) int {
	sum := sha256.Sum256([]byte(rolloutID + "/" + deviceID))
	return int(binary.BigEndian.Uint64(sum[:8]) % 100)
}

// RingOf returns the index of the device's ring, or -1 when no ring covers
// its bucket (only possible with rings that fail ValidateRings).
func RingOf(rings []Ring, rolloutID, deviceID string) int {
	b := Bucket(rolloutID, deviceID)
	for i, r := range rings {
		if r.Percent > b {
			return i
		}
	}
	return -1
}
