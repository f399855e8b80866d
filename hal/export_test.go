package hal

import "time"

// SetWatchRetry shortens the pause before a failed Watch is restarted, for
// tests.
func (r *Registry) SetWatchRetry(d time.Duration) { r.watchRetry = d }

// FallbackWithRetry is Fallback with a shorter retry of the primary's Watch.
func FallbackWithRetry(name string, primary, secondary Driver, retry time.Duration) Driver {
	return &fallback{name: name, primary: primary, secondary: secondary, retry: retry}
}
