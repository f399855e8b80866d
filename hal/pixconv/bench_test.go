package pixconv

import (
	"image"
	"testing"
)

// The benchmarks convert one 1280x720 frame per iteration, the cost a
// consumer pays per frame at 720p when its encoder needs I420 and the
// camera delivers something else. BenchmarkCopy720p is the reference: the
// one copy the capture path makes anyway, and all a pass-through costs.

const benchW, benchH = 1280, 720

func benchFrame(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>11)
	}
	return b
}

func BenchmarkCopy720p(b *testing.B) {
	src := benchFrame(YUYVSize(benchW, benchH))
	dst := make([]byte, len(src))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		copy(dst, src)
	}
}

func BenchmarkYUYVToI420_720p(b *testing.B) {
	src := benchFrame(YUYVSize(benchW, benchH))
	dst := make([]byte, I420Size(benchW, benchH))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if err := YUYVToI420(dst, src, benchW, benchH); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNV12ToI420_720p(b *testing.B) {
	src := benchFrame(I420Size(benchW, benchH))
	dst := make([]byte, len(src))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if err := NV12ToI420(dst, src, benchW, benchH); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMJPEGToI420_720p(b *testing.B) {
	// A camera-like picture: gradients with some texture, 4:2:0, quality 85.
	img := image.NewYCbCr(image.Rect(0, 0, benchW, benchH), image.YCbCrSubsampleRatio420)
	for y := range benchH {
		for x := range benchW {
			img.Y[y*img.YStride+x] = byte(x/5 + y/3 + (x*y)%7)
		}
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = byte(100+i%40), byte(150-i%30)
	}
	src := encodeJPEG(b, img, 85)
	dst := make([]byte, I420Size(benchW, benchH))
	for b.Loop() {
		if err := MJPEGToI420(dst, src, benchW, benchH); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(src)), "jpeg-bytes")
}
