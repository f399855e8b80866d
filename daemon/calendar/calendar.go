package calendar

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// PrivateTitle replaces the title of a private or confidential event.
const PrivateTitle = "Private meeting"

// UntitledTitle is the title of an event without SUMMARY.
const UntitledTitle = "(no title)"

// Occurrence is one instance of a meeting, as the agenda shows it and as
// `roomctl calendar check` prints it.
type Occurrence struct {
	// ID names the instance: the event's UID and its original start, so
	// it survives the instance being moved. The kiosk joins by ID.
	ID     string    `json:"id"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"` // exclusive; midnight after the last day for all-day events
	AllDay bool      `json:"allDay"`
	Title  string    `json:"title"`
	// URL is the chosen meeting link ("" for none). It may carry a
	// passcode: show it redacted, join it by ID.
	URL      string `json:"url,omitempty"`
	Provider string `json:"provider,omitempty"` // "janus", "whip", or a service such as "Zoom"
	Joinable bool   `json:"joinable"`
	// Reason says why the room cannot join: the service's name, "no
	// meeting link", "cancelled". Empty when Joinable.
	Reason    string `json:"reason,omitempty"`
	Private   bool   `json:"private,omitempty"`
	Cancelled bool   `json:"cancelled,omitempty"`
}

// Options configure Parse.
type Options struct {
	// Location is the room's zone: floating times and all-day dates are
	// read in it. Nil means UTC.
	Location *time.Location
	// Classifier judges links. Nil recognizes no link as a meeting.
	Classifier Classifier
}

// Calendar is a parsed document, ready to list occurrences. It is not
// changed after Parse and may be used from several goroutines.
type Calendar struct {
	loc        *time.Location
	classifier Classifier
	series     []*series
	problems   []*Problem
}

// series is one UID: its master event and its overrides.
type series struct {
	master    *event
	overrides []*event
}

// when is a DTSTART-like value: a wall clock in a zone.
type when struct {
	wall   time.Time // civil, see zone
	allDay bool
	z      zone
}

func (w when) instant() time.Time { return w.z.at(w.wall) }

type event struct {
	uid       string
	line      int
	sequence  int
	start     when
	dur       time.Duration // timed events: exact length
	days      int           // all-day events: length in days
	recurID   *time.Time    // instant of RECURRENCE-ID
	rule      *rrule
	rdates    []when
	exdates   map[int64]bool // instants, Unix seconds
	summary   string
	hasClass  bool
	private   bool
	cancelled bool
	links     []Link
}

// Parse reads an iCalendar document. Only a document that is not
// iCalendar (ErrNotCalendar) or is nested absurdly deep fails; anything
// else wrong costs the line or the event it is in, and is listed by
// Problems.
func Parse(data []byte, opts Options) (*Calendar, error) {
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}
	cals, problems, err := parseTree(data)
	if err != nil {
		return nil, fmt.Errorf("calendar: parse: %w", err)
	}
	c := &Calendar{loc: loc, classifier: opts.Classifier, problems: problems}
	byUID := map[string]*series{}
	for _, cal := range cals {
		cancelAll := false
		if p := cal.get("METHOD"); p != nil && strings.EqualFold(strings.TrimSpace(p.value), "CANCEL") {
			cancelAll = true
		}
		var vtz []*component
		for _, ch := range cal.children {
			if ch.name == "VTIMEZONE" {
				vtz = append(vtz, ch)
			}
		}
		zones := newZoneResolver(loc, vtz)
		for _, ch := range cal.children {
			if ch.name != "VEVENT" {
				continue
			}
			uid := fmt.Sprintf("line-%d", ch.line)
			if p := ch.get("UID"); p != nil && strings.TrimSpace(p.value) != "" {
				uid = strings.TrimSpace(p.text())
			}
			if ch.broken != nil {
				pr := *ch.broken
				pr.UID, pr.Skipped = uid, "event"
				c.problems = append(c.problems, &pr)
				continue
			}
			ev, warns, err := buildEvent(ch, uid, zones, loc)
			for _, w := range warns {
				w.UID = uid
				c.problems = append(c.problems, w)
			}
			if err != nil {
				var pr *Problem
				if !errors.As(err, &pr) {
					pr = &Problem{Line: ch.line, Err: err}
				}
				pr.UID, pr.Skipped = uid, "event"
				c.problems = append(c.problems, pr)
				continue
			}
			if cancelAll {
				ev.cancelled = true
			}
			s := byUID[uid]
			if s == nil {
				s = &series{}
				byUID[uid] = s
				c.series = append(c.series, s)
			}
			if ev.recurID != nil {
				s.overrides = append(s.overrides, ev)
			} else if s.master == nil || ev.sequence >= s.master.sequence {
				// A document may repeat an event (an update after the
				// original): the highest SEQUENCE, then the last, wins.
				s.master = ev
			}
		}
	}
	return c, nil
}

