package hal

import "errors"

// Sentinel errors shared by every driver, so callers can react with errors.Is
// without knowing which backend produced them. Drivers wrap them with the
// operation and device ("set brightness on v4l2:usb-1.2: value out of range").
var (
	// ErrOutOfRange is returned by SetControl when the value lies outside the
	// control's Min..Max.
	ErrOutOfRange = errors.New("value out of range")

	// ErrUnknownControl is returned by SetControl for a control the device
	// does not have.
	ErrUnknownControl = errors.New("unknown control")

	// ErrUnsupportedMode is returned by Open when the requested video mode or
	// audio format is not one the device offers in Modes or Formats.
	ErrUnsupportedMode = errors.New("unsupported mode")

	// ErrClosed is returned by reads and writes on a stream after its Close.
	ErrClosed = errors.New("stream closed")

	// ErrUnplugged is returned when the device went away: by reads and writes
	// on streams that were open at the time, and by Open until it comes back.
	// Unlike ErrClosed it is not the caller's doing, so pipelines typically
	// wait for the registry to report a replacement.
	ErrUnplugged = errors.New("device unplugged")

	// ErrNotFound is returned when a device ID names no device the registry or
	// driver knows.
	ErrNotFound = errors.New("device not found")

	// ErrBusy is returned by Open when the device allows only one stream at a
	// time and one is already open (speakers, like an ALSA hw device).
	ErrBusy = errors.New("device busy")
)
