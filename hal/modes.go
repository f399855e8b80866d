package hal

import (
	"cmp"
	"slices"
)

// formatCost orders capture formats by the work between the camera and an
// encoder: I420 is what software encoders take, NV12 what hardware ones take
// (one cheap reshuffle for software), YUYV needs a conversion, MJPEG a JPEG
// decode (about 10× YUYV's cost at 720p, see bench/results/hal.txt).
func formatCost(f, want PixelFormat) int {
	if f == want {
		return 0
	}
	switch f {
	case PixelI420:
		return 1
	case PixelNV12:
		return 2
	case PixelYUYV:
		return 3
	case PixelMJPG:
		return 4
	}
	return -1
}

// BestMode picks the camera mode to capture for a stream of at most
// limit.Width×limit.Height at limit.FPS: the largest picture that fits (or,
// when none fits, the smallest there is: nothing here scales down), then the
// frame rate nearest limit.FPS from above (decimated) or below, then the
// cheapest pixel format. Only when limit.Format is PixelH264 (the negotiated
// codec is H.264 and the stream may pass a camera's own encoder through) are
// H.264 modes candidates, and then preferred at equal size and rate; raw
// formats with no known conversion are never chosen. ok is false when no
// mode qualifies.
func BestMode(modes []VideoMode, limit VideoMode) (mode VideoMode, ok bool) {
	cost := func(f PixelFormat) int {
		if f == PixelH264 {
			if limit.Format == PixelH264 {
				return 0
			}
			return -1
		}
		return formatCost(f, limit.Format)
	}
	var usable []VideoMode
	for _, m := range modes {
		if m.Width > 0 && m.Height > 0 && m.FPS > 0 && cost(m.Format) >= 0 {
			usable = append(usable, m)
		}
	}
	if len(usable) == 0 {
		return VideoMode{}, false
	}
	fits := func(m VideoMode) bool { return m.Width <= limit.Width && m.Height <= limit.Height }
	return slices.MinFunc(usable, func(a, b VideoMode) int {
		if fa, fb := fits(a), fits(b); fa != fb {
			if fa {
				return -1
			}
			return 1
		}
		if aa, ab := a.Width*a.Height, b.Width*b.Height; aa != ab {
			if fits(a) {
				return cmp.Compare(ab, aa) // larger first
			}
			return cmp.Compare(aa, ab) // smaller first
		}
		// Reaching the rate matters most; beyond it, less to throw away.
		if ra, rb := min(a.FPS, limit.FPS), min(b.FPS, limit.FPS); ra != rb {
			return cmp.Compare(rb, ra)
		}
		if a.FPS != b.FPS {
			return cmp.Compare(a.FPS, b.FPS)
		}
		return cmp.Compare(cost(a.Format), cost(b.Format))
	}), true
}
