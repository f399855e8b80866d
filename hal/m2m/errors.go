package m2m

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/internal/v4l2"
)

// Sentinel errors. Sessions also return hal.ErrBusy (the device has no room
// for another session), hal.ErrUnplugged (the device went away) and
// hal.ErrClosed (after Close), wrapped with the operation.
var (
	// ErrUnsupportedCodec is returned when a factory is asked for a codec
	// its device does not have.
	ErrUnsupportedCodec = errors.New("codec not supported by this device")

	// ErrInvalidFrame is returned for an input the session cannot take:
	// not I420, odd or zero size, too little data, an empty coded frame.
	ErrInvalidFrame = errors.New("invalid frame")

	// ErrUnsupportedSize is returned when the device will not take the
	// requested picture size (the driver's format came back smaller).
	ErrUnsupportedSize = errors.New("picture size not supported by the device")

	// ErrTimeout is returned when the device produced nothing within
	// Config.FrameTimeout: the hardware stalled.
	ErrTimeout = errors.New("no output from the device in time")

	// ErrDevice is returned when the device flags a buffer as failed
	// (V4L2_BUF_FLAG_ERROR) or reports an error on poll.
	ErrDevice = errors.New("device error")
)

// classify adds the HAL's meaning to a V4L2 error: the kernel says EBUSY,
// ENOMEM or ENOSPC when a codec has no room for another context or its
// buffers, and ENODEV when it is gone.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EBUSY), errors.Is(err, unix.ENOMEM), errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("%w: %w", hal.ErrBusy, err)
	case v4l2.Gone(err):
		return fmt.Errorf("%w: %w", hal.ErrUnplugged, err)
	}
	return err
}
