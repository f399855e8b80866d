// Package agenda keeps the room's calendar current and answers what the
// home screen shows: the meetings of the next days, which of them the room
// can join now, and the link behind a Join button (never shown: a meeting
// link may hold a passcode).
//
// The calendar comes from a calendar.Fetcher (an iCalendar or CalDAV URL,
// with its last good copy on disk) or from a local file re-read when it
// changes (demos, tests, a calendar dropped in by provisioning). Either way
// a copy that does not parse never replaces the previous good one.
package agenda

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/calendar"
)

// JoinLead is how long before its start a meeting can be joined, as people
// expect of a room system: the Join button appears 5 minutes ahead.
const JoinLead = 5 * time.Minute

// Days is how far ahead the agenda looks.
const Days = 7

// Errors of Join, matched with errors.Is.
var (
	// ErrNoMeeting: no meeting of the agenda has that ID.
	ErrNoMeeting = errors.New("no such meeting in the agenda")
	// ErrNotNow: the meeting cannot be joined now (before JoinLead ahead of
	// its start, after its end, cancelled, or not joinable by this room).
	ErrNotNow = errors.New("meeting cannot be joined now")
)

// Config configures an Agenda.
type Config struct {
	// Fetcher supplies the calendar from a URL; File, when Fetcher is nil,
	// from a local file. Neither: the agenda is empty and not configured.
	Fetcher *calendar.Fetcher
	File    string
	// Source describes the calendar for people (a redacted URL).
	Source string
	// Refresh is how often File is checked for changes.
	Refresh time.Duration
	// Location is the room's time zone.
	Location   *time.Location
	Classifier calendar.Classifier
	Now        func() time.Time
	Logger     *slog.Logger
	// OnChange is called with the new agenda after the calendar changed.
	OnChange func(apiv1.Agenda)
}

// Agenda is the room's calendar as the home screen shows it.
type Agenda struct {
	cfg Config

	mu        sync.Mutex
	cal       *calendar.Calendar
	updatedAt time.Time
	lastErr   error
	fileStamp time.Time // File's modification time when last read
}

// New returns an Agenda; Run keeps it current.
func New(cfg Config) *Agenda {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Minute
	}
	return &Agenda{cfg: cfg}
}

// Configured says whether the room has a calendar at all.
func (a *Agenda) Configured() bool { return a.cfg.Fetcher != nil || a.cfg.File != "" }

