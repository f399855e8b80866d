package pulse

import "errors"

// Sentinel errors of this package. The hal package's sentinels (ErrUnplugged,
// ErrClosed, ErrOutOfRange, ...) are used where they apply; these are the
// ones specific to talking to a sound server.
var (
	// ErrNoServer is returned by New (and by operations that reconnect) when
	// no PulseAudio-protocol server answers at any of the addresses tried:
	// neither PipeWire's pipewire-pulse nor PulseAudio is running for this
	// user. roomd then falls back to ALSA directly.
	ErrNoServer = errors.New("no sound server")

	// ErrConnectionLost is returned by stream reads and writes, and by
	// Watch, when the server closed the connection (it stopped or
	// restarted). Streams wrap it together with hal.ErrUnplugged, so
	// pipelines treat it like a device that went away.
	ErrConnectionLost = errors.New("sound server connection lost")
)
