package calendar

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// rrule is the part of RFC 5545 §3.3.10 that calendar servers emit for
// meetings: FREQ DAILY/WEEKLY/MONTHLY/YEARLY, INTERVAL, COUNT, UNTIL,
// BYDAY (with ordinals for MONTHLY and YEARLY), BYMONTHDAY, BYMONTH,
// BYSETPOS and WKST. Anything else (HOURLY, BYHOUR, BYWEEKNO…) is
// ErrUnsupported, so that a rule is never silently misread.
type rrule struct {
	freq       string
	interval   int
	count      int       // 0: no limit
	until      time.Time // zero: no limit
	untilUTC   bool      // UNTIL ended in Z: compare instants, not wall clocks
	untilDate  bool      // UNTIL was a DATE
	byDay      []weekdayNum
	byMonthDay []int
	byMonth    []int
	bySetPos   []int
	wkst       time.Weekday
}

type weekdayNum struct {
	n   int // 0: every such weekday in the period; ±1..±53 otherwise
	day time.Weekday
}

var weekdays = map[string]time.Weekday{"SU": time.Sunday, "MO": time.Monday, "TU": time.Tuesday, "WE": time.Wednesday, "TH": time.Thursday, "FR": time.Friday, "SA": time.Saturday}

func parseRRule(v string) (*rrule, error) {
	r := &rrule{interval: 1, wkst: time.Monday}
	for _, part := range strings.Split(strings.TrimSpace(v), ";") {
		if part == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%w: %q is not NAME=VALUE", ErrSyntax, clip(part))
		}
		k = strings.ToUpper(k)
		val = strings.ToUpper(val)
		var err error
		switch k {
		case "FREQ":
			switch val {
			case "DAILY", "WEEKLY", "MONTHLY", "YEARLY":
				r.freq = val
			case "SECONDLY", "MINUTELY", "HOURLY":
				return nil, fmt.Errorf("%w: FREQ=%s", ErrUnsupported, val)
			default:
				return nil, fmt.Errorf("%w: FREQ=%q", ErrSyntax, clip(val))
			}
		case "INTERVAL":
			r.interval, err = strconv.Atoi(val)
			if err != nil || r.interval < 1 || r.interval > 10000 {
				return nil, fmt.Errorf("%w: INTERVAL=%q", ErrSyntax, clip(val))
			}
		case "COUNT":
			r.count, err = strconv.Atoi(val)
			if err != nil || r.count < 1 {
				return nil, fmt.Errorf("%w: COUNT=%q", ErrSyntax, clip(val))
			}
		case "UNTIL":
			r.until, r.untilDate, err = parseCivil(val)
			if err != nil {
				return nil, fmt.Errorf("UNTIL: %w", err)
			}
			r.untilUTC = strings.HasSuffix(val, "Z")
		case "BYDAY":
			for _, d := range strings.Split(val, ",") {
				wn, err := parseWeekdayNum(d)
				if err != nil {
					return nil, err
				}
				r.byDay = append(r.byDay, wn)
			}
		case "BYMONTHDAY":
			if r.byMonthDay, err = parseInts(val, -31, 31); err != nil {
				return nil, fmt.Errorf("BYMONTHDAY: %w", err)
			}
		case "BYMONTH":
			if r.byMonth, err = parseInts(val, 1, 12); err != nil {
				return nil, fmt.Errorf("BYMONTH: %w", err)
			}
		case "BYSETPOS":
			if r.bySetPos, err = parseInts(val, -366, 366); err != nil {
				return nil, fmt.Errorf("BYSETPOS: %w", err)
			}
		case "WKST":
			d, ok := weekdays[val]
			if !ok {
				return nil, fmt.Errorf("%w: WKST=%q", ErrSyntax, clip(val))
			}
			r.wkst = d
		case "BYHOUR", "BYMINUTE", "BYSECOND", "BYWEEKNO", "BYYEARDAY":
			return nil, fmt.Errorf("%w: %s", ErrUnsupported, k)
		default:
			if !strings.HasPrefix(k, "X-") {
				return nil, fmt.Errorf("%w: unknown rule part %q", ErrSyntax, clip(k))
			}
		}
	}
	if r.freq == "" {
		return nil, fmt.Errorf("%w: no FREQ", ErrSyntax)
	}
	if r.count > 0 && !r.until.IsZero() {
		return nil, fmt.Errorf("%w: both COUNT and UNTIL", ErrSyntax)
	}
	for _, d := range r.byDay {
		if d.n != 0 && r.freq != "MONTHLY" && r.freq != "YEARLY" {
			return nil, fmt.Errorf("%w: BYDAY with an ordinal needs FREQ=MONTHLY or YEARLY", ErrSyntax)
		}
	}
	return r, nil
}

