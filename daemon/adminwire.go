package daemon

import (
	"context"
	"path/filepath"
	"reflect"
	"time"

	"github.com/atriumroom/atrium/daemon/admin"
	"github.com/atriumroom/atrium/daemon/agenda"
	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/daemon/devsel"
	"github.com/atriumroom/atrium/daemon/display"
	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/selftest"
	"github.com/atriumroom/atrium/daemon/settings"
)

// DisplayPoll bounds how long the display goes without re-reading its
// facts: a meeting added to the calendar wakes it at most this late.
const DisplayPoll = time.Minute

// openSettings lays the admin settings (settings.json) over roomd.toml and
// opens the admin PIN's state: both before anything is built, so every
// subsystem starts from the settings that apply.
func openSettings(cfg *config.Config, deps Deps) (*settings.Store, *admin.Guard, error) {
	store, err := settings.Open(cfg.Daemon.StateDir, cfg, deps.Logger.With("subsystem", "settings"))
	if err != nil {
		return nil, nil, err
	}
	guard, err := admin.Open(admin.Options{
		Path: filepath.Join(cfg.Daemon.StateDir, "admin.json"), Now: deps.Now, Logger: deps.Logger.With("subsystem", "admin"),
		Cost: deps.PINCost,
	})
	if err != nil {
		return nil, nil, err
	}
	return store, guard, nil
}

// newDisplay builds the display's schedule keeper; its changes go to the
// event stream.
func (s *System) newDisplay(eff settings.Effective) *display.Display {
	log := s.Deps.Logger.With("subsystem", "display")
	return display.New(display.Options{
		Schedule: eff.Display, Location: eff.Location, Facts: displayFacts{s}, Now: s.Deps.Now, Logger: log,
		OnChange: func(st apiv1.DisplayState) {
			if err := s.Events.Publish(apiv1.EventDisplayChanged, st); err != nil {
				log.Error("publish display change", "err", err)
			}
		},
	})
}

// displayFacts tells the display about the room's meetings.
type displayFacts struct{ s *System }

func (f displayFacts) InMeeting() bool { return f.s.inCall() }

// Meetings are the agenda's, except cancelled ones and all-day events
// (which would keep the screen on all day).
func (f displayFacts) Meetings(from, to time.Time) []display.Interval {
	var out []display.Interval
	for _, m := range f.s.agenda().Agenda().Meetings {
		if m.Cancelled || m.AllDay || !m.End.After(from) || !m.Start.Before(to) {
			continue
		}
		out = append(out, display.Interval{Start: m.Start, End: m.End})
	}
	return out
}

// The live slots: what a settings change replaces while roomd runs. They
// are read through these accessors, under s.mu.

func (s *System) roomName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.room
}

func (s *System) currentICE() []meeting.ICEServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ice
}

func (s *System) selector() *devsel.Selector {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Select
}

func (s *System) audioTester() *selftest.Tester {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Audio
}

func (s *System) agenda() *agenda.Agenda {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Agenda
}

func (s *System) autoJoinOn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.autoJoinSet
}

// runAgendas runs the current agenda and, when a settings change replaces
// it, stops it and runs the new one.
func (s *System) runAgendas(ctx context.Context) error {
	for {
		ag := s.agenda()
		actx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- ag.Run(actx) }()
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return nil
		case <-s.agendaSwapped:
			cancel()
			if err := <-done; err != nil {
				s.Deps.Logger.Warn("calendar source stopped", "err", err)
			}
		case err := <-done:
			cancel()
			return err
		}
	}
}

// AdminState implements api.Backend.
func (s *System) AdminState() apiv1.AdminState {
	st := s.Admin.Status()
	return apiv1.AdminState{PINSet: st.PINSet, Locked: st.Locked, LockedUntil: st.LockedUntil.UTC(), AttemptsLeft: st.AttemptsLeft}
}

// AdminLogin implements api.Backend.
func (s *System) AdminLogin(pin string) (apiv1.AdminSession, error) {
	sess, err := s.Admin.Login(pin)
	if err != nil {
		return apiv1.AdminSession{}, err
	}
	return apiv1.AdminSession{Token: sess.Token, Expires: sess.Expires.UTC()}, nil
}

// AdminCheck implements api.Backend.
func (s *System) AdminCheck(token string) error { _, err := s.Admin.Check(token); return err }

// AdminLogout implements api.Backend.
func (s *System) AdminLogout(token string) { s.Admin.Logout(token) }

// SetAdminPIN implements api.Backend.
func (s *System) SetAdminPIN(current, newPIN string, requireCurrent bool, keepToken string) error {
	return s.Admin.SetPIN(current, newPIN, requireCurrent, keepToken)
}

// ClearAdminLockout implements api.Backend.
func (s *System) ClearAdminLockout() error { return s.Admin.Unlock() }

