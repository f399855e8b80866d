package calendar

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// zone turns a wall-clock time into an instant. Wall-clock ("civil") times
// are carried as time.Time values in UTC whose fields are the wall clock.
type zone interface {
	at(wall time.Time) time.Time
}

// locZone is a zone of the time package (IANA, UTC, the room's zone).
type locZone struct{ loc *time.Location }

func (z locZone) at(w time.Time) time.Time {
	return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, z.loc)
}

// windowsZones maps the Windows zone names that Exchange and Outlook put
// in TZID to IANA names: the common ones for rooms, not the whole CLDR
// table. A name missing here still works when the document carries its
// VTIMEZONE, as Outlook's invites do.
var windowsZones = map[string]string{
	"UTC":                            "UTC",
	"GMT Standard Time":              "Europe/London",
	"Greenwich Standard Time":        "Atlantic/Reykjavik",
	"W. Europe Standard Time":        "Europe/Berlin",
	"Romance Standard Time":          "Europe/Paris",
	"Central Europe Standard Time":   "Europe/Budapest",
	"Central European Standard Time": "Europe/Warsaw",
	"E. Europe Standard Time":        "Europe/Chisinau",
	"FLE Standard Time":              "Europe/Helsinki",
	"GTB Standard Time":              "Europe/Bucharest",
	"Russian Standard Time":          "Europe/Moscow",
	"Eastern Standard Time":          "America/New_York",
	"Central Standard Time":          "America/Chicago",
	"Mountain Standard Time":         "America/Denver",
	"US Mountain Standard Time":      "America/Phoenix",
	"Pacific Standard Time":          "America/Los_Angeles",
	"Alaskan Standard Time":          "America/Anchorage",
	"Hawaiian Standard Time":         "Pacific/Honolulu",
	"Atlantic Standard Time":         "America/Halifax",
	"E. South America Standard Time": "America/Sao_Paulo",
	"India Standard Time":            "Asia/Kolkata",
	"China Standard Time":            "Asia/Shanghai",
	"Singapore Standard Time":        "Asia/Singapore",
	"Tokyo Standard Time":            "Asia/Tokyo",
	"AUS Eastern Standard Time":      "Australia/Sydney",
	"New Zealand Standard Time":      "Pacific/Auckland",
}

// loadIANA loads name from the zone database. "Local" and "" are refused:
// the room's zone is chosen by the caller, not by the machine's TZ.
func loadIANA(name string) (*time.Location, bool) {
	if name == "" || name == "Local" || strings.ContainsAny(name, " \\") || strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
		return nil, false
	}
	loc, err := time.LoadLocation(name)
	return loc, err == nil
}

// zoneResolver finds the zone for each TZID of one document.
type zoneResolver struct {
	room   *time.Location
	vtz    map[string]*component
	cache  map[string]zone
	errors map[string]error
}

func newZoneResolver(room *time.Location, vtimezones []*component) *zoneResolver {
	r := &zoneResolver{room: room, vtz: map[string]*component{}, cache: map[string]zone{}, errors: map[string]error{}}
	for _, c := range vtimezones {
		if p := c.get("TZID"); p != nil {
			r.vtz[p.value] = c
		}
	}
	return r
}

// resolve returns the zone for tzid; on failure it returns the room's zone
// and an error saying so, so that the meeting is kept.
func (r *zoneResolver) resolve(tzid string) (zone, error) {
	if z, ok := r.cache[tzid]; ok {
		return z, r.errors[tzid]
	}
	z, err := r.lookup(tzid)
	r.cache[tzid], r.errors[tzid] = z, err
	return z, err
}

func (r *zoneResolver) lookup(tzid string) (zone, error) {
	name := strings.TrimSpace(tzid)
	if loc, ok := loadIANA(name); ok {
		return locZone{loc}, nil
	}
	// Some producers prefix the IANA name with a path of their own, such as
	// "/freeassociation.sourceforge.net/Tzfile/Europe/London".
	if strings.HasPrefix(name, "/") {
		parts := strings.Split(strings.Trim(name, "/"), "/")
		for i := 1; i < len(parts); i++ {
			if loc, ok := loadIANA(strings.Join(parts[i:], "/")); ok {
				return locZone{loc}, nil
			}
		}
	}
	if iana, ok := windowsZones[name]; ok {
		if loc, ok := loadIANA(iana); ok {
			return locZone{loc}, nil
		}
	}
	if c, ok := r.vtz[tzid]; ok {
		if p := c.get("X-LIC-LOCATION"); p != nil {
			if loc, ok := loadIANA(strings.TrimSpace(p.value)); ok {
				return locZone{loc}, nil
			}
		}
		z, err := newRuleZone(c, tzid)
		if err == nil {
			return z, nil
		}
		return locZone{r.room}, fmt.Errorf("VTIMEZONE %q: %w; using the room's zone", tzid, err)
	}
	return locZone{r.room}, fmt.Errorf("%w: unknown TZID %q and no VTIMEZONE for it; using the room's zone", ErrUnsupported, tzid)
}