func parseWeekdayNum(s string) (weekdayNum, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 {
		return weekdayNum{}, fmt.Errorf("%w: BYDAY=%q", ErrSyntax, clip(s))
	}
	d, ok := weekdays[s[len(s)-2:]]
	if !ok {
		return weekdayNum{}, fmt.Errorf("%w: BYDAY=%q", ErrSyntax, clip(s))
	}
	wn := weekdayNum{day: d}
	if num := s[:len(s)-2]; num != "" {
		n, err := strconv.Atoi(num)
		if err != nil || n == 0 || n < -53 || n > 53 {
			return weekdayNum{}, fmt.Errorf("%w: BYDAY=%q", ErrSyntax, clip(s))
		}
		wn.n = n
	}
	return wn, nil
}

func parseInts(s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < lo || n > hi || n == 0 {
			return nil, fmt.Errorf("%w: %q is not in %d..%d", ErrSyntax, clip(f), lo, hi)
		}
		out = append(out, n)
	}
	return out, nil
}

// maxPeriods bounds an expansion: a daily rule from 1990 to today is about
// 13,000 periods; a pathological rule must not hang the agenda.
const maxPeriods = 50000

// expand returns the wall-clock starts of the rule from dtstart (always
// the first instance, as RFC 5545 says) up to, not including, end. Starts
// before from are counted (for COUNT) but not returned, so a long series
// costs no memory. z converts a UTC UNTIL to the series' wall clock; nil
// compares UNTIL as a wall clock.
func (r *rrule) expand(dtstart, from, end time.Time, z zone) []time.Time {
	limit := r.until
	if r.untilUTC && z != nil {
		_, off := z.at(r.until).Zone()
		limit = r.until.Add(time.Duration(off) * time.Second)
	}
	within := func(t time.Time) bool {
		switch {
		case r.until.IsZero():
			return true
		case r.untilDate:
			return !civilDate(t).After(r.until)
		default:
			return !t.After(limit)
		}
	}
	if !within(dtstart) || !dtstart.Before(end) {
		return nil
	}
	var out []time.Time
	if !dtstart.Before(from) {
		out = append(out, dtstart)
	}
	n := 1
	tod := time.Duration(dtstart.Hour())*time.Hour + time.Duration(dtstart.Minute())*time.Minute + time.Duration(dtstart.Second())*time.Second
	for p := 0; p < maxPeriods; p++ {
		if r.periodStart(dtstart, p).After(end) {
			break
		}
		if r.count == 0 && r.periodStart(dtstart, p+1).Before(from) {
			continue // wholly before the window, and nothing to count
		}
		days := r.period(dtstart, p)
		sort.Slice(days, func(i, j int) bool { return days[i].Before(days[j]) })
		days = dedupe(days)
		if len(r.bySetPos) > 0 {
			days = setPos(days, r.bySetPos)
		}
		for _, d := range days {
			t := d.Add(tod)
			if !t.After(dtstart) {
				continue
			}
			if !t.Before(end) || !within(t) || r.count > 0 && n >= r.count {
				return out
			}
			if !t.Before(from) {
				out = append(out, t)
			}
			n++
		}
	}
	return out
}

