package calendar

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrNotCalendar means the document is not iCalendar at all (no
// BEGIN:VCALENDAR); nothing in it can be trusted.
var ErrNotCalendar = errors.New("not an iCalendar document")

// ErrSyntax is wrapped by every Problem about malformed content: a line
// that is not NAME:VALUE, a bad date, an unbalanced BEGIN/END.
var ErrSyntax = errors.New("iCalendar syntax error")

// ErrUnsupported is wrapped by a Problem about valid iCalendar that this
// package does not implement, such as FREQ=HOURLY.
var ErrUnsupported = errors.New("unsupported iCalendar feature")

// ErrTooLarge means a fetched calendar exceeded the configured size limit;
// the last good copy stays in use.
var ErrTooLarge = errors.New("calendar too large")

// ErrNoCopy means no calendar has been fetched yet and none is on disk.
var ErrNoCopy = errors.New("no copy of the calendar yet")

// Problem is one thing wrong in a document: it names the line (1-based,
// the first physical line of a folded property), the property and, inside
// an event, the event's UID. As a warning it says what was skipped.
type Problem struct {
	Line     int    `json:"line"`
	Property string `json:"property,omitempty"`
	UID      string `json:"uid,omitempty"`
	Skipped  string `json:"skipped,omitempty"` // "event", "line", "instance"…; empty when nothing was lost
	Err      error  `json:"-"`
}

func (p *Problem) Error() string {
	s := fmt.Sprintf("line %d", p.Line)
	if p.Property != "" {
		s += ": " + p.Property
	}
	if p.UID != "" {
		s += " (event " + p.UID + ")"
	}
	s += ": " + p.Err.Error()
	if p.Skipped != "" {
		s += " (" + p.Skipped + " skipped)"
	}
	return s
}

func (p *Problem) Unwrap() error { return p.Err }

// MarshalJSON adds the whole message, for roomctl and the API.
func (p *Problem) MarshalJSON() ([]byte, error) {
	type plain Problem
	return json.Marshal(struct {
		*plain
		Message string `json:"message"`
	}{(*plain)(p), p.Error()})
}