// observance is a STANDARD or DAYLIGHT part of a VTIMEZONE.
type observance struct {
	name       string
	offsetFrom int // seconds east of UTC
	offsetTo   int
	onset      time.Time // civil
	rule       *rrule
	rdates     []time.Time
}

// ruleZone is a VTIMEZONE read from its rules, for TZIDs that name no zone
// we know (Outlook's "(UTC+01:00) Amsterdam, Berlin…").
type ruleZone struct {
	tzid string
	obs  []observance

	mu      sync.Mutex
	horizon int          // trans holds every onset before 1 January of this year
	trans   []transition // sorted by wall
}

type transition struct {
	wall   time.Time
	offset int
	name   string
}

func newRuleZone(c *component, tzid string) (*ruleZone, error) {
	z := &ruleZone{tzid: tzid}
	for _, o := range c.children {
		if o.name != "STANDARD" && o.name != "DAYLIGHT" {
			continue
		}
		if o.broken != nil {
			return nil, o.broken
		}
		var ob observance
		var err error
		if ob.offsetFrom, err = parseOffset(o.get("TZOFFSETFROM")); err != nil {
			return nil, err
		}
		if ob.offsetTo, err = parseOffset(o.get("TZOFFSETTO")); err != nil {
			return nil, err
		}
		ds := o.get("DTSTART")
		if ds == nil {
			return nil, fmt.Errorf("%w: %s without DTSTART on line %d", ErrSyntax, o.name, o.line)
		}
		if ob.onset, _, err = parseCivil(ds.value); err != nil {
			return nil, fmt.Errorf("line %d: DTSTART: %w", ds.line, err)
		}
		if p := o.get("TZNAME"); p != nil {
			ob.name = p.text()
		}
		if p := o.get("RRULE"); p != nil {
			if ob.rule, err = parseRRule(p.value); err != nil {
				return nil, fmt.Errorf("line %d: RRULE: %w", p.line, err)
			}
		}
		for _, p := range o.all("RDATE") {
			for _, v := range strings.Split(p.value, ",") {
				t, _, err := parseCivil(v)
				if err != nil {
					return nil, fmt.Errorf("line %d: RDATE: %w", p.line, err)
				}
				ob.rdates = append(ob.rdates, t)
			}
		}
		z.obs = append(z.obs, ob)
	}
	if len(z.obs) == 0 {
		return nil, fmt.Errorf("%w: no STANDARD or DAYLIGHT", ErrSyntax)
	}
	return z, nil
}

// extend lists the onsets up to 1 January of horizon. Zones are asked
// about times near now, so this runs about once per document.
func (z *ruleZone) extend(horizon int) {
	to := time.Date(horizon, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []transition
	for _, o := range z.obs {
		if o.onset.Before(to) {
			out = append(out, transition{o.onset, o.offsetTo, o.name})
		}
		for _, r := range o.rdates {
			if r.Before(to) {
				out = append(out, transition{r, o.offsetTo, o.name})
			}
		}
		if o.rule != nil {
			for _, w := range o.rule.expand(o.onset, time.Time{}, to, nil) {
				out = append(out, transition{w, o.offsetTo, o.name})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].wall.Before(out[j].wall) })
	z.trans, z.horizon = out, horizon
}

func (z *ruleZone) at(w time.Time) time.Time {
	z.mu.Lock()
	defer z.mu.Unlock()
	if w.Year() >= z.horizon {
		z.extend(w.Year() + 2)
	}
	// The latest onset at or before w decides.
	i := sort.Search(len(z.trans), func(i int) bool { return z.trans[i].wall.After(w) })
	var off int
	name := z.tzid
	if i > 0 {
		off = z.trans[i-1].offset
		if z.trans[i-1].name != "" {
			name = z.trans[i-1].name
		}
	} else {
		// Before every onset: the earliest observance's "from" offset.
		first := z.obs[0]
		for _, o := range z.obs[1:] {
			if o.onset.Before(first.onset) {
				first = o
			}
		}
		off = first.offsetFrom
	}
	return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, time.FixedZone(name, off))
}

// parseOffset reads a UTC offset such as +0100 or -053000.
func parseOffset(p *property) (int, error) {
	if p == nil {
		return 0, fmt.Errorf("%w: missing TZOFFSETFROM or TZOFFSETTO", ErrSyntax)
	}
	v := strings.TrimSpace(p.value)
	if len(v) != 5 && len(v) != 7 || v[0] != '+' && v[0] != '-' {
		return 0, fmt.Errorf("line %d: %s: %w: bad UTC offset %q", p.line, p.name, ErrSyntax, clip(v))
	}
	n := 0
	for i, mul := range []int{3600, 60, 1} {
		if 1+2*i >= len(v) {
			break
		}
		d, err := strconv.Atoi(v[1+2*i : 3+2*i])
		if err != nil || d < 0 || d > 59 {
			return 0, fmt.Errorf("line %d: %s: %w: bad UTC offset %q", p.line, p.name, ErrSyntax, clip(v))
		}
		n += d * mul
	}
	if v[0] == '-' {
		n = -n
	}
	return n, nil
}