// Run keeps the agenda current until ctx ends.
func (a *Agenda) Run(ctx context.Context) error {
	switch {
	case a.cfg.Fetcher != nil:
		// The last good copy first, so the agenda shows even offline.
		if s, err := a.cfg.Fetcher.Current(); err == nil {
			a.update(s.Data, s.FetchedAt)
		}
		return a.cfg.Fetcher.Run(ctx)
	case a.cfg.File != "":
		t := time.NewTicker(a.cfg.Refresh)
		defer t.Stop()
		for {
			a.readFile()
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}
	<-ctx.Done()
	return nil
}

// OnFetch is the Fetcher's OnUpdate: wire it when building the Fetcher.
func (a *Agenda) OnFetch(s calendar.Snapshot) { a.update(s.Data, s.FetchedAt) }

func (a *Agenda) readFile() {
	fi, err := os.Stat(a.cfg.File)
	if err == nil {
		a.mu.Lock()
		same := fi.ModTime().Equal(a.fileStamp)
		a.mu.Unlock()
		if same {
			return
		}
	}
	data, err := os.ReadFile(a.cfg.File)
	if err != nil {
		a.fail(fmt.Errorf("read calendar %s: %w", a.cfg.File, err))
		return
	}
	if a.update(data, a.cfg.Now()) {
		a.mu.Lock()
		a.fileStamp = fi.ModTime()
		a.mu.Unlock()
	}
}

func (a *Agenda) fail(err error) {
	a.mu.Lock()
	changed := a.lastErr == nil || a.lastErr.Error() != err.Error()
	a.lastErr = err
	a.mu.Unlock()
	if changed {
		a.cfg.Logger.Warn("calendar not updated; keeping the last good copy", "err", err)
		a.changed()
	}
}

// update parses data and, if it is a calendar, makes it the agenda.
func (a *Agenda) update(data []byte, at time.Time) bool {
	cal, err := calendar.Parse(data, calendar.Options{Location: a.cfg.Location, Classifier: a.cfg.Classifier})
	if err != nil {
		a.fail(fmt.Errorf("calendar: %w", err))
		return false
	}
	for _, p := range cal.Problems() {
		a.cfg.Logger.Warn("calendar entry skipped", "problem", p.Error())
	}
	a.mu.Lock()
	a.cal, a.updatedAt, a.lastErr = cal, at, nil
	a.mu.Unlock()
	a.cfg.Logger.Info("calendar updated", "source", a.cfg.Source)
	a.changed()
	return true
}

func (a *Agenda) changed() {
	if a.cfg.OnChange != nil {
		a.cfg.OnChange(a.Agenda())
	}
}

// upcoming returns the occurrences the agenda shows now.
func (a *Agenda) upcoming() (*calendar.Calendar, []calendar.Occurrence) {
	a.mu.Lock()
	cal := a.cal
	a.mu.Unlock()
	if cal == nil {
		return nil, nil
	}
	return cal, cal.Upcoming(a.cfg.Now(), Days)
}

// Agenda returns what the home screen shows now; meeting links are left
// out.
func (a *Agenda) Agenda() apiv1.Agenda {
	out := apiv1.Agenda{Configured: a.Configured(), Source: a.cfg.Source, Meetings: []apiv1.AgendaMeeting{}}
	a.mu.Lock()
	out.UpdatedAt, out.Stale = a.updatedAt, a.lastErr != nil
	if a.lastErr != nil {
		out.Error = a.lastErr.Error()
	}
	a.mu.Unlock()
	if a.cfg.Fetcher != nil {
		// Bare ErrNoCopy means nothing was fetched yet; anything else is a
		// failed refresh, with or without an older copy to show.
		if _, err := a.cfg.Fetcher.Current(); err != nil && err != calendar.ErrNoCopy { //nolint:errorlint // the bare sentinel is the point
			out.Stale, out.Error = true, err.Error()
		}
	}
	_, occ := a.upcoming()
	for _, o := range occ {
		out.Meetings = append(out.Meetings, apiv1.AgendaMeeting{
			ID: o.ID, Start: o.Start, End: o.End, AllDay: o.AllDay, Title: o.Title,
			Provider: o.Provider, Joinable: o.Joinable, Reason: o.Reason,
			Private: o.Private, Cancelled: o.Cancelled, JoinFrom: o.Start.Add(-JoinLead),
		})
	}
	return out
}

// Join returns the link of meeting id if the room can join it now.
func (a *Agenda) Join(id string) (string, error) {
	a.mu.Lock()
	cal := a.cal
	a.mu.Unlock()
	if cal == nil {
		return "", fmt.Errorf("meeting %q: %w", id, ErrNoMeeting)
	}
	now := a.cfg.Now()
	// A day back, so a meeting that just ended says so rather than "no
	// such meeting".
	occ := cal.Occurrences(now.Add(-24*time.Hour), now.AddDate(0, 0, Days))
	for _, o := range occ {
		if o.ID != id {
			continue
		}
		switch {
		case !o.Joinable || o.Cancelled || o.URL == "":
			reason := o.Reason
			if reason == "" {
				reason = "not joinable"
			}
			return "", fmt.Errorf("%q: %s: %w", o.Title, reason, ErrNotNow)
		case now.Before(o.Start.Add(-JoinLead)):
			return "", fmt.Errorf("%q starts at %s; it can be joined from %s: %w", o.Title,
				o.Start.Format("15:04"), o.Start.Add(-JoinLead).Format("15:04"), ErrNotNow)
		case !now.Before(o.End):
			return "", fmt.Errorf("%q ended at %s: %w", o.Title, o.End.Format("15:04"), ErrNotNow)
		}
		return o.URL, nil
	}
	return "", fmt.Errorf("meeting %q: %w", id, ErrNoMeeting)
}

// DueToStart returns the joinable meetings whose start is in (after, now]:
// what auto-join joins.
func (a *Agenda) DueToStart(after time.Time) []calendar.Occurrence {
	_, occ := a.upcoming()
	now := a.cfg.Now()
	var out []calendar.Occurrence
	for _, o := range occ {
		if o.Joinable && !o.Cancelled && o.URL != "" && o.Start.After(after) && !o.Start.After(now) && now.Before(o.End) {
			out = append(out, o)
		}
	}
	return out
}
