// Package display decides when the room's display sleeps.
//
// A Schedule gives the awake hours: days of the week and a time span in the
// room's time zone (a span whose end is before its start ends the next
// day). Outside them the display sleeps, unless a meeting is in progress or
// starts within Lead, or someone touched the screen within WakeFor. The
// state is computed from the schedule, the clock and the meeting facts, never
// stored, so it is right after any change of any of them; Run re-evaluates
// it on a timer and publishes each change.
//
// The package drives no hardware: Power is the seam for DPMS or HDMI-CEC
// (issue 8) and defaults to doing nothing.
package display

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// Lead is how long before a meeting the display wakes.
const Lead = 10 * time.Minute

// WakeFor is how long a touch keeps the display awake.
const WakeFor = 10 * time.Minute

// horizon bounds the search for the next change: past a week of awake
// hours the schedule repeats.
const horizon = 8 * 24 * time.Hour

// Schedule is when the display is awake.
type Schedule struct {
	// Sleep off keeps the display always awake.
	Sleep bool
	Days  [7]bool // indexed by time.Weekday
	// From and Until are minutes after midnight; Until < From ends the
	// next day.
	From, Until int
}

// AlwaysOn is the schedule of a display that never sleeps.
var AlwaysOn = Schedule{}

var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// FieldError is a schedule field that does not parse.
type FieldError struct {
	Field string // "days[2]", "awakeFrom"…
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ParseSchedule reads the wire form. Errors are *FieldError, joined.
func ParseSchedule(w apiv1.DisplaySchedule) (Schedule, error) {
	s := Schedule{Sleep: w.Sleep}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	for i, d := range w.Days {
		n := -1
		for j, name := range dayNames {
			if strings.EqualFold(d, name) {
				n = j
			}
		}
		switch {
		case n < 0:
			bad(fmt.Sprintf("days[%d]", i), "%q is not a day; use mon, tue, wed, thu, fri, sat or sun", d)
		case s.Days[n]:
			bad(fmt.Sprintf("days[%d]", i), "%q is listed twice", d)
		default:
			s.Days[n] = true
		}
	}
	var err error
	if s.From, err = parseClock(w.AwakeFrom); err != nil {
		bad("awakeFrom", "%v", err)
	}
	if s.Until, err = parseClock(w.AwakeUntil); err != nil {
		bad("awakeUntil", "%v", err)
	}
	if len(errs) == 0 && s.Sleep {
		if len(w.Days) == 0 {
			bad("days", "list the days the display is awake; with none it would never wake on its own")
		}
		if s.From == s.Until {
			bad("awakeUntil", "must differ from awakeFrom (%s)", w.AwakeFrom)
		}
	}
	return s, errors.Join(errs...)
}

// Wire returns the schedule's wire form.
func (s Schedule) Wire() apiv1.DisplaySchedule {
	w := apiv1.DisplaySchedule{Sleep: s.Sleep, Days: []string{}, AwakeFrom: formatClock(s.From), AwakeUntil: formatClock(s.Until)}
	for i := range 7 {
		d := (i + 1) % 7 // Monday first, as people read a week
		if s.Days[d] {
			w.Days = append(w.Days, dayNames[d])
		}
	}
	return w
}

func parseClock(v string) (int, error) {
	h, m, ok := strings.Cut(v, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not a time of day as HH:MM", v)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%q is not a time of day as HH:MM (00:00 to 23:59)", v)
	}
	return hh*60 + mm, nil
}

func formatClock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// Interval is a meeting's time.
type Interval struct{ Start, End time.Time }

// Facts tell the display about meetings.
type Facts interface {
	// InMeeting says whether the room is in a meeting now.
	InMeeting() bool
	// Meetings lists the calendar's meetings overlapping [from, to).
	Meetings(from, to time.Time) []Interval
}

// Power switches the panel; the default does nothing (DPMS and HDMI-CEC
// come with the device image, issue 8).
type Power interface{ SetOn(on bool) error }

