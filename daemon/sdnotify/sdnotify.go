// Package sdnotify tells systemd how roomd is doing: READY=1 once it serves,
// STATUS= lines a person reads in `systemctl status`, and watchdog pings.
package sdnotify

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends one sd_notify state string.
type Notifier interface {
	Notify(state string) error
}

// Systemd notifies the service manager named by $NOTIFY_SOCKET. Without that
// variable (roomd started by hand) every call is a no-op.
type Systemd struct{}

// Notify implements Notifier.
func (Systemd) Notify(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return nil
}

// WatchdogInterval returns how often to ping the watchdog: half of
// $WATCHDOG_USEC, as systemd recommends, or 0 when the watchdog is off.
func WatchdogInterval() (time.Duration, error) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0, fmt.Errorf("read watchdog settings: %w", err)
	}
	return d / 2, nil
}

// Watchdog pings every interval until ctx is done. healthy is asked before
// each ping: a daemon whose event loop is wedged stops pinging and systemd
// restarts it.
func Watchdog(ctx context.Context, n Notifier, interval time.Duration, healthy func() bool, logger *slog.Logger) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if healthy != nil && !healthy() {
				logger.Warn("not healthy: skipping watchdog ping")
				continue
			}
			if err := n.Notify(daemon.SdNotifyWatchdog); err != nil {
				logger.Warn("watchdog ping", "err", err)
			}
		}
	}
}
