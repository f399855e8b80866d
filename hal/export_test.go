package hal

import "time"

// SetWatchRetry shortens the pause before a failed Watch is restarted, for
// tests.
func (r *Registry) SetWatchRetry(d time.Duration) { r.watchRetry = d }
