package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/netwatch"
)

// RestartTimeout bounds one ICE restart after a network change.
const RestartTimeout = 15 * time.Second

// followNetwork restarts the meeting's ICE when the room's network changes
// (an address, a link or the default route), rather than wait for media to
// time out. It runs for the daemon's life; without netlink (a sandbox that
// forbids it) it logs why and returns.
func (s *System) followNetwork(ctx context.Context) {
	log := s.Deps.Logger.With("subsystem", "netwatch")
	src, err := netwatch.NewNetlinkSource()
	if err != nil {
		log.Warn("network changes will not restart ICE", "err", err)
		return
	}
	defer src.Close()

	// One pending restart at most: a burst of changes needs one restart
	// after it, and the watcher's callback must not wait for signaling.
	pending := make(chan netwatch.Event, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-pending:
				s.restartAfter(ctx, ev)
			}
		}
	}()
	w := netwatch.New(src, log, 0, nil)
	if err := w.Run(ctx, func(ev netwatch.Event) {
		switch s.Meeting.State().State {
		case apiv1.MeetingConnected, apiv1.MeetingReconnecting:
		default:
			return
		}
		select {
		case pending <- ev:
		default:
		}
	}); err != nil {
		log.Warn("network watch ended", "err", err)
	}
	<-done
}

func (s *System) restartAfter(ctx context.Context, ev netwatch.Event) {
	s.Deps.Logger.Info("network changed during a meeting: restarting ICE", "kind", ev.Kind, "interface", ev.Interface, "addr", ev.Addr)
	ctx, cancel := context.WithTimeout(ctx, RestartTimeout)
	defer cancel()
	if err := s.Meeting.RestartICE(ctx); err != nil && !errors.Is(err, meeting.ErrNoRestart) {
		// The media timeout decides what happens to the meeting now.
		s.Deps.Logger.Warn("ICE restart after a network change", "err", err)
	}
}
