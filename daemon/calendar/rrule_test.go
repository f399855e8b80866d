package calendar

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func civil(s string) time.Time {
	t, _, err := parseCivil(s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestRRuleExpand checks rules against dates read off a calendar (and the
// RFC 5545 WKST example), not against this code's own output.
func TestRRuleExpand(t *testing.T) {
	for _, tc := range []struct {
		name, rule, start string
		want              []string
	}{
		{"last Friday", "FREQ=MONTHLY;BYDAY=-1FR;COUNT=4", "20260130T100000", []string{"20260130", "20260227", "20260327", "20260424"}},
		{"31st skips short months", "FREQ=MONTHLY;BYMONTHDAY=31;COUNT=4", "20260131T100000", []string{"20260131", "20260331", "20260531", "20260731"}},
		{"every other Tue/Thu", "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;COUNT=5", "20260303T100000", []string{"20260303", "20260305", "20260317", "20260319", "20260331"}},
		{"RFC WKST=MO", "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO", "19970805T090000", []string{"19970805", "19970810", "19970819", "19970824"}},
		{"RFC WKST=SU", "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU", "19970805T090000", []string{"19970805", "19970817", "19970819", "19970831"}},
		{"first Sunday of November", "FREQ=YEARLY;BYMONTH=11;BYDAY=1SU;COUNT=3", "20261101T020000", []string{"20261101", "20271107", "20281105"}},
		{"last weekday of the month", "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=4", "20260130T120000", []string{"20260130", "20260227", "20260331", "20260430"}},
		{"weekdays until a date", "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;UNTIL=20260309", "20260305T090000", []string{"20260305", "20260306", "20260309"}},
		{"second Tuesday, every 3 months", "FREQ=MONTHLY;INTERVAL=3;BYDAY=2TU;COUNT=3", "20260113T090000", []string{"20260113", "20260414", "20260714"}},
		{"29 February", "FREQ=YEARLY;COUNT=2", "20240229T090000", []string{"20240229", "20280229"}},
		{"yearly by month day", "FREQ=YEARLY;BYMONTH=3,9;BYMONTHDAY=-1;COUNT=3", "20260331T090000", []string{"20260331", "20260930", "20270331"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseRRule(tc.rule)
			if err != nil {
				t.Fatalf("parseRRule(%q): %v", tc.rule, err)
			}
			start := civil(tc.start)
			got := r.expand(start, time.Time{}, start.AddDate(10, 0, 0), nil)
			var days []string
			for _, g := range got {
				days = append(days, g.Format("20060102"))
				if g.Hour() != start.Hour() || g.Minute() != start.Minute() {
					t.Errorf("%v: time of day changed from %v", g, start)
				}
			}
			if strings.Join(days, " ") != strings.Join(tc.want, " ") {
				t.Errorf("got  %v\nwant %v", days, tc.want)
			}
		})
	}
}

func TestRRuleEndsAtWindow(t *testing.T) {
	r, err := parseRRule("FREQ=DAILY")
	if err != nil {
		t.Fatal(err)
	}
	start := civil("19900101T090000")
	got := r.expand(start, time.Time{}, civil("20260101T000000"), nil)
	if n := len(got); n != 13149 { // days from 1990-01-01 to 2025-12-31 inclusive
		t.Errorf("%d instances, want 13149", n)
	}
}

func TestRRuleRefused(t *testing.T) {
	for _, tc := range []struct {
		rule string
		want error
	}{
		{"INTERVAL=2", ErrSyntax},
		{"FREQ=WEEKLY;COUNT=2;UNTIL=20260101", ErrSyntax},
		{"FREQ=HOURLY", ErrUnsupported},
		{"FREQ=DAILY;BYHOUR=9", ErrUnsupported},
		{"FREQ=WEEKLY;BYDAY=1MO", ErrSyntax},
		{"FREQ=MONTHLY;BYMONTHDAY=32", ErrSyntax},
		{"FREQ=MONTHLY;BYDAY=XX", ErrSyntax},
		{"FREQ=DAILY;INTERVAL=0", ErrSyntax},
		{"FREQ=DAILY;BOGUS=1", ErrSyntax},
	} {
		if _, err := parseRRule(tc.rule); !errors.Is(err, tc.want) {
			t.Errorf("parseRRule(%q) = %v, want %v", tc.rule, err, tc.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"PT1H30M": 90 * time.Minute, "P1D": 24 * time.Hour, "-PT15M": -15 * time.Minute, "P1W": 7 * 24 * time.Hour, "P1DT2H": 26 * time.Hour, "PT45S": 45 * time.Second,
	} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "P", "PT", "1H", "PT1X", "P1H", "PT1H2"} {
		if _, err := parseDuration(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("parseDuration(%q) = %v, want ErrSyntax", in, err)
		}
	}
}

// TestRuleZone reads an Outlook-style VTIMEZONE (no IANA name anywhere)
// and checks its offsets on both sides of the US changes of 2026
// (8 March and 1 November).
func TestRuleZone(t *testing.T) {
	doc := "BEGIN:VCALENDAR\nBEGIN:VTIMEZONE\nTZID:Custom Pacific\nBEGIN:STANDARD\nDTSTART:16010101T020000\nTZOFFSETFROM:-0700\nTZOFFSETTO:-0800\nRRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11\nEND:STANDARD\nBEGIN:DAYLIGHT\nDTSTART:16010101T020000\nTZOFFSETFROM:-0800\nTZOFFSETTO:-0700\nRRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3\nEND:DAYLIGHT\nEND:VTIMEZONE\nEND:VCALENDAR\n"
	cals, _, err := parseTree([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	z, err := newZoneResolver(time.UTC, cals[0].children).resolve("Custom Pacific")
	if err != nil {
		t.Fatal(err)
	}
	for wall, want := range map[string]string{
		"20260307T120000": "2026-03-07T20:00:00Z",
		"20260309T120000": "2026-03-09T19:00:00Z",
		"20261031T120000": "2026-10-31T19:00:00Z",
		"20261102T120000": "2026-11-02T20:00:00Z",
		"20270101T000000": "2027-01-01T08:00:00Z",
	} {
		if got := z.at(civil(wall)).UTC().Format(time.RFC3339); got != want {
			t.Errorf("%s Custom Pacific = %s, want %s", wall, got, want)
		}
	}
}

func TestWindowsZoneNames(t *testing.T) {
	r := newZoneResolver(time.UTC, nil)
	for tzid, want := range map[string]string{
		"W. Europe Standard Time": "2026-07-01T08:00:00Z",
		"Pacific Standard Time":   "2026-07-01T17:00:00Z",
		"Eastern Standard Time":   "2026-07-01T14:00:00Z",
		"GMT Standard Time":       "2026-07-01T09:00:00Z",
		"Europe/Berlin":           "2026-07-01T08:00:00Z",
		"/freeassociation.sourceforge.net/Tzfile/Europe/London": "2026-07-01T09:00:00Z",
	} {
		z, err := r.resolve(tzid)
		if err != nil {
			t.Errorf("%q: %v", tzid, err)
			continue
		}
		if got := z.at(civil("20260701T100000")).UTC().Format(time.RFC3339); got != want {
			t.Errorf("10:00 on 1 July in %q = %s, want %s", tzid, got, want)
		}
	}
	if _, err := r.resolve("Local"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("TZID Local: %v, want ErrUnsupported (the room's zone decides, not the machine's)", err)
	}
}
