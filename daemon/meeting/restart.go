package meeting

import (
	"context"
	"errors"
	"fmt"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// ErrNoRestart means the current session cannot restart ICE on request:
// its provider does not implement Restarter.
var ErrNoRestart = errors.New("the meeting provider cannot restart ICE on request")

// Restarter is an optional interface of Session: a session that can
// restart ICE on all its media connections now, for instance because the
// room's network changed and the old candidates are gone. RestartICE
// returns once the restarts are negotiated, not when media flows again:
// the media timeout (WatchMedia) still judges that. A failed restart does
// not end the session by itself.
type Restarter interface {
	RestartICE(ctx context.Context) error
}

// RestartICE asks the current session to restart ICE now. Without a
// session it does nothing and returns nil; a session that cannot restart
// gives ErrNoRestart. The meeting shows reconnecting while the restart
// runs and connected again once it succeeded; after a failure it stays
// reconnecting, for media coming back or the media timeout to settle.
func (e *Engine) RestartICE(ctx context.Context) error {
	sess := e.Session()
	if sess == nil {
		return nil
	}
	r, ok := sess.(Restarter)
	if !ok {
		return ErrNoRestart
	}
	e.transition(sess, apiv1.MeetingReconnecting, "restarting ICE")
	if err := r.RestartICE(ctx); err != nil {
		return fmt.Errorf("restart ICE: %w", err)
	}
	e.transition(sess, apiv1.MeetingConnected, "")
	return nil
}
