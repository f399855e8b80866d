package calendar

import (
	"testing"
	"time"
)

// TestPathologicalRulesAreBounded: rules that would expand for ever, or
// from the year 1, end in bounded time; the agenda must not hang on a
// hostile or broken calendar.
func TestPathologicalRulesAreBounded(t *testing.T) {
	for _, rule := range []string{
		"FREQ=DAILY",
		"FREQ=YEARLY;BYDAY=MO,TU,WE,TH,FR,SA,SU",
		"FREQ=MONTHLY;BYMONTHDAY=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
		"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
		"FREQ=WEEKLY;BYDAY=MO;BYMONTH=2;INTERVAL=10000",
	} {
		doc := "BEGIN:VCALENDAR\nBEGIN:VTIMEZONE\nTZID:Z\nBEGIN:STANDARD\nDTSTART:00010101T000000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0100\nRRULE:FREQ=YEARLY;BYDAY=MO,TU\nEND:STANDARD\nEND:VTIMEZONE\n" +
			"BEGIN:VEVENT\nUID:x\nDTSTART;TZID=Z:00010101T090000\nRRULE:" + rule + "\nEND:VEVENT\nEND:VCALENDAR\n"
		start := time.Now()
		cal, err := Parse([]byte(doc), Options{})
		if err != nil {
			t.Fatal(err)
		}
		cal.Occurrences(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC))
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s took %v", rule, d)
		}
		t.Logf("%s: %v", rule, time.Since(start))
	}
}
