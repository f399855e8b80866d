package sim

import (
	"bytes"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// stampedFrame renders frame seq at t the way the camera does.
func stampedFrame(w, h int, seq uint64, at time.Time) hal.VideoFrame {
	data := make([]byte, i420Size(w, h))
	renderFrame(data, w, h, seq, at, pictureControls{brightness: 128, contrast: 128, zoom: 100})
	return hal.VideoFrame{Width: w, Height: h, Format: hal.PixelI420, Data: data, Seq: seq, CapturedAt: at}
}

func TestDecodeStampRoundTrip(t *testing.T) {
	at := time.Date(2031, 7, 1, 12, 0, 0, 987654321, time.UTC)
	for _, tc := range []struct {
		w, h int
		seq  uint64
	}{
		{1280, 720, 0}, {640, 360, 1}, {1920, 1080, 0xFFFFFFFF}, {320, 180, 77}, {64, 64, 3},
	} {
		f := stampedFrame(tc.w, tc.h, tc.seq, at)
		seq, got, ok := DecodeStamp(f)
		if !ok || seq != tc.seq || !got.Equal(at) {
			t.Errorf("%dx%d: DecodeStamp = %d, %v, %v; want %d, %v", tc.w, tc.h, seq, got, ok, tc.seq, at)
		}
	}
	// Seq beyond 32 bits comes back modulo 2^32.
	if seq, _, ok := DecodeStamp(stampedFrame(640, 360, 1<<32+5, at)); !ok || seq != 5 {
		t.Errorf("Seq 2^32+5 decodes as %d (ok %v)", seq, ok)
	}
}

// TestDecodeStampSurvivesDamage applies what a video path does to a frame:
// sensor-like noise, blur, downscaling and real lossy compression (JPEG, the
// standard library's stand-in for H.264 and VP8), alone and together.
func TestDecodeStampSurvivesDamage(t *testing.T) {
	at := epoch.Add(123456789 * time.Microsecond)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name   string
		w, h   int
		damage func(hal.VideoFrame) hal.VideoFrame
	}{
		{"noise ±40", 640, 360, func(f hal.VideoFrame) hal.VideoFrame { return addNoise(f, rng, 40) }},
		{"5x5 blur", 640, 360, func(f hal.VideoFrame) hal.VideoFrame { return blurLuma(f, 2) }},
		{"9x9 blur at 720p", 1280, 720, func(f hal.VideoFrame) hal.VideoFrame { return blurLuma(f, 4) }},
		{"JPEG q20", 640, 360, func(f hal.VideoFrame) hal.VideoFrame { return jpegRoundTrip(t, f, 20) }},
		{"1080p to 360p", 1920, 1080, func(f hal.VideoFrame) hal.VideoFrame { return halve(halve(f)) }},
		{"360p to 180p, blur, noise, JPEG q30", 640, 360, func(f hal.VideoFrame) hal.VideoFrame {
			return jpegRoundTrip(t, addNoise(blurLuma(halve(f), 1), rng, 20), 30)
		}},
	} {
		for seq := range uint64(4) {
			want := at.Add(time.Duration(seq) * 33 * time.Millisecond)
			f := tc.damage(stampedFrame(tc.w, tc.h, seq*7919, want))
			got, gotAt, ok := DecodeStamp(f)
			if !ok || got != seq*7919 || !gotAt.Equal(want) {
				t.Errorf("%s, seq %d: DecodeStamp = %d, %v, %v", tc.name, seq*7919, got, gotAt, ok)
				break
			}
		}
	}
}

