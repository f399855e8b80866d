package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// TestRoomctlCalendarCheck: an admin checks invites with roomctl against
// the real roomd, whose own meeting providers judge each link.
func TestRoomctlCalendarCheck(t *testing.T) {
	ctl := roomdtest.Build(t, "./cmd/roomctl")
	d := roomdtest.Start(t, roomdtest.Options{})

	// An invite for tomorrow: a Janus room the room can join, a Zoom
	// meeting it cannot, and a meeting with no link.
	day := time.Now().UTC().Add(24 * time.Hour).Format("20060102")
	ics := strings.Join([]string{
		"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Atrium tests//EN",
		"BEGIN:VEVENT", "UID:janus@test", "DTSTART:" + day + "T090000Z", "DTEND:" + day + "T093000Z",
		"SUMMARY:Design review", "LOCATION:janus+wss://meet.example.com/janus?room=1234", "END:VEVENT",
		"BEGIN:VEVENT", "UID:zoom@test", "DTSTART:" + day + "T100000Z", "DTEND:" + day + "T110000Z",
		"SUMMARY:Vendor call", "DESCRIPTION:Join: https://acme.zoom.us/j/123456789", "END:VEVENT",
		"BEGIN:VEVENT", "UID:lunch@test", "DTSTART:" + day + "T120000Z", "DTEND:" + day + "T130000Z",
		"SUMMARY:Lunch", "END:VEVENT",
		"END:VCALENDAR", "",
	}, "\r\n")
	file := filepath.Join(t.TempDir(), "invite.ics")
	if err := os.WriteFile(file, []byte(ics), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/calendar")
		fmt.Fprint(w, ics)
	}))
	defer srv.Close()

	for _, src := range []string{file, srv.URL + "/room.ics"} {
		out, errOut, code := roomctl(t, ctl, d, "calendar", "check", src)
		if code != 0 {
			t.Fatalf("calendar check %s: exit %d\n%s", src, code, errOut)
		}
		var got []apiv1.CalendarMeeting
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var m apiv1.CalendarMeeting
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("output line %q: %v", line, err)
			}
			got = append(got, m)
		}
		if len(got) != 3 {
			t.Fatalf("%s: %d meetings, want 3:\n%s", src, len(got), out)
		}
		if m := got[0]; m.Title != "Design review" || !m.Joinable || m.Provider != "janus" {
			t.Errorf("Janus meeting: %+v", m)
		}
		if m := got[1]; m.Title != "Vendor call" || m.Joinable || m.Provider != "Zoom" || !strings.Contains(m.Reason, "cannot be joined natively") {
			t.Errorf("Zoom meeting: %+v", m)
		}
		if m := got[2]; m.Title != "Lunch" || m.Joinable || m.URL != "" || m.Reason == "" {
			t.Errorf("meeting without a link: %+v", m)
		}
	}

	// Every invite of the calendar package's corpus goes through (their
	// dates are in the past or far ahead, so few show in the next 7 days;
	// what matters is that none is refused and problems are reported).
	corpus, err := filepath.Glob(filepath.Join(roomdtest.RepoRoot(t), "daemon", "calendar", "testdata", "*.ics"))
	if err != nil || len(corpus) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, f := range corpus {
		if _, errOut, code := roomctl(t, ctl, d, "calendar", "check", f); code != 0 {
			t.Errorf("calendar check %s: exit %d\n%s", filepath.Base(f), code, errOut)
		}
	}
	if _, errOut, code := roomctl(t, ctl, d, "calendar", "check", filepath.Join(roomdtest.RepoRoot(t), "README.md")); code != 1 || !strings.Contains(errOut, "Not a calendar") {
		t.Errorf("a README checked as a calendar: exit %d: %s", code, errOut)
	}
}
