package release

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// TimestampExpires is when the published timestamp metadata expires.
func (r *Repo) TimestampExpires() time.Time { return r.timestamp.Signed.Expires }

// KeepTimestampFresh is the online half of the key split: on a server that
// holds only the timestamp key it re-signs timestamp.json whenever half
// of its lifetime (the Repo's Expiry.Timestamp) has passed, so devices
// never see the repository as frozen while the offline keys stay offline.
// Every check interval it first re-reads the metadata from disk, because
// the offline release tool may have published a new snapshot meanwhile
// and the new timestamp must name that one, not a stale one. A failed
// refresh is logged and tried again at the next check; the loop ends with
// ctx (nil error). It refuses to start without the timestamp key or with
// a check interval that is not positive.
func (r *Repo) KeepTimestampFresh(ctx context.Context, now func() time.Time, check time.Duration, log *slog.Logger) error {
	if !r.keys.Has(RoleTimestamp) {
		return fmt.Errorf("keep timestamp fresh: %w: %s", ErrMissingKey, RoleTimestamp)
	}
	if check <= 0 {
		return fmt.Errorf("keep timestamp fresh: check interval %v is not positive", check)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tick := time.NewTicker(check)
	defer tick.Stop()
	for {
		if err := r.refreshIfStale(now()); err != nil {
			log.Error("release timestamp refresh failed", "dir", r.dir, "err", err)
		} else {
			log.Debug("release timestamp checked", "expires", r.TimestampExpires())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// refreshIfStale re-reads the repository and re-signs the timestamp when
// at most half of its lifetime is left at t.
func (r *Repo) refreshIfStale(t time.Time) error {
	if err := r.load(); err != nil {
		return fmt.Errorf("reload repository %s: %w", r.dir, err)
	}
	left := r.timestamp.Signed.Expires.Sub(t)
	if left > r.expiry.Timestamp/2 {
		return nil
	}
	if err := r.RefreshTimestamp(t); err != nil {
		return err
	}
	return nil
}
