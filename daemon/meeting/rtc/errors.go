package rtc

import "errors"

// ErrNoCandidates means ICE gathering produced no candidate, so the far
// end could never reach this peer. With Config.RelayOnly this means no
// TURN server was configured or none answered.
var ErrNoCandidates = errors.New("no ICE candidates")

// ErrNoEncoder means no encoder factory could encode the negotiated codec.
var ErrNoEncoder = errors.New("no usable encoder")

// ErrNoDecoder means no decoder factory can decode a track's codec.
var ErrNoDecoder = errors.New("no usable decoder")

// ErrClosed means the peer (or sink) was closed.
var ErrClosed = errors.New("closed")

// ErrUnknownTrack means no remote track has the given ID.
var ErrUnknownTrack = errors.New("unknown track")

// ErrInvalidConfig means a Config field is out of range.
var ErrInvalidConfig = errors.New("invalid rtc config")
