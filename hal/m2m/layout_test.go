package m2m

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal/internal/v4l2"
)

func TestLayoutOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func() *v4l2.Format
		want string // error text, or "" for none
	}{
		{"unknown format", func() *v4l2.Format {
			f := &v4l2.Format{Type: v4l2.BufTypeVideoCapture}
			*f.Pix() = v4l2.PixFormat{PixelFormat: v4l2.PixFmtYUYV, Width: 64, Height: 64, BytesPerLine: 128, SizeImage: 8192}
			return f
		}, "raw format YUYV: not one of YU12, YM12, NV12, NM12"},
		{"plane too small", func() *v4l2.Format {
			f := &v4l2.Format{Type: v4l2.BufTypeVideoCapture}
			*f.Pix() = v4l2.PixFormat{PixelFormat: v4l2.PixFmtNV12, Width: 64, Height: 64, BytesPerLine: 64, SizeImage: 64 * 64}
			return f
		}, "plane 0 of 4096 bytes, needs 6144"},
		{"wrong plane count", func() *v4l2.Format {
			f := &v4l2.Format{Type: v4l2.BufTypeVideoCaptureMPlane}
			p := f.PixMP()
			p.PixelFormat, p.Width, p.Height, p.NumPlanes = v4l2.PixFmtNV12M, 64, 64, 1
			return f
		}, "with 1 memory planes, want 2"},
		{"odd size", func() *v4l2.Format {
			f := &v4l2.Format{Type: v4l2.BufTypeVideoCapture}
			*f.Pix() = v4l2.PixFormat{PixelFormat: v4l2.PixFmtYUV420, Width: 63, Height: 64, BytesPerLine: 64, SizeImage: 8192}
			return f
		}, "odd size"},
		{"tightly packed, bytesperline 0", func() *v4l2.Format {
			f := &v4l2.Format{Type: v4l2.BufTypeVideoCapture}
			*f.Pix() = v4l2.PixFormat{PixelFormat: v4l2.PixFmtYUV420, Width: 64, Height: 64, SizeImage: 6144}
			return f
		}, ""},
	} {
		_, err := layoutOf(tc.f())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestLayoutRoundTrip writes pictures in every layout and reads them back
// with the package's reader and the fake device's independent one.
func TestLayoutRoundTrip(t *testing.T) {
	c := &fakeCtx{n: &fakeNode{align: 16, strideExtra: 24}}
	for _, fourcc := range rawFormats {
		for _, mplane := range []bool{false, true} {
			if !mplane && (fourcc == v4l2.PixFmtYUV420M || fourcc == v4l2.PixFmtNV12M) {
				continue
			}
			c.n.mplane = mplane
			typ := uint32(v4l2.BufTypeVideoOutput)
			if mplane {
				typ = v4l2.BufTypeVideoOutputMPlane
			}
			f := &v4l2.Format{Type: typ}
			c.rawFormat(f, fourcc, 90, 50)
			l, err := layoutOf(f)
			if err != nil {
				t.Fatalf("%s: %v", v4l2.FourCCString(fourcc), err)
			}
			var mem [][]byte
			for _, s := range fmtPlaneSizes(f) {
				mem = append(mem, make([]byte, s))
			}
			pic := testFrame(90, 50, 3).Data
			l.write(mem, pic, 90, 50)
			if got := readRaw(f, mem, 90, 50); !bytes.Equal(got, pic) {
				t.Errorf("%s mplane %v: the device would read another picture", v4l2.FourCCString(fourcc), mplane)
			}
			if got := l.read(mem, 90, 50); !bytes.Equal(got, pic) {
				t.Errorf("%s mplane %v: read does not give back what write wrote", v4l2.FourCCString(fourcc), mplane)
			}
		}
	}
}

func TestStamps(t *testing.T) {
	var s stamps
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	a := s.add(t0)
	b := s.add(t0.Add(33 * time.Millisecond))
	c := s.add(t0.Add(33 * time.Millisecond)) // same capture time: still distinct
	d := s.add(time.Time{})                   // no capture time at all
	if a.Sec != 0 || a.Usec != 0 || b.Usec != 33000 || c.Usec != 33001 || d.Usec != 33002 {
		t.Errorf("timestamps %v %v %v %v", a, b, c, d)
	}
	// c answered first: a and b were skipped by the codec.
	if at, _, ok := s.find(c); !ok || !at.Equal(t0.Add(33*time.Millisecond)) {
		t.Errorf("find(c) = %v, %v", at, ok)
	}
	if _, _, ok := s.find(a); ok {
		t.Error("an input before an answered one is still known")
	}
	if at, _, ok := s.find(c); !ok || !at.Equal(t0.Add(33*time.Millisecond)) {
		t.Errorf("a second output for c: %v, %v", at, ok)
	}
	if _, _, ok := s.find(v4l2.Timeval{Sec: 99}); ok {
		t.Error("an unknown timestamp was found")
	}
	for i := range 2 * maxStamps {
		s.add(t0.Add(time.Duration(i) * time.Second))
	}
	if len(s.pending) != maxStamps {
		t.Errorf("%d pending stamps, want at most %d", len(s.pending), maxStamps)
	}
}

// BenchmarkLayoutWriteNV12 measures the conversion the encoder does when a
// device wants NV12: a 720p I420 frame into a strided NV12 buffer.
func BenchmarkLayoutWriteNV12(b *testing.B) {
	c := &fakeCtx{n: &fakeNode{align: 16, strideExtra: 64}}
	f := &v4l2.Format{Type: v4l2.BufTypeVideoOutput}
	c.rawFormat(f, v4l2.PixFmtNV12, 1280, 720)
	l, err := layoutOf(f)
	if err != nil {
		b.Fatal(err)
	}
	mem := [][]byte{make([]byte, fmtPlaneSizes(f)[0])}
	pic := testFrame(1280, 720, 0).Data
	b.SetBytes(int64(len(pic)))
	for b.Loop() {
		l.write(mem, pic, 1280, 720)
	}
}

// BenchmarkLayoutWriteI420 is the same for a device that takes I420: row
// copies only.
func BenchmarkLayoutWriteI420(b *testing.B) {
	c := &fakeCtx{n: &fakeNode{align: 16, strideExtra: 64}}
	f := &v4l2.Format{Type: v4l2.BufTypeVideoOutput}
	c.rawFormat(f, v4l2.PixFmtYUV420, 1280, 720)
	l, err := layoutOf(f)
	if err != nil {
		b.Fatal(err)
	}
	mem := [][]byte{make([]byte, fmtPlaneSizes(f)[0])}
	pic := testFrame(1280, 720, 0).Data
	b.SetBytes(int64(len(pic)))
	for b.Loop() {
		l.write(mem, pic, 1280, 720)
	}
}
