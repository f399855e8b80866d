package calendar

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParse: any input parses or fails with an error, never panics or
// hangs; every occurrence is well-formed. The corpus files are the seeds,
// so plain `go test` runs them.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.ics")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260303T090000Z\nRRULE:FREQ=DAILY;INTERVAL=1\nEND:VEVENT\nEND:VCALENDAR"))
	f.Add([]byte("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260303\nRRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30\nEND:VEVENT\nEND:VCALENDAR"))
	f.Add([]byte(""))
	loc := time.FixedZone("room", 3600)
	from := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 0, 14)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		cal, err := Parse(data, Options{Location: loc, Classifier: testClassifier})
		if err != nil {
			return
		}
		for _, p := range cal.Problems() {
			if p.Line < 1 || p.Err == nil {
				t.Fatalf("problem without a line or error: %#v", p)
			}
		}
		for _, o := range cal.Occurrences(from, to) {
			if o.End.Before(o.Start) {
				t.Fatalf("%s ends before it starts", o.ID)
			}
			if !o.Start.Before(to) || o.End.Before(from) {
				t.Fatalf("%s (%v–%v) is outside the window", o.ID, o.Start, o.End)
			}
			if o.Private && o.Title != PrivateTitle {
				t.Fatalf("private %s has title %q", o.ID, o.Title)
			}
			if o.Joinable && (o.URL == "" || o.Cancelled) {
				t.Fatalf("%s joinable without a link or while cancelled", o.ID)
			}
		}
	})
}

// FuzzExtractLinks: links are absolute, trimmed and distinct, whatever
// the text around them.
func FuzzExtractLinks(f *testing.F) {
	for _, s := range []string{
		"Join: https://zoom.us/j/1?pwd=x.",
		`<a href="https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fteams.microsoft.com%2Fl%2Fx&amp;data=1">x</a>`,
		"https://urldefense.com/v3/__https://meet.example.com/r?a=1*b__;Jg!!x$",
		"https://urldefense.proofpoint.com/v2/url?u=https-3A__meet.example.com_r&d=x",
		"https://www.google.com/url?q=https://www.google.com/url?q%3Dhttps://x.example/",
		"(https://x.example/a_(b)) janus+wss://j.example/?room=1, whip+https://w.example/ep;",
	} {
		f.Add(s, "CONFERENCE")
		f.Add(s, "X-ALT-DESC")
		f.Add(s, "DESCRIPTION")
	}
	f.Fuzz(func(t *testing.T, text, prop string) {
		checkLinks(t, ExtractLinks(map[string][]string{prop: {text}, "DESCRIPTION": {text}}))
	})
}
