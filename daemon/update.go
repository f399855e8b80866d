package daemon

import (
	"context"
	"errors"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/updater"
	"github.com/atriumroom/atrium/provisioning/agent"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// newUpdate builds the updater from [update] once the fleet agent exists.
// Updates off, or broken, leave the room working; UpdateStatus says why.
func (s *System) newUpdate() {
	var fleet updater.Fleet
	if s.Fleet != nil {
		fleet = s.Fleet
	}
	u, err := updater.New(updater.Options{
		Config: s.Config.Update, StateDir: s.Config.Daemon.StateDir, Fleet: fleet,
		Logger: s.Deps.Logger.With("subsystem", "update"), Now: s.Deps.Now,
		Hooks: updater.Hooks{
			InMeeting: s.inCall,
			Ready: func() bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				return s.state == apiv1.DaemonReady
			},
			Reboot: s.updateReboot,
			Changed: func(st apiv1.UpdateStatus) {
				if err := s.Events.Publish(apiv1.EventUpdateChanged, st); err != nil {
					s.Deps.Logger.Error("publish update status", "err", err)
				}
			},
		},
	})
	if err != nil {
		if !errors.Is(err, updater.ErrOff) {
			s.Deps.Logger.Error("updates unavailable", "err", err)
		}
		s.updateOff = err.Error()
		return
	}
	s.updates = u
}

// updateReboot reboots for an update: through login1 with a real loader
// (never in a meeting), or, in file mode, by ending roomd with
// ErrRestart so that its harness starts it again and it plays the
// firmware.
func (s *System) updateReboot(ctx context.Context) error {
	if s.Config.Update.Boot == "file" {
		if s.inCall() {
			return errors.New("the room is in a meeting; restart refused")
		}
		s.Deps.Logger.Warn("file boot loader: roomd ends to \"reboot\"")
		s.restart()
		return nil
	}
	return s.rebootRoom(ctx)
}

// UpdateStatus implements api.Backend.
func (s *System) UpdateStatus() apiv1.UpdateStatus {
	if s.updates == nil {
		return apiv1.UpdateStatus{Disabled: s.updateOff, Running: updater.ImageVersion(s.Config.Update.OSRelease), State: apiv1.UpdateIdle}
	}
	return s.updates.Status()
}

// KioskReady implements api.Backend.
func (s *System) KioskReady() {
	if s.updates != nil {
		s.updates.KioskReady()
	}
}

// fleetUpdates hands the agent's offers to the updater (which may not
// exist: updates off).
type fleetUpdates struct{ s *System }

func (f fleetUpdates) OfferUpdate(ctx context.Context, offer *fleetapi.UpdateOffer) {
	if f.s.updates != nil {
		f.s.updates.OfferUpdate(ctx, offer)
	}
}

var _ agent.Updates = fleetUpdates{}