// Problems lists what was wrong in the document and what it cost, in
// document order.
func (c *Calendar) Problems() []*Problem {
	out := append([]*Problem(nil), c.problems...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// propErr makes a Problem for p.
func propErr(p *property, err error) *Problem {
	return &Problem{Line: p.line, Property: p.name, Err: err}
}

// parseWhen reads a DATE or DATE-TIME property with its TZID.
func parseWhen(p *property, zones *zoneResolver, room *time.Location, value string) (when, *Problem, error) {
	wall, allDay, err := parseCivil(value)
	if err != nil {
		return when{}, nil, propErr(p, err)
	}
	if strings.EqualFold(p.param("VALUE"), "DATE") && !allDay {
		return when{}, nil, propErr(p, fmt.Errorf("%w: VALUE=DATE with a time", ErrSyntax))
	}
	w := when{wall: wall, allDay: allDay, z: locZone{room}}
	switch {
	case allDay:
	case strings.HasSuffix(strings.ToUpper(strings.TrimSpace(value)), "Z"):
		w.z = locZone{time.UTC}
	case p.param("TZID") != "":
		z, zerr := zones.resolve(p.param("TZID"))
		w.z = z
		if zerr != nil {
			return w, propErr(p, zerr), nil
		}
	}
	return w, nil, nil
}

func buildEvent(c *component, uid string, zones *zoneResolver, room *time.Location) (*event, []*Problem, error) {
	ev := &event{uid: uid, line: c.line, exdates: map[int64]bool{}}
	var warns []*Problem
	warnOnce := map[string]bool{}
	warn := func(p *Problem) {
		if p != nil && !warnOnce[p.Error()] {
			warnOnce[p.Error()] = true
			warns = append(warns, p)
		}
	}
	ds := c.get("DTSTART")
	if ds == nil {
		return nil, warns, &Problem{Line: c.line, Property: "DTSTART", Err: fmt.Errorf("%w: VEVENT without DTSTART", ErrSyntax)}
	}
	start, w, err := parseWhen(ds, zones, room, ds.value)
	if err != nil {
		return nil, warns, err
	}
	warn(w)
	ev.start = start
	switch {
	case c.get("DTEND") != nil:
		de := c.get("DTEND")
		end, w, err := parseWhen(de, zones, room, de.value)
		if err != nil {
			return nil, warns, err
		}
		warn(w)
		if start.allDay {
			ev.days = int(civilDate(end.wall).Sub(civilDate(start.wall)).Hours() / 24)
		} else {
			ev.dur = end.instant().Sub(start.instant())
		}
	case c.get("DURATION") != nil:
		p := c.get("DURATION")
		d, err := parseDuration(p.value)
		if err != nil {
			return nil, warns, propErr(p, err)
		}
		if start.allDay {
			ev.days = int(d / (24 * time.Hour))
		} else {
			ev.dur = d
		}
	default:
		if start.allDay {
			ev.days = 1
		}
	}
	if ev.dur < 0 || ev.days < 0 {
		// Seen in the wild: an end before the start. Keep the meeting, as
		// a point in time (or one day), and say so.
		warn(&Problem{Line: c.line, Property: "DTEND", Err: fmt.Errorf("%w: ends before it starts", ErrSyntax)})
		ev.dur = 0
		ev.days = 1
	}
	if start.allDay && ev.days == 0 {
		ev.days = 1
	}
	if p := c.get("RECURRENCE-ID"); p != nil {
		r, w, err := parseWhen(p, zones, room, p.value)
		if err != nil {
			return nil, warns, err
		}
		warn(w)
		t := r.instant()
		ev.recurID = &t
	}
	if p := c.get("RRULE"); p != nil {
		r, err := parseRRule(p.value)
		if err != nil {
			// A rule we cannot read: keep the first instance rather than
			// lose the meeting, and say so.
			warn(&Problem{Line: p.line, Property: "RRULE", Skipped: "recurrence", Err: err})
		} else {
			ev.rule = r
		}
	}
	for _, p := range c.all("RDATE") {
		if strings.EqualFold(p.param("VALUE"), "PERIOD") {
			// Only the period's start is used; the event's length applies.
			var starts []string
			for _, v := range strings.Split(p.value, ",") {
				s, _, _ := strings.Cut(v, "/")
				starts = append(starts, s)
			}
			p = &property{name: p.name, params: p.params, value: strings.Join(starts, ","), line: p.line}
		}
		for _, v := range strings.Split(p.value, ",") {
			r, w, err := parseWhen(p, zones, room, v)
			if err != nil {
				warn(err.(*Problem))
				continue
			}
			warn(w)
			ev.rdates = append(ev.rdates, r)
		}
	}
	for _, p := range c.all("EXDATE") {
		for _, v := range strings.Split(p.value, ",") {
			r, w, err := parseWhen(p, zones, room, v)
			if err != nil {
				warn(err.(*Problem))
				continue
			}
			warn(w)
			ev.exdates[r.instant().Unix()] = true
		}
	}
	if p := c.get("SEQUENCE"); p != nil {
		ev.sequence, _ = strconv.Atoi(strings.TrimSpace(p.value))
	}
	if p := c.get("SUMMARY"); p != nil {
		ev.summary = strings.TrimSpace(p.text())
	}
	if p := c.get("CLASS"); p != nil {
		ev.hasClass = true
		switch strings.ToUpper(strings.TrimSpace(p.value)) {
		case "PRIVATE", "CONFIDENTIAL":
			ev.private = true
		}
	}
	if p := c.get("STATUS"); p != nil && strings.EqualFold(strings.TrimSpace(p.value), "CANCELLED") {
		ev.cancelled = true
	}
	props := map[string][]string{}
	for _, p := range c.props {
		props[p.name] = append(props[p.name], p.text())
	}
	ev.links = ExtractLinks(props)
	return ev, warns, nil
}

// instance is one expanded occurrence before classification.
type instance struct {
	ev    *event
	key   time.Time // original start: the recurrence id
	start time.Time
	end   time.Time
}

func (ev *event) span(w when) (time.Time, time.Time) {
	s := w.instant()
	if w.allDay {
		return s, ev.start.z.at(civilDate(w.wall).AddDate(0, 0, ev.days))
	}
	return s, s.Add(ev.dur)
}

// Occurrences lists the instances that overlap [from, to), sorted by
// start. Cancelled instances are included and marked (see the package
// documentation).
func (c *Calendar) Occurrences(from, to time.Time) []Occurrence {
	var insts []instance
	overlaps := func(s, e time.Time) bool {
		if e.Equal(s) {
			return !s.Before(from) && s.Before(to)
		}
		return s.Before(to) && e.After(from)
	}
	for _, s := range c.series {
		moved := map[int64]bool{}
		for _, o := range s.overrides {
			moved[o.recurID.Unix()] = true
		}
		if m := s.master; m != nil {
			for _, w := range m.starts(from, to) {
				st, en := m.span(w)
				if m.exdates[st.Unix()] || moved[st.Unix()] || !overlaps(st, en) {
					continue
				}
				insts = append(insts, instance{ev: m, key: st, start: st, end: en})
			}
		}
		for _, o := range s.overrides {
			st, en := o.span(o.start)
			if s.master != nil && s.master.exdates[o.recurID.Unix()] {
				continue
			}
			if overlaps(st, en) {
				insts = append(insts, instance{ev: o, key: *o.recurID, start: st, end: en})
			}
		}
	}
	out := make([]Occurrence, 0, len(insts))
	cache := map[string][4]string{}
	for _, in := range insts {
		out = append(out, c.occurrence(in, c.masterOf(in.ev), cache))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		if out[i].Title != out[j].Title {
			return out[i].Title < out[j].Title
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Upcoming lists the occurrences from now (including those under way) to
// days days later.
func (c *Calendar) Upcoming(now time.Time, days int) []Occurrence {
	return c.Occurrences(now, now.Add(time.Duration(days)*24*time.Hour))
}

func (c *Calendar) masterOf(ev *event) *event {
	if ev.recurID == nil {
		return nil
	}
	for _, s := range c.series {
		if s.master != nil && s.master.uid == ev.uid {
			return s.master
		}
	}
	return nil
}

// starts lists the wall-clock starts of the event that may overlap
// [from, to): a margin of two days (any zone's offset) and the event's
// length on each side, so that only these are converted to instants.
func (ev *event) starts(from, to time.Time) []when {
	length := ev.dur + time.Duration(ev.days)*24*time.Hour
	lo := civilOf(from).Add(-48*time.Hour - length)
	hi := civilOf(to).Add(48 * time.Hour)
	var ws []when
	if ev.rule == nil {
		ws = append(ws, ev.start)
	} else {
		for _, t := range ev.rule.expand(ev.start.wall, lo, hi, ev.start.z) {
			ws = append(ws, when{wall: t, allDay: ev.start.allDay, z: ev.start.z})
		}
	}
	seen := map[int64]bool{}
	for _, w := range ws {
		seen[w.instant().Unix()] = true
	}
	for _, r := range ev.rdates {
		if !seen[r.instant().Unix()] {
			seen[r.instant().Unix()] = true
			ws = append(ws, r)
		}
	}
	return ws
}

// civilOf is t's wall clock in UTC, as a civil value.
func civilOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
}

func (c *Calendar) occurrence(in instance, master *event, cache map[string][4]string) Occurrence {
	ev := in.ev
	o := Occurrence{
		ID:        ev.uid + "/" + in.key.UTC().Format("20060102T150405Z"),
		Start:     in.start.In(c.loc),
		End:       in.end.In(c.loc),
		AllDay:    ev.start.allDay,
		Title:     ev.summary,
		Cancelled: ev.cancelled,
	}
	private := ev.private
	links := ev.links
	if master != nil {
		// An override that leaves things out inherits them from its series.
		if o.Title == "" {
			o.Title = master.summary
		}
		if !ev.hasClass {
			private = master.private
		}
		if len(links) == 0 {
			links = master.links
		}
	}
	if o.Title == "" {
		o.Title = UntitledTitle
	}
	if private {
		o.Private, o.Title = true, PrivateTitle
	}
	if o.Cancelled {
		o.Reason = "cancelled"
		return o
	}
	o.URL, o.Provider, o.Joinable, o.Reason = c.pick(links, cache)
	return o
}

// pick chooses the link to offer: the first one a provider here can join,
// else the first of a known service, else none.
func (c *Calendar) pick(links []Link, cache map[string][4]string) (u, provider string, joinable bool, reason string) {
	var known *[4]string
	for _, l := range links {
		r, ok := cache[l.URL]
		if !ok {
			if c.classifier != nil {
				p, j, why := c.classifier.Classify(l.URL)
				r = [4]string{l.URL, p, strconv.FormatBool(j), why}
			} else {
				r = [4]string{l.URL, "", "false", ""}
			}
			cache[l.URL] = r
		}
		if r[2] == "true" {
			return r[0], r[1], true, ""
		}
		if r[1] != "" && known == nil {
			rr := r
			known = &rr
		}
	}
	if known != nil {
		why := known[3]
		if why == "" {
			why = known[1] + " meetings cannot be joined natively yet"
		}
		return known[0], known[1], false, why
	}
	if len(links) == 0 {
		return "", "", false, "no meeting link"
	}
	if len(links) == 1 {
		return "", "", false, "no meeting link (1 other link)"
	}
	return "", "", false, fmt.Sprintf("no meeting link (%d other links)", len(links))
}
