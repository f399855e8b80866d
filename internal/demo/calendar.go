package demo

import (
	"fmt"
	"strings"
	"time"
)

// Calendar entries' titles, as the agenda shows them.
const (
	MeetingTitle   = "Demo meeting"
	ZoomTitle      = "Partner sync (Zoom)"
	CancelledTitle = "Budget review"
)

// Calendar returns the sample iCalendar document: MeetingTitle, joinable at
// meetingURL, from two minutes before now until an hour after; a Zoom
// meeting later, which the room names but cannot join; and a cancelled
// meeting.
func Calendar(now time.Time, meetingURL string) []byte {
	now = now.UTC().Truncate(time.Minute)
	stamp := now.Format(icsTime)
	var b strings.Builder
	line := func(format string, args ...any) { b.WriteString(fold(fmt.Sprintf(format, args...))) }
	event := func(uid string, start, end time.Time, lines ...string) {
		line("BEGIN:VEVENT")
		line("UID:%s@demo.atrium.invalid", uid)
		line("DTSTAMP:%s", stamp)
		line("DTSTART:%s", start.Format(icsTime))
		line("DTEND:%s", end.Format(icsTime))
		for _, l := range lines {
			line("%s", l)
		}
		line("END:VEVENT")
	}
	line("BEGIN:VCALENDAR")
	line("VERSION:2.0")
	line("PRODID:-//Atrium//atrium-demo//EN")
	line("CALSCALE:GREGORIAN")
	event("demo-meeting", now.Add(-2*time.Minute), now.Add(time.Hour),
		"SUMMARY:"+escapeText(MeetingTitle),
		"URL:"+meetingURL,
		"DESCRIPTION:"+escapeText("A Janus room on this machine with a simulated guest (atrium-demo)."))
	event("partner-sync", now.Add(90*time.Minute), now.Add(120*time.Minute),
		"SUMMARY:"+escapeText(ZoomTitle),
		"LOCATION:https://zoom.us/j/1234567890?pwd=demo",
		"DESCRIPTION:"+escapeText("Zoom cannot be joined natively: the agenda says so."))
	event("budget-review", now.Add(3*time.Hour), now.Add(4*time.Hour),
		"SUMMARY:"+escapeText(CancelledTitle),
		"STATUS:CANCELLED",
		"URL:"+meetingURL)
	line("END:VCALENDAR")
	return []byte(b.String())
}

const icsTime = "20060102T150405Z"

// escapeText escapes an iCalendar TEXT value (RFC 5545 3.3.11).
func escapeText(s string) string {
	return strings.NewReplacer(`\`, `\\`, ";", `\;`, ",", `\,`, "\n", `\n`).Replace(s)
}

// fold ends a content line with CRLF, folding it at 75 octets (RFC 5545
// 3.1) without splitting a UTF-8 sequence.
func fold(l string) string {
	var b strings.Builder
	n := 0
	for _, r := range l {
		size := len(string(r))
		if n+size > 75 {
			b.WriteString("\r\n ")
			n = 1
		}
		b.WriteRune(r)
		n += size
	}
	b.WriteString("\r\n")
	return b.String()
}
