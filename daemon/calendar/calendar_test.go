package calendar

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRefusesNonCalendar(t *testing.T) {
	for _, in := range []string{"", "<html><body>Sign in</body></html>", "BEGIN:VEVENT\nEND:VEVENT\n"} {
		if _, err := Parse([]byte(in), Options{}); !errors.Is(err, ErrNotCalendar) {
			t.Errorf("Parse(%q) = %v, want ErrNotCalendar", in, err)
		}
	}
}

func TestProblemNamesLineAndProperty(t *testing.T) {
	doc := "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:u1\nDTSTART:20260303T0900\nEND:VEVENT\nEND:VCALENDAR\n"
	cal, err := Parse([]byte(doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ps := cal.Problems()
	if len(ps) != 1 {
		t.Fatalf("problems %v, want one", ps)
	}
	p := ps[0]
	if p.Line != 4 || p.Property != "DTSTART" || p.UID != "u1" || p.Skipped != "event" || !errors.Is(p, ErrSyntax) {
		t.Errorf("problem %+v", p)
	}
	if want := `line 4: DTSTART (event u1): iCalendar syntax error: "20260303T0900" is not a DATE or DATE-TIME (event skipped)`; p.Error() != want {
		t.Errorf("message\n got  %s\n want %s", p.Error(), want)
	}
}

// TestUpcomingIncludesMeetingUnderWay: a meeting that started before now
// and has not ended is listed (the room may still join it); one that
// ended is not, nor one starting after the window.
func TestUpcomingIncludesMeetingUnderWay(t *testing.T) {
	doc := "BEGIN:VCALENDAR\n" +
		"BEGIN:VEVENT\nUID:now\nDTSTART:20260302T063000Z\nDTEND:20260302T073000Z\nSUMMARY:Under way\nEND:VEVENT\n" +
		"BEGIN:VEVENT\nUID:over\nDTSTART:20260302T060000Z\nDTEND:20260302T070000Z\nSUMMARY:Over\nEND:VEVENT\n" +
		"BEGIN:VEVENT\nUID:late\nDTSTART:20260309T070000Z\nDTEND:20260309T080000Z\nSUMMARY:Just after the window\nEND:VEVENT\n" +
		"END:VCALENDAR\n"
	cal, err := Parse([]byte(doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, o := range cal.Upcoming(corpusNow, 7) {
		titles = append(titles, o.Title)
	}
	if strings.Join(titles, "|") != "Under way" {
		t.Errorf("Upcoming = %q, want only the meeting under way", titles)
	}
}

// TestFloatingAndAllDayUseRoomZone: the same document read by rooms in two
// zones puts floating and all-day events at each room's own wall clock and
// midnight, and UTC events at the same instant.
func TestFloatingAndAllDayUseRoomZone(t *testing.T) {
	doc := "BEGIN:VCALENDAR\n" +
		"BEGIN:VEVENT\nUID:f\nDTSTART:20260303T090000\nDTEND:20260303T100000\nEND:VEVENT\n" +
		"BEGIN:VEVENT\nUID:d\nDTSTART;VALUE=DATE:20260304\nEND:VEVENT\n" +
		"BEGIN:VEVENT\nUID:u\nDTSTART:20260305T090000Z\nDTEND:20260305T100000Z\nEND:VEVENT\n" +
		"END:VCALENDAR\n"
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	want := map[*time.Location][]string{
		berlin(t): {"2026-03-03T08:00:00Z", "2026-03-03T23:00:00Z", "2026-03-05T09:00:00Z"},
		ny:        {"2026-03-03T14:00:00Z", "2026-03-04T05:00:00Z", "2026-03-05T09:00:00Z"},
	}
	for loc, w := range want {
		cal, err := Parse([]byte(doc), Options{Location: loc})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range cal.Upcoming(corpusNow, 7) {
			got = append(got, o.Start.UTC().Format(time.RFC3339))
			if o.Title != UntitledTitle {
				t.Errorf("title %q, want %q", o.Title, UntitledTitle)
			}
		}
		if strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("room in %v: starts %v, want %v", loc, got, w)
		}
	}
}

// TestOccurrencesConcurrent: a Calendar is shared by the API handlers;
// with -race this checks that listing from several goroutines is safe,
// including the lazily extended VTIMEZONE rules.
func TestOccurrencesConcurrent(t *testing.T) {
	cal, err := Parse(mustRead(t, "testdata/outlook-teams.ics"), Options{Location: berlin(t), Classifier: testClassifier})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			from := corpusNow.AddDate(i, 0, 0)
			if n := len(cal.Occurrences(from, from.AddDate(0, 0, 7))); n == 0 {
				t.Errorf("year +%d: no occurrences", i)
			}
		})
	}
	wg.Wait()
}

func TestProblemJSON(t *testing.T) {
	p := &Problem{Line: 3, Property: "RRULE", UID: "u", Skipped: "recurrence", Err: ErrUnsupported}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"line":3,"property":"RRULE","uid":"u","skipped":"recurrence","message":"line 3: RRULE (event u): unsupported iCalendar feature (recurrence skipped)"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}