// RoomSettings implements api.Backend.
func (s *System) RoomSettings() apiv1.Settings { return s.Overlay.Get() }

// DisplayState implements api.Backend.
func (s *System) DisplayState() apiv1.DisplayState { return s.Display.State() }

// WakeDisplay implements api.Backend.
func (s *System) WakeDisplay() apiv1.DisplayState { return s.Display.Wake() }

// UpdateSettings implements api.Backend: the settings are validated and
// stored, then applied live, each part only if it changed.
func (s *System) UpdateSettings(in apiv1.Settings) (apiv1.Settings, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	old := s.Overlay.Effective()
	out, eff, err := s.Overlay.Put(in)
	if err != nil {
		return apiv1.Settings{}, err
	}
	s.applySettings(old, eff)
	if err := s.Events.Publish(apiv1.EventSettingsChanged, apiv1.SettingsChanged{Version: eff.Version}); err != nil {
		s.Deps.Logger.Error("publish settings change", "err", err)
	}
	return out, nil
}

// setFleetLayer replaces the fleet's layer of the settings and makes the
// result live, as UpdateSettings does for the local one.
func (s *System) setFleetLayer(layer settings.FleetLayer) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	old := s.Overlay.Effective()
	_, eff, err := s.Overlay.SetFleet(layer)
	if err != nil {
		return err
	}
	s.applySettings(old, eff)
	if err := s.Events.Publish(apiv1.EventSettingsChanged, apiv1.SettingsChanged{Version: eff.Version}); err != nil {
		s.Deps.Logger.Error("publish settings change", "err", err)
	}
	return nil
}

// applySettings makes the new settings live. A part that cannot be built
// (a calendar server the fetcher refuses, a secret file gone) keeps the old
// one and is logged: the settings were already checked, so this is rare.
func (s *System) applySettings(old, eff settings.Effective) {
	log := s.Deps.Logger.With("subsystem", "settings")
	cfg := eff.Config
	if cfg.Room.Name != old.Config.Room.Name {
		s.mu.Lock()
		s.room = cfg.Room.Name
		s.mu.Unlock()
		log.Info("room name changed", "name", cfg.Room.Name)
		if err := s.Events.Publish(apiv1.EventStatus, s.Status()); err != nil {
			log.Error("publish status", "err", err)
		}
		s.notify("STATUS=" + s.statusLine())
	}

	oldCal, newCal := old.Config.Calendar, cfg.Calendar
	oldCal.AutoJoin, newCal.AutoJoin = false, false
	if !reflect.DeepEqual(oldCal, newCal) {
		if ag, err := s.newAgenda(cfg.Calendar); err != nil {
			log.Error("calendar source not changed", "err", err)
		} else {
			s.mu.Lock()
			s.Agenda = ag
			s.mu.Unlock()
			select {
			case s.agendaSwapped <- struct{}{}:
			default: // a swap is pending: the runner will pick the newest
			}
			log.Info("calendar source changed", "source", redactSource(cfg.Calendar.URL), "file", cfg.Calendar.File)
			if err := s.Events.Publish(apiv1.EventCalendarChanged, ag.Agenda()); err != nil {
				log.Error("publish calendar change", "err", err)
			}
		}
	}
	s.mu.Lock()
	s.autoJoinSet = cfg.Calendar.AutoJoin
	s.mu.Unlock()

	if !reflect.DeepEqual(old.Config.Meeting.ICEServers, cfg.Meeting.ICEServers) {
		if ice, err := iceServers(cfg.Meeting.ICEServers); err != nil {
			log.Error("ICE servers not changed", "err", err)
		} else {
			s.mu.Lock()
			s.ice = ice
			s.mu.Unlock()
			log.Info("ICE servers changed", "servers", len(ice))
		}
	}

	if old.Config.HAL.Camera != cfg.HAL.Camera || old.Config.HAL.Microphone != cfg.HAL.Microphone || old.Config.HAL.Speaker != cfg.HAL.Speaker {
		sel := devsel.New(s.HAL, devsel.Pins{Camera: cfg.HAL.Camera, Microphone: cfg.HAL.Microphone, Speaker: cfg.HAL.Speaker},
			s.Deps.Logger.With("subsystem", "hal"))
		audio := selftest.New(sel, s.HAL, s.inCall, s.Deps.Logger.With("subsystem", "audio-test"))
		s.mu.Lock()
		s.Select, s.Audio = sel, audio
		s.mu.Unlock()
		log.Info("device choice changed", "camera", cfg.HAL.Camera, "microphone", cfg.HAL.Microphone, "speaker", cfg.HAL.Speaker)
	}

	s.Display.SetSchedule(eff.Display, eff.Location)
}

// checkDisplayFacts is for meetingChanged: a call that starts or ends
// changes whether the display may sleep.
func (s *System) checkDisplayFacts() {
	if s.Display != nil {
		s.Display.Update()
	}
}
