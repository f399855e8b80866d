//go:build vmguest

package m2m

import (
	"slices"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// BenchmarkVMEncode720p encodes 1280x720 frames through vicodec, one at a
// time as a call does: ns/op is the per-frame time, and since Encode
// returns the frame's own output, also the capture-to-encoded latency,
// reported as percentiles. The frames are drawn before the timer starts.
func BenchmarkVMEncode720p(b *testing.B) {
	enc, _, _ := vicodec(b, Config{Logger: discard()})
	ctx := vmContext(b)
	e, err := enc.NewVideoEncoder(ctx, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 1280, Height: 720, FPS: 30, KeyframeInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	frames := make([]hal.VideoFrame, 30)
	for i := range frames {
		frames[i] = testFrame(1280, 720, i)
	}
	lat := make([]time.Duration, 0, b.N)
	bytes := 0
	b.ResetTimer()
	for i := range b.N {
		f := frames[i%len(frames)]
		f.CapturedAt = time.Now()
		out, err := e.Encode(ctx, f)
		if err != nil || len(out) != 1 {
			b.Fatalf("frame %d: %d outputs, %v", i, len(out), err)
		}
		lat = append(lat, time.Since(out[0].CapturedAt))
		bytes += len(out[0].Data)
	}
	b.StopTimer()
	reportLatency(b, lat)
	b.ReportMetric(float64(bytes)/float64(b.N), "bytes/frame")
}

// BenchmarkVMDecode720p decodes vicodec's 1280x720 stream (a keyframe
// every 10 frames) back to I420.
func BenchmarkVMDecode720p(b *testing.B) {
	enc, dec, _ := vicodec(b, Config{Logger: discard()})
	ctx := vmContext(b)
	e, err := enc.NewVideoEncoder(ctx, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 1280, Height: 720, FPS: 30, KeyframeInterval: 10 * time.Second / 30})
	if err != nil {
		b.Fatal(err)
	}
	var coded []hal.EncodedFrame
	for i := range 30 {
		out, err := e.Encode(ctx, testFrame(1280, 720, i))
		if err != nil || len(out) != 1 {
			b.Fatalf("encode %d: %v", i, err)
		}
		coded = append(coded, out[0])
	}
	e.Close()
	d, err := dec.NewVideoDecoder(ctx, hal.CodecFWHT)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		out, err := d.Decode(ctx, coded[i%len(coded)])
		if err != nil || len(out) != 1 {
			b.Fatalf("frame %d: %d pictures, %v", i, len(out), err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
}
