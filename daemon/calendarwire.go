package daemon

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/atriumroom/atrium/daemon/agenda"
	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/calendar"
	"github.com/atriumroom/atrium/daemon/config"
)

// newAgenda builds the room's agenda from the [calendar] configuration.
func (s *System) newAgenda(cfg config.Calendar) (*agenda.Agenda, error) {
	loc := time.Local
	if cfg.Timezone != "" {
		var err error
		if loc, err = time.LoadLocation(cfg.Timezone); err != nil {
			return nil, fmt.Errorf("calendar.timezone: %w", err)
		}
	}
	log := s.Deps.Logger.With("subsystem", "calendar")
	acfg := agenda.Config{
		File: cfg.File, Source: cfg.File, Refresh: cfg.Refresh.Duration, Location: loc,
		Classifier: calendar.ClassifierFunc(s.Meeting.Classify), Now: s.Deps.Now, Logger: log,
		OnChange: func(a apiv1.Agenda) {
			if err := s.Events.Publish(apiv1.EventCalendarChanged, a); err != nil {
				log.Error("publish calendar change", "err", err)
			}
		},
	}
	var ag *agenda.Agenda
	if cfg.URL != "" {
		src := calendar.Source{URL: cfg.URL, Username: cfg.Username, CalDAV: cfg.CalDAV}
		var err error
		if cfg.PasswordFile != "" {
			if src.Password, err = readSecret(cfg.PasswordFile); err != nil {
				return nil, fmt.Errorf("calendar.password_file: %w", err)
			}
		}
		if cfg.TokenFile != "" {
			if src.BearerToken, err = readSecret(cfg.TokenFile); err != nil {
				return nil, fmt.Errorf("calendar.token_file: %w", err)
			}
		}
		f, err := calendar.NewFetcher(calendar.FetcherConfig{
			Source:    src,
			CachePath: filepath.Join(s.Config.Daemon.StateDir, "calendar.json"),
			Interval:  cfg.Refresh.Duration,
			// The agenda takes a copy only if it parses; the fetcher keeps
			// the last one that did.
			Validate: func(b []byte) error { _, err := calendar.Parse(b, calendar.Options{}); return err },
			OnUpdate: func(snap calendar.Snapshot) { ag.OnFetch(snap) },
			Logger:   log,
			Now:      s.Deps.Now,
		})
		if err != nil {
			return nil, fmt.Errorf("calendar.url: %w", err)
		}
		acfg.Fetcher, acfg.Source = f, redactSource(cfg.URL)
	}
	ag = agenda.New(acfg)
	return ag, nil
}

// redactSource shows a calendar URL without credentials or query, which
// often carry a private token.
func redactSource(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// Calendar implements api.Backend.
func (s *System) Calendar() apiv1.Agenda { return s.agenda().Agenda() }

// JoinFromCalendar implements api.Backend: the meeting's link, never seen
// by the caller, is joined like a typed one.
func (s *System) JoinFromCalendar(ctx context.Context, id string) (apiv1.Meeting, error) {
	link, err := s.agenda().Join(id)
	if err != nil {
		return s.Meeting.State(), err
	}
	return s.joinScheduled(ctx, link, id)
}

// autoJoin joins meetings as they start, while calendar.auto_join is set
// (the admin settings switch it live) and the room is not already in a
// meeting.
func (s *System) autoJoin(ctx context.Context) {
	const tick = 10 * time.Second
	t := time.NewTicker(tick)
	defer t.Stop()
	last := s.Deps.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.Deps.Now()
		due := s.agenda().DueToStart(last)
		last = now
		if len(due) == 0 || s.inCall() || !s.autoJoinOn() {
			continue
		}
		o := due[0]
		s.Deps.Logger.Info("auto-join: the meeting starts", "title", o.Title, "provider", o.Provider)
		if _, err := s.JoinFromCalendar(ctx, o.ID); err != nil {
			s.Deps.Logger.Warn("auto-join failed", "title", o.Title, "err", err)
		}
	}
}