type noPower struct{}

func (noPower) SetOn(bool) error { return nil }

// Options configure a Display.
type Options struct {
	Schedule Schedule
	Location *time.Location
	Facts    Facts
	Now      func() time.Time
	Logger   *slog.Logger
	Power    Power
	// OnChange is called with each new state, outside the Display's lock.
	OnChange func(apiv1.DisplayState)
}

// Display is the display's state machine.
type Display struct {
	opts  Options
	kick  chan struct{}
	pubMu sync.Mutex // orders publications

	mu        sync.Mutex
	sched     Schedule
	loc       *time.Location
	lastTouch time.Time
	last      apiv1.DisplayState // as last published
}

// New returns a Display; Run publishes its changes.
func New(opts Options) *Display {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Power == nil {
		opts.Power = noPower{}
	}
	if opts.Facts == nil {
		opts.Facts = noFacts{}
	}
	return &Display{opts: opts, sched: opts.Schedule, loc: opts.Location, kick: make(chan struct{}, 1)}
}

type noFacts struct{}

func (noFacts) InMeeting() bool                          { return false }
func (noFacts) Meetings(time.Time, time.Time) []Interval { return nil }

// State is the display's state now.
func (d *Display) State() apiv1.DisplayState {
	d.mu.Lock()
	sched, loc, touch := d.sched, d.loc, d.lastTouch
	d.mu.Unlock()
	return compute(sched, loc, touch, d.opts.Facts, d.opts.Now())
}

// Wake records a touch: the display stays awake for WakeFor after it.
func (d *Display) Wake() apiv1.DisplayState {
	d.mu.Lock()
	d.lastTouch = d.opts.Now()
	d.mu.Unlock()
	return d.Update()
}

// SetSchedule changes the schedule and the room's time zone.
func (d *Display) SetSchedule(s Schedule, loc *time.Location) apiv1.DisplayState {
	if loc == nil {
		loc = time.Local
	}
	d.mu.Lock()
	d.sched, d.loc = s, loc
	d.mu.Unlock()
	return d.Update()
}

// Update re-evaluates the state, publishes it if it changed, and wakes Run
// to re-arm its timer. Call it when a fact changed (a meeting started or
// ended, the calendar changed).
func (d *Display) Update() apiv1.DisplayState {
	st := d.evaluate()
	// Wake Run: the next change may be sooner than it is waiting for.
	select {
	case d.kick <- struct{}{}:
	default:
	}
	return st
}

// evaluate recomputes the state and publishes a change; Run's own
// re-evaluations use it, since kicking itself would keep Run spinning.
func (d *Display) evaluate() apiv1.DisplayState {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	st := d.State()
	d.mu.Lock()
	changed := st != d.last
	prevState := d.last.State
	d.last = st
	d.mu.Unlock()
	if changed {
		if st.State != prevState {
			d.opts.Logger.Info("display "+st.State, "reason", st.Reason)
			if err := d.opts.Power.SetOn(st.State == apiv1.DisplayAwake); err != nil {
				d.opts.Logger.Warn("switch the display", "on", st.State == apiv1.DisplayAwake, "err", err)
			}
		}
		if d.opts.OnChange != nil {
			d.opts.OnChange(st)
		}
	}
	return st
}

