package swcodec

import "errors"

// Sentinel errors. Sessions wrap them with the operation and the offending
// value; closed sessions return hal.ErrClosed.
var (
	// ErrUnsupportedCodec is returned when a factory is asked for a codec it
	// does not implement (H.264 decoding, VP9, anything but Opus for audio).
	ErrUnsupportedCodec = errors.New("codec not supported by the software codecs")

	// ErrInvalidConfig is returned for a session configuration or an input
	// the codec cannot take: odd or oversized frame dimensions, a bitrate
	// outside the codec's range, an audio format Opus does not have.
	ErrInvalidConfig = errors.New("invalid codec configuration")
)
