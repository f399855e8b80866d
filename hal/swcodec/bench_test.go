package swcodec

import (
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// BenchmarkEncode720p measures the software encode cost of one 1280x720
// frame at 1.5 Mbps, 30 fps: ns/op is per frame, frames/s what one core
// sustains. "sim" is the simulated camera's picture (flat bars, cheap);
// "textured" pans a noise texture across most of it, nearer a real camera.
func BenchmarkEncode720p(b *testing.B) {
	for _, c := range []hal.Codec{hal.CodecH264, hal.CodecVP8} {
		for _, content := range []string{"sim", "textured"} {
			b.Run(string(c)+"/"+content, func(b *testing.B) {
				checkLeaks(b)
				cam := openCamera(b, 1280, 720)
				// A second of frames, encoded in a loop with capture times
				// that keep going forward.
				frames := make([]hal.VideoFrame, 30)
				for i := range frames {
					frames[i] = cam.next(b)
					if content == "textured" {
						addTexture(frames[i], i)
					}
				}
				enc, err := NewVideoEncoders(nil).NewVideoEncoder(b.Context(), hal.VideoEncoderConfig{
					Codec: c, Width: 1280, Height: 720, FPS: 30, BitrateBps: 1_500_000,
				})
				if err != nil {
					b.Fatal(err)
				}
				defer enc.Close()
				bytes := 0
				for i := 0; b.Loop(); i++ {
					f := frames[i%len(frames)]
					f.CapturedAt = frames[0].CapturedAt.Add(time.Duration(i) * cam.period)
					out, err := enc.Encode(b.Context(), f)
					if err != nil {
						b.Fatal(err)
					}
					for _, o := range out {
						bytes += len(o.Data)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
				b.ReportMetric(float64(bytes)/float64(b.N), "bytes/frame")
			})
		}
	}
}
