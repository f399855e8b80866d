package hal_test

import (
	"testing"

	"github.com/atriumroom/atrium/hal"
)

func TestBestMode(t *testing.T) {
	m := func(f hal.PixelFormat, w, h, fps int) hal.VideoMode {
		return hal.VideoMode{Width: w, Height: h, FPS: fps, Format: f}
	}
	// A typical UVC camera: YUYV slows down with size, MJPEG keeps 30 fps,
	// and it has its own H.264.
	uvc := []hal.VideoMode{
		m(hal.PixelYUYV, 640, 360, 30), m(hal.PixelYUYV, 1280, 720, 10), m(hal.PixelYUYV, 1920, 1080, 5),
		m(hal.PixelMJPG, 640, 360, 30), m(hal.PixelMJPG, 1280, 720, 30), m(hal.PixelMJPG, 1920, 1080, 30),
		m(hal.PixelH264, 1280, 720, 30), m(hal.PixelH264, 1920, 1080, 30),
		m(hal.PixelNV12, 1280, 720, 30), m(hal.PixelNV12, 640, 360, 30),
	}
	sim := []hal.VideoMode{
		m(hal.PixelI420, 1920, 1080, 30), m(hal.PixelYUYV, 1280, 720, 60), m(hal.PixelNV12, 1280, 720, 30),
		m(hal.PixelI420, 1280, 720, 30), m(hal.PixelMJPG, 1280, 720, 30), m(hal.PixelI420, 640, 360, 30),
	}
	for _, c := range []struct {
		name  string
		modes []hal.VideoMode
		limit hal.VideoMode
		want  hal.VideoMode
	}{
		{"the asked format is free", uvc, m(hal.PixelYUYV, 640, 360, 30), m(hal.PixelYUYV, 640, 360, 30)},
		{"NV12 is cheapest for I420 among these", uvc, m(hal.PixelI420, 640, 360, 30), m(hal.PixelNV12, 640, 360, 30)},
		{"720p30: NV12 beats MJPEG and slow YUYV", uvc, m(hal.PixelI420, 1280, 720, 30), m(hal.PixelNV12, 1280, 720, 30)},
		{"frame rate beats conversion cost", uvc, m(hal.PixelI420, 1920, 1080, 30), m(hal.PixelMJPG, 1920, 1080, 30)},
		{"H.264 passes through when asked", uvc, m(hal.PixelH264, 1280, 720, 30), m(hal.PixelH264, 1280, 720, 30)},
		{"H.264 never when not asked", uvc, m(hal.PixelI420, 1920, 1080, 30), m(hal.PixelMJPG, 1920, 1080, 30)},
		{"limits are caps: the largest that fits", uvc, m(hal.PixelI420, 800, 450, 30), m(hal.PixelNV12, 640, 360, 30)},
		{"exact", sim, m(hal.PixelI420, 1280, 720, 30), m(hal.PixelI420, 1280, 720, 30)},
		{"a higher rate when asked", sim, m(hal.PixelI420, 1280, 720, 60), m(hal.PixelYUYV, 1280, 720, 60)},
		{"the lower of two rates above", sim, m(hal.PixelI420, 1280, 720, 15), m(hal.PixelI420, 1280, 720, 30)},
		{"none fits: the smallest", sim, m(hal.PixelI420, 320, 240, 30), m(hal.PixelI420, 640, 360, 30)},
		{"all fit: the largest", sim, m(hal.PixelI420, 3840, 2160, 30), m(hal.PixelI420, 1920, 1080, 30)},
		{"resolution over a higher rate", []hal.VideoMode{m(hal.PixelYUYV, 1280, 720, 15), m(hal.PixelYUYV, 640, 360, 30)}, m(hal.PixelI420, 1280, 720, 30), m(hal.PixelYUYV, 1280, 720, 15)},
	} {
		got, ok := hal.BestMode(c.modes, c.limit)
		if !ok || got != c.want {
			t.Errorf("%s: BestMode = %+v, %v; want %+v", c.name, got, ok, c.want)
		}
	}
	if _, ok := hal.BestMode(nil, m(hal.PixelI420, 1280, 720, 30)); ok {
		t.Error("BestMode of no modes reported ok")
	}
	if _, ok := hal.BestMode([]hal.VideoMode{m(hal.PixelH264, 1280, 720, 30), m("RGB3", 1280, 720, 30)}, m(hal.PixelI420, 1280, 720, 30)); ok {
		t.Error("BestMode chose H.264 or an unknown format for a raw stream")
	}
}
