package rtc

import (
	"fmt"

	"github.com/atriumroom/atrium/hal"
)

// toI420 converts a camera frame to what the encoders take.
func toI420(f hal.VideoFrame) (hal.VideoFrame, error) {
	if f.Format == hal.PixelI420 {
		return f, nil
	}
	return f, fmt.Errorf("convert %s to I420: %w", f.Format, ErrNoEncoder)
}
