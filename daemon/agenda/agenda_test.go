package agenda

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/calendar"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// classify knows one joinable scheme and Zoom, as the meeting engine would.
func classify(u string) (string, bool, string) {
	switch {
	case strings.HasPrefix(u, "janus+wss://"):
		return "janus", true, ""
	case strings.Contains(u, "zoom.us"):
		return "Zoom", false, "Zoom meetings cannot be joined natively yet"
	}
	return "", false, ""
}

func ics(events ...string) string {
	return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + strings.Join(events, "") + "END:VCALENDAR\r\n"
}

func event(uid, start, end, title, location string) string {
	return "BEGIN:VEVENT\r\nUID:" + uid + "\r\nDTSTART:" + start + "\r\nDTEND:" + end + "\r\nSUMMARY:" + title +
		"\r\nLOCATION:" + location + "\r\nEND:VEVENT\r\n"
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func TestFileAgenda(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "room.ics")
	write := func(s string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(file, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	write(ics(
		event("a", "20261123T090000Z", "20261123T093000Z", "Design review", "janus+wss://meet.example.com/?room=1"),
		event("b", "20261123T100000Z", "20261123T110000Z", "Vendor call", "https://acme.zoom.us/j/1"),
	), time.Unix(1000, 0))
	clk := &clock{t: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	var changes []apiv1.Agenda
	a := New(Config{File: file, Source: file, Refresh: 10 * time.Millisecond, Location: time.UTC,
		Classifier: calendar.ClassifierFunc(classify), Now: clk.now,
		OnChange: func(ag apiv1.Agenda) { mu.Lock(); changes = append(changes, ag); mu.Unlock() }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitChanges := func(n int) apiv1.Agenda {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			got := len(changes)
			var last apiv1.Agenda
			if got > 0 {
				last = changes[got-1]
			}
			mu.Unlock()
			if got >= n {
				return last
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d agenda changes, want %d", got, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	ag := waitChanges(1)
	if !ag.Configured || ag.Stale || len(ag.Meetings) != 2 {
		t.Fatalf("agenda %+v", ag)
	}
	m := ag.Meetings[0]
	if m.Title != "Design review" || !m.Joinable || m.Provider != "janus" || !m.JoinFrom.Equal(m.Start.Add(-JoinLead)) {
		t.Errorf("first meeting %+v", m)
	}
	if m := ag.Meetings[1]; m.Joinable || !strings.Contains(m.Reason, "Zoom") {
		t.Errorf("second meeting %+v", m)
	}

	// Join only in the window, only what can be joined.
	if _, err := a.Join(m.ID); !errors.Is(err, ErrNotNow) || !strings.Contains(err.Error(), "08:55") {
		t.Errorf("join an hour early = %v, want ErrNotNow naming 08:55", err)
	}
	clk.set(time.Date(2026, 11, 23, 8, 56, 0, 0, time.UTC))
	if link, err := a.Join(m.ID); err != nil || link != "janus+wss://meet.example.com/?room=1" {
		t.Errorf("join 4 minutes early = %q, %v", link, err)
	}
	if _, err := a.Join(ag.Meetings[1].ID); !errors.Is(err, ErrNotNow) || !strings.Contains(err.Error(), "Zoom") {
		t.Errorf("join the Zoom meeting = %v", err)
	}
	if _, err := a.Join("nope"); !errors.Is(err, ErrNoMeeting) {
		t.Errorf("join an unknown id = %v", err)
	}
	if due := a.DueToStart(time.Date(2026, 11, 23, 8, 59, 0, 0, time.UTC)); len(due) != 0 {
		t.Errorf("due before the start: %+v", due)
	}
	clk.set(time.Date(2026, 11, 23, 9, 0, 5, 0, time.UTC))
	if due := a.DueToStart(time.Date(2026, 11, 23, 8, 59, 55, 0, time.UTC)); len(due) != 1 || due[0].Title != "Design review" {
		t.Errorf("due at the start: %+v", due)
	}
	clk.set(time.Date(2026, 11, 23, 9, 31, 0, 0, time.UTC))
	if _, err := a.Join(m.ID); !errors.Is(err, ErrNotNow) || !strings.Contains(err.Error(), "ended") {
		t.Errorf("join after the end = %v", err)
	}

	// A broken file keeps the last good agenda, marked stale.
	write("this is not a calendar", time.Unix(2000, 0))
	ag = waitChanges(2)
	if !ag.Stale || ag.Error == "" || len(ag.Meetings) != 1 { // the review ended; the vendor call remains
		t.Errorf("agenda after a broken file: %+v", ag)
	}
	// A good file again replaces it.
	write(ics(event("c", "20261123T140000Z", "20261123T150000Z", "Retro", "janus+wss://meet.example.com/?room=2")), time.Unix(3000, 0))
	ag = waitChanges(3)
	if ag.Stale || len(ag.Meetings) != 1 || ag.Meetings[0].Title != "Retro" {
		t.Errorf("agenda after a new file: %+v", ag)
	}
}

func TestNotConfigured(t *testing.T) {
	a := New(Config{})
	if ag := a.Agenda(); ag.Configured || len(ag.Meetings) != 0 {
		t.Errorf("agenda without a calendar: %+v", ag)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// A calendar server that never answered: the agenda says so rather than
// showing an empty day.
func TestFetcherNeverSucceeded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	f, err := calendar.NewFetcher(calendar.FetcherConfig{Source: calendar.Source{URL: srv.URL + "/room.ics"},
		CachePath: filepath.Join(t.TempDir(), "calendar.json")})
	if err != nil {
		t.Fatal(err)
	}
	a := New(Config{Fetcher: f})
	if ag := a.Agenda(); ag.Stale || ag.Error != "" {
		t.Errorf("before any fetch: %+v", ag)
	}
	if _, _, err := f.Fetch(context.Background()); err == nil {
		t.Fatal("fetch from a failing server succeeded")
	}
	if ag := a.Agenda(); !ag.Configured || !ag.Stale || !strings.Contains(ag.Error, "503") {
		t.Errorf("after a failed fetch with no copy: %+v", ag)
	}
}
