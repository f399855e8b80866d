package meeting

import (
	"context"
	"fmt"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// WatchMedia enforces the media timeout until ctx is done. lastMedia says
// when RTP or RTCP last arrived on any of the current session's connections
// (zero: none yet). With none for half of timeout the meeting shows
// reconnecting and the session is asked once to restart ICE; with none for
// all of it the room leaves and the meeting fails with the reason. Media that comes
// back in between returns the meeting to connected.
func (e *Engine) WatchMedia(ctx context.Context, lastMedia func() time.Time, timeout time.Duration, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			e.checkMedia(ctx, lastMedia(), timeout)
		}
	}
}

func (e *Engine) checkMedia(ctx context.Context, last time.Time, timeout time.Duration) {
	e.mu.Lock()
	sess, m, connectedAt := e.session, e.state, e.connectedAt
	e.mu.Unlock()
	if sess == nil || (m.State != apiv1.MeetingConnected && m.State != apiv1.MeetingReconnecting) {
		return
	}
	// Silence is measured from when the session connected at the earliest,
	// so a far end that never sends anything is caught too.
	if last.Before(connectedAt) {
		last = connectedAt
	}
	silent := e.now().Sub(last)
	switch {
	case silent >= timeout:
		e.abort(ctx, sess, fmt.Sprintf("no media from the meeting for %s", silent.Round(time.Second)))
	case silent >= timeout/2 && m.State == apiv1.MeetingConnected:
		e.transition(sess, apiv1.MeetingReconnecting, fmt.Sprintf("no media for %s", silent.Round(time.Second)))
		// Once per silent spell: a path that died (a NAT rebinding, a
		// firewall's state expiring) often comes back with fresh ICE.
		if r, ok := sess.(Restarter); ok {
			rctx, cancel := context.WithTimeout(ctx, timeout/2)
			err := r.RestartICE(rctx)
			cancel()
			if err != nil {
				e.logger.Warn("ICE restart after silence", "err", err)
			}
		}
	case silent < timeout/2 && m.State == apiv1.MeetingReconnecting:
		e.transition(sess, apiv1.MeetingConnected, "")
	}
}

// transition moves the current session's meeting to state, unless the
// session was replaced meanwhile.
func (e *Engine) transition(sess Session, state apiv1.MeetingState, reason string) {
	e.mu.Lock()
	current := e.session == sess
	prev := e.state
	e.mu.Unlock()
	if current {
		e.set(apiv1.Meeting{State: state, URL: prev.URL, Provider: prev.Provider, CalendarID: prev.CalendarID, Reason: reason})
	}
}

// abort leaves sess, if it is still the current session, and reports the
// meeting failed with reason.
func (e *Engine) abort(ctx context.Context, sess Session, reason string) {
	e.joinMu.Lock()
	defer e.joinMu.Unlock()
	e.mu.Lock()
	current := e.session == sess
	prev := e.state
	if current {
		e.session = nil
	}
	e.mu.Unlock()
	if !current {
		return
	}
	leaveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), LeaveDeadline)
	defer cancel()
	if err := sess.Leave(leaveCtx); err != nil {
		e.logger.Warn("leave after media timeout", "err", err)
	}
	e.set(apiv1.Meeting{State: apiv1.MeetingFailed, URL: prev.URL, Provider: prev.Provider, CalendarID: prev.CalendarID, Reason: reason})
}