// Run re-evaluates the state at each expected change, and at least every
// poll (meetings can appear in the calendar at any time), until ctx ends.
func (d *Display) Run(ctx context.Context, poll time.Duration) {
	st := d.evaluate()
	for {
		wait := poll
		if !st.NextChange.IsZero() {
			if until := st.NextChange.Sub(d.opts.Now()); until < wait {
				wait = max(until, time.Second)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.kick:
		case <-t.C:
		}
		t.Stop()
		st = d.evaluate()
	}
}

// compute is the whole policy: a pure function of its inputs.
func compute(s Schedule, loc *time.Location, touch time.Time, facts Facts, now time.Time) apiv1.DisplayState {
	if !s.Sleep {
		return apiv1.DisplayState{State: apiv1.DisplayAwake, Reason: apiv1.DisplayReasonAlways}
	}
	meetings := facts.Meetings(now.Add(-24*time.Hour), now.Add(horizon+Lead))
	inCall := facts.InMeeting()
	st := evaluate(s, loc, touch, meetings, inCall, now)
	// The next change: the first boundary of any input after which the
	// state differs. Being in a call is not a boundary: it ends when it
	// ends, and Update is called then.
	var candidates []time.Time
	candidates = append(candidates, s.boundaries(loc, now, now.Add(horizon))...)
	if !touch.IsZero() {
		candidates = append(candidates, touch.Add(WakeFor))
	}
	for _, m := range meetings {
		candidates = append(candidates, m.Start.Add(-Lead), m.Start, m.End)
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].Before(candidates[j]) })
	for _, c := range candidates {
		if !c.After(now) || c.Sub(now) > horizon {
			continue
		}
		if next := evaluate(s, loc, touch, meetings, inCall, c); next.State != st.State {
			st.NextChange = c.UTC()
			break
		}
	}
	return st
}

func evaluate(s Schedule, loc *time.Location, touch time.Time, meetings []Interval, inCall bool, t time.Time) apiv1.DisplayState {
	awake := func(reason string) apiv1.DisplayState {
		return apiv1.DisplayState{State: apiv1.DisplayAwake, Reason: reason}
	}
	if s.awakeAt(loc, t) {
		return awake(apiv1.DisplayReasonSchedule)
	}
	if inCall {
		return awake(apiv1.DisplayReasonMeeting)
	}
	upcoming := false
	for _, m := range meetings {
		if !t.Before(m.Start) && t.Before(m.End) {
			return awake(apiv1.DisplayReasonMeeting)
		}
		if !t.Before(m.Start.Add(-Lead)) && t.Before(m.Start) {
			upcoming = true
		}
	}
	if upcoming {
		return awake(apiv1.DisplayReasonUpcoming)
	}
	if !touch.IsZero() && !t.Before(touch) && t.Before(touch.Add(WakeFor)) {
		return awake(apiv1.DisplayReasonTouched)
	}
	return apiv1.DisplayState{State: apiv1.DisplayAsleep, Reason: apiv1.DisplayReasonSchedule}
}

// spans lists the awake spans that start on the days from a day before
// from to the day of to, in loc. Local wall times are turned into instants
// by time.Date, so on a DST day 07:00 is 07:00 on the wall, whatever the
// offset; a wall time that does not exist that day moves forward by the gap.
func (s Schedule) spans(loc *time.Location, from, to time.Time) []Interval {
	var out []Interval
	f := from.In(loc)
	day := time.Date(f.Year(), f.Month(), f.Day()-1, 0, 0, 0, 0, loc)
	for !day.After(to) {
		if s.Days[day.Weekday()] {
			y, m, dd := day.Date()
			start := time.Date(y, m, dd, s.From/60, s.From%60, 0, 0, loc)
			endDay := dd
			if s.Until <= s.From {
				endDay++
			}
			end := time.Date(y, m, endDay, s.Until/60, s.Until%60, 0, 0, loc)
			out = append(out, Interval{Start: start, End: end})
		}
		y, m, dd := day.Date()
		day = time.Date(y, m, dd+1, 0, 0, 0, 0, loc)
	}
	return out
}

func (s Schedule) awakeAt(loc *time.Location, t time.Time) bool {
	for _, sp := range s.spans(loc, t, t) {
		if !t.Before(sp.Start) && t.Before(sp.End) {
			return true
		}
	}
	return false
}

func (s Schedule) boundaries(loc *time.Location, from, to time.Time) []time.Time {
	var out []time.Time
	for _, sp := range s.spans(loc, from, to) {
		out = append(out, sp.Start, sp.End)
	}
	return out
}