func civilDate(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func dedupe(ts []time.Time) []time.Time {
	out := ts[:0]
	for i, t := range ts {
		if i == 0 || !t.Equal(ts[i-1]) {
			out = append(out, t)
		}
	}
	return out
}

func setPos(days []time.Time, pos []int) []time.Time {
	var out []time.Time
	for _, p := range pos {
		i := p - 1
		if p < 0 {
			i = len(days) + p
		}
		if i >= 0 && i < len(days) {
			out = append(out, days[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return dedupe(out)
}

// periodStart is the first day of the p-th period (each INTERVAL units
// long) after dtstart's.
func (r *rrule) periodStart(dtstart time.Time, p int) time.Time {
	d := civilDate(dtstart)
	k := p * r.interval
	switch r.freq {
	case "DAILY":
		return d.AddDate(0, 0, k)
	case "WEEKLY":
		back := (int(d.Weekday()) - int(r.wkst) + 7) % 7
		return d.AddDate(0, 0, 7*k-back)
	case "MONTHLY":
		return time.Date(d.Year(), d.Month()+time.Month(k), 1, 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(d.Year()+k, 1, 1, 0, 0, 0, 0, time.UTC)
	}
}

// period lists the candidate days of the p-th period.
func (r *rrule) period(dtstart time.Time, p int) []time.Time {
	start := r.periodStart(dtstart, p)
	var days []time.Time
	switch r.freq {
	case "DAILY":
		if r.dayMatches(start) {
			days = append(days, start)
		}
	case "WEEKLY":
		if len(r.byDay) == 0 {
			back := (int(dtstart.Weekday()) - int(r.wkst) + 7) % 7
			days = append(days, start.AddDate(0, 0, back))
		} else {
			for i := 0; i < 7; i++ {
				d := start.AddDate(0, 0, i)
				if r.hasWeekday(d.Weekday()) {
					days = append(days, d)
				}
			}
		}
		days = r.filterMonth(days)
	case "MONTHLY":
		if r.monthOK(start.Month()) {
			days = r.monthDays(start.Year(), start.Month(), dtstart)
		}
	case "YEARLY":
		switch {
		case len(r.byDay) > 0 && len(r.byMonth) == 0 && len(r.byMonthDay) == 0:
			days = r.yearWeekdays(start.Year())
		case len(r.byMonth) > 0:
			for _, m := range r.byMonth {
				days = append(days, r.monthDays(start.Year(), time.Month(m), dtstart)...)
			}
		default:
			days = r.monthDays(start.Year(), dtstart.Month(), dtstart)
		}
	}
	return days
}

func (r *rrule) hasWeekday(d time.Weekday) bool {
	for _, w := range r.byDay {
		if w.day == d {
			return true
		}
	}
	return false
}

func (r *rrule) monthOK(m time.Month) bool {
	if len(r.byMonth) == 0 {
		return true
	}
	for _, x := range r.byMonth {
		if time.Month(x) == m {
			return true
		}
	}
	return false
}

func (r *rrule) filterMonth(days []time.Time) []time.Time {
	out := days[:0]
	for _, d := range days {
		if r.monthOK(d.Month()) {
			out = append(out, d)
		}
	}
	return out
}

// dayMatches applies BYMONTH, BYMONTHDAY and BYDAY (without ordinals) to
// one day, for DAILY.
func (r *rrule) dayMatches(d time.Time) bool {
	if !r.monthOK(d.Month()) {
		return false
	}
	if len(r.byMonthDay) > 0 && !monthDayIn(d, r.byMonthDay) {
		return false
	}
	if len(r.byDay) > 0 && !r.hasWeekday(d.Weekday()) {
		return false
	}
	return true
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func monthDayIn(d time.Time, list []int) bool {
	n := daysIn(d.Year(), d.Month())
	for _, md := range list {
		if md == d.Day() || md < 0 && n+md+1 == d.Day() {
			return true
		}
	}
	return false
}

// monthDays is the candidate days of one month: BYMONTHDAY and BYDAY
// (ordinals count within the month) intersect; with neither, dtstart's day
// of the month, skipped in months that lack it (RFC 5545).
func (r *rrule) monthDays(y int, m time.Month, dtstart time.Time) []time.Time {
	n := daysIn(y, m)
	var out []time.Time
	for day := 1; day <= n; day++ {
		d := time.Date(y, m, day, 0, 0, 0, 0, time.UTC)
		ok := true
		if len(r.byMonthDay) > 0 {
			ok = monthDayIn(d, r.byMonthDay)
		}
		if ok && len(r.byDay) > 0 {
			ok = r.ordinalMatch(d, (day-1)/7+1, (n-day)/7+1)
		}
		if len(r.byMonthDay) == 0 && len(r.byDay) == 0 {
			ok = day == dtstart.Day()
		}
		if ok {
			out = append(out, d)
		}
	}
	return out
}

// ordinalMatch reports whether d is one of BYDAY's days, being the nth
// such weekday from the start of its period and the mth from the end.
func (r *rrule) ordinalMatch(d time.Time, nth, mth int) bool {
	for _, w := range r.byDay {
		if w.day != d.Weekday() {
			continue
		}
		if w.n == 0 || w.n == nth || w.n == -mth {
			return true
		}
	}
	return false
}

func (r *rrule) yearWeekdays(y int) []time.Time {
	first := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
	n := first.AddDate(1, 0, 0).Sub(first).Hours() / 24
	var out []time.Time
	for i := 0; i < int(n); i++ {
		d := first.AddDate(0, 0, i)
		if r.ordinalMatch(d, i/7+1, (int(n)-1-i)/7+1) {
			out = append(out, d)
		}
	}
	return out
}

// parseCivil reads a DATE (20260105) or DATE-TIME (20260105T090000, with
// or without Z) as a wall-clock value in UTC.
func parseCivil(v string) (t time.Time, allDay bool, err error) {
	v = strings.TrimSpace(v)
	switch len(v) {
	case 8:
		t, err = time.Parse("20060102", v)
		allDay = true
	case 15:
		t, err = time.Parse("20060102T150405", v)
	case 16:
		if v[15] != 'Z' && v[15] != 'z' {
			err = fmt.Errorf("bad suffix")
			break
		}
		t, err = time.Parse("20060102T150405", v[:15])
	default:
		err = fmt.Errorf("wrong length")
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%w: %q is not a DATE or DATE-TIME", ErrSyntax, clip(v))
	}
	return t, allDay, nil
}

// parseDuration reads an RFC 5545 duration such as PT1H30M, P1D or -P1W.
func parseDuration(v string) (time.Duration, error) {
	s := strings.ToUpper(strings.TrimSpace(v))
	bad := fmt.Errorf("%w: %q is not a DURATION", ErrSyntax, clip(v))
	neg := false
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		neg = s[0] == '-'
		s = s[1:]
	}
	if !strings.HasPrefix(s, "P") || len(s) < 3 {
		return 0, bad
	}
	s = s[1:]
	var d time.Duration
	inTime := false
	num := ""
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			num += string(c)
		case c == 'T':
			if inTime || num != "" {
				return 0, bad
			}
			inTime = true
		default:
			n, err := strconv.Atoi(num)
			if err != nil || n > 100000 {
				return 0, bad
			}
			num = ""
			unit := map[rune]time.Duration{'W': 7 * 24 * time.Hour, 'D': 24 * time.Hour}
			if inTime {
				unit = map[rune]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second}
			}
			u, ok := unit[c]
			if !ok {
				return 0, bad
			}
			d += time.Duration(n) * u
		}
	}
	if num != "" {
		return 0, bad
	}
	if neg {
		d = -d
	}
	return d, nil
}