func TestDecodeStampRejects(t *testing.T) {
	good := stampedFrame(640, 360, 42, epoch)
	gray := hal.VideoFrame{Width: 640, Height: 360, Format: hal.PixelI420, Data: bytes.Repeat([]byte{128}, i420Size(640, 360))}
	flipped := cloneFrame(good)
	// Invert one data cell: the CRC must catch it.
	c := stampCell(20, 2, 640, 360)
	for y := c.y0; y < c.y1; y++ {
		for x := c.x0; x < c.x1; x++ {
			flipped.Data[y*640+x] = 255 - flipped.Data[y*640+x]
		}
	}
	for name, f := range map[string]hal.VideoFrame{
		"gray":      gray,
		"one cell":  flipped,
		"MJPG":      {Width: 640, Height: 360, Format: hal.PixelMJPG, Data: good.Data},
		"too small": {Width: 16, Height: 16, Format: hal.PixelI420, Data: good.Data[:384]},
		"truncated": {Width: 640, Height: 360, Format: hal.PixelI420, Data: good.Data[:1000]},
	} {
		if _, _, ok := DecodeStamp(f); ok {
			t.Errorf("%s: DecodeStamp accepted it", name)
		}
	}
}

func cloneFrame(f hal.VideoFrame) hal.VideoFrame {
	f.Data = bytes.Clone(f.Data)
	return f
}

func addNoise(f hal.VideoFrame, rng *rand.Rand, amp int) hal.VideoFrame {
	f = cloneFrame(f)
	for i := range f.Width * f.Height {
		f.Data[i] = byte(min(max(int(f.Data[i])+rng.IntN(2*amp+1)-amp, 0), 255))
	}
	return f
}

// blurLuma box-blurs the luma plane with the given radius, rows then
// columns.
func blurLuma(f hal.VideoFrame, r int) hal.VideoFrame {
	out := cloneFrame(f)
	w, h := f.Width, f.Height
	tmp := make([]byte, w*h)
	pass := func(src, dst []byte, n, lines, step, stride int) {
		for l := range lines {
			for i := range n {
				sum, cnt := 0, 0
				for d := max(i-r, 0); d <= min(i+r, n-1); d++ {
					sum += int(src[l*stride+d*step])
					cnt++
				}
				dst[l*stride+i*step] = byte(sum / cnt)
			}
		}
	}
	pass(f.Data[:w*h], tmp, w, h, 1, w)
	pass(tmp, out.Data[:w*h], h, w, w, 1)
	return out
}

// halve downscales an I420 frame by two in each direction by averaging.
func halve(f hal.VideoFrame) hal.VideoFrame {
	w, h := f.Width/2&^1, f.Height/2&^1
	out := hal.VideoFrame{Width: w, Height: h, Format: hal.PixelI420, Data: make([]byte, i420Size(w, h))}
	plane := func(src []byte, sw int, dst []byte, dw, dh int) {
		for y := range dh {
			for x := range dw {
				s := int(src[2*y*sw+2*x]) + int(src[2*y*sw+2*x+1]) + int(src[(2*y+1)*sw+2*x]) + int(src[(2*y+1)*sw+2*x+1])
				dst[y*dw+x] = byte(s / 4)
			}
		}
	}
	sw, sh := f.Width, f.Height
	plane(f.Data[:sw*sh], sw, out.Data[:w*h], w, h)
	plane(f.Data[sw*sh:], sw/2, out.Data[w*h:], w/2, h/2)
	plane(f.Data[sw*sh+sw*sh/4:], sw/2, out.Data[w*h+w*h/4:], w/2, h/2)
	return out
}

// jpegRoundTrip compresses an I420 frame as JPEG at quality q and decodes it.
func jpegRoundTrip(t *testing.T, f hal.VideoFrame, q int) hal.VideoFrame {
	t.Helper()
	w, h := f.Width, f.Height
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	copy(img.Y, f.Data[:w*h])
	copy(img.Cb, f.Data[w*h:w*h+w*h/4])
	copy(img.Cr, f.Data[w*h+w*h/4:])
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	dec, err := jpeg.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	ycc, ok := dec.(*image.YCbCr)
	if !ok {
		t.Fatalf("JPEG decoded to %T", dec)
	}
	out := hal.VideoFrame{Width: w, Height: h, Format: hal.PixelI420, Data: make([]byte, i420Size(w, h))}
	for y := range h {
		copy(out.Data[y*w:(y+1)*w], ycc.Y[y*ycc.YStride:])
	}
	return out
}
