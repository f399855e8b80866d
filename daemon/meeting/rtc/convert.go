package rtc

import (
	"fmt"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/pixconv"
)

// toI420 converts a camera frame to what the encoders take; I420 passes
// through without a copy.
func toI420(f hal.VideoFrame) (hal.VideoFrame, error) {
	out, err := pixconv.ToI420(f)
	if err != nil {
		return f, fmt.Errorf("convert %s %dx%d to I420: %w", f.Format, f.Width, f.Height, err)
	}
	return out, nil
}
