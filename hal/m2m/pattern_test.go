package m2m

import (
	"time"

	"github.com/atriumroom/atrium/hal"
)

// testFrame draws frame i of a moving test pattern: a luma gradient that
// scrolls, a bright square that moves across, and chroma bands, so that
// both intra and inter coding have something to do and a lost or swapped
// frame shows.
func testFrame(w, h, i int) hal.VideoFrame {
	data := make([]byte, w*h*3/2)
	y, u, v := data[:w*h], data[w*h:w*h+w*h/4], data[w*h+w*h/4:]
	sq := h / 4
	sx, sy := (i*8)%(w-sq), (i*4)%(h-sq)
	for r := range h {
		for c := range w {
			val := byte((c + r + i*3) / 4)
			if c >= sx && c < sx+sq && r >= sy && r < sy+sq {
				val = 235
			}
			y[r*w+c] = val
		}
	}
	for r := range h / 2 {
		for c := range w / 2 {
			u[r*w/2+c] = byte(64 + (c*4+i)%128)
			v[r*w/2+c] = byte(64 + (r*4+2*i)%128)
		}
	}
	return hal.VideoFrame{
		Width: w, Height: h, Format: hal.PixelI420, Data: data, Seq: uint64(i),
		CapturedAt: time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC).Add(time.Duration(i) * time.Second / 30),
	}
}
