package pixconv

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"testing"

	"github.com/atriumroom/atrium/hal"
)

func TestYUYVToI420(t *testing.T) {
	// 4x2: Y counts up; the two rows' chroma differ so averaging shows.
	src := []byte{
		0, 10, 1, 20, 2, 30, 3, 40,
		4, 12, 5, 23, 6, 32, 7, 44,
	}
	dst := make([]byte, I420Size(4, 2))
	if err := YUYVToI420(dst, src, 4, 2); err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 1, 2, 3, 4, 5, 6, 7, 11, 31, 22, 42}
	if !bytes.Equal(dst, want) {
		t.Errorf("YUYVToI420 = %v, want %v", dst, want)
	}
}

func TestYUYVToI420OddSize(t *testing.T) {
	// 3x3: the last column and the last row have no partner.
	src := []byte{
		10, 100, 11, 200, 12, 110, 0, 0,
		13, 102, 14, 202, 15, 112, 0, 0,
		16, 104, 17, 204, 18, 114, 0, 0,
	}
	// YUYV rows are 2*w bytes: 6 here; trim the padding used for clarity.
	var packed []byte
	for r := 0; r < 3; r++ {
		packed = append(packed, src[r*8:r*8+6]...)
	}
	dst := make([]byte, I420Size(3, 3))
	if err := YUYVToI420(dst, packed, 3, 3); err != nil {
		t.Fatal(err)
	}
	want := []byte{10, 11, 12, 13, 14, 15, 16, 17, 18 /* U */, 101, 111, 104, 114 /* V */, 201, 201, 204, 204}
	if !bytes.Equal(dst, want) {
		t.Errorf("YUYVToI420 3x3 = %v, want %v", dst, want)
	}
}

func TestNV12RoundTrip(t *testing.T) {
	w, h := 6, 4
	nv12 := make([]byte, I420Size(w, h))
	for i := range nv12 {
		nv12[i] = byte(i * 7)
	}
	i420 := make([]byte, len(nv12))
	if err := NV12ToI420(i420, nv12, w, h); err != nil {
		t.Fatal(err)
	}
	// U is every even byte of the UV plane, V every odd one.
	if i420[w*h] != nv12[w*h] || i420[w*h+1] != nv12[w*h+2] || i420[w*h+w*h/4] != nv12[w*h+1] {
		t.Errorf("NV12ToI420 chroma: %v from %v", i420[w*h:], nv12[w*h:])
	}
	back := make([]byte, len(nv12))
	if err := I420ToNV12(back, i420, w, h); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, nv12) {
		t.Errorf("NV12 → I420 → NV12 changed the frame")
	}
}

func TestSizeErrors(t *testing.T) {
	if err := YUYVToI420(make([]byte, I420Size(4, 2)), make([]byte, 15), 4, 2); !errors.Is(err, ErrSize) {
		t.Errorf("short YUYV: %v", err)
	}
	if err := NV12ToI420(make([]byte, 5), make([]byte, I420Size(4, 2)), 4, 2); !errors.Is(err, ErrSize) {
		t.Errorf("short dst: %v", err)
	}
	if err := YUYVToI420(nil, nil, 0, 0); !errors.Is(err, ErrSize) {
		t.Errorf("empty frame: %v", err)
	}
	jpg := encodeJPEG(t, flatImage(16, 16, 90, 60, 200), 90)
	if err := MJPEGToI420(make([]byte, I420Size(32, 16)), jpg, 32, 16); !errors.Is(err, ErrSize) {
		t.Errorf("JPEG of another size: %v", err)
	}
	if err := MJPEGToI420(make([]byte, I420Size(16, 16)), []byte("not a jpeg"), 16, 16); err == nil {
		t.Error("garbage decoded")
	}
	if _, err := ToI420(hal.VideoFrame{Format: hal.PixelH264, Width: 2, Height: 2, Data: []byte{0}}); !errors.Is(err, ErrFormat) {
		t.Errorf("H.264 to I420: %v", err)
	}
}

func flatImage(w, h int, y, cb, cr uint8) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for i := range img.Y {
		img.Y[i] = y
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = cb, cr
	}
	return img
}

func encodeJPEG(t testing.TB, img image.Image, q int) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func near(a, b byte) bool { return int(a)+3 >= int(b) && int(b)+3 >= int(a) }

func TestMJPEGToI420(t *testing.T) {
	w, h := 32, 16
	for _, c := range []struct {
		name      string
		img       image.Image
		y, cb, cr byte
	}{
		{"4:2:0 colour", flatImage(w, h, 90, 60, 200), 90, 60, 200},
		{"grey", func() image.Image {
			g := image.NewGray(image.Rect(0, 0, w, h))
			for i := range g.Pix {
				g.Pix[i] = 170
			}
			return g
		}(), 170, 128, 128},
		{"RGB (encoded 4:2:0 by image/jpeg)", func() image.Image {
			m := image.NewRGBA(image.Rect(0, 0, w, h))
			for i := 0; i < w*h; i++ {
				m.Set(i%w, i/w, color.RGBA{R: 255, A: 255})
			}
			return m
		}(), 76, 85, 255},
	} {
		dst := make([]byte, I420Size(w, h))
		if err := MJPEGToI420(dst, encodeJPEG(t, c.img, 100), w, h); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i, v := range dst {
			want := c.y
			switch {
			case i >= w*h+w*h/4:
				want = c.cr
			case i >= w*h:
				want = c.cb
			}
			if !near(v, want) {
				t.Errorf("%s: byte %d = %d, want about %d", c.name, i, v, want)
				break
			}
		}
	}
}

func TestYCbCrResampling(t *testing.T) {
	// image/jpeg only encodes 4:2:0, so the path for cameras that send
	// 4:2:2 or 4:4:4 JPEGs is checked on decoded pictures directly.
	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio420} {
		w, h := 6, 4
		img := image.NewYCbCr(image.Rect(0, 0, w, h), ratio)
		for y := range h {
			for x := range w {
				img.Y[img.YOffset(x, y)] = byte(10*y + x)
				o := img.COffset(x, y)
				// Chroma that says where it was sampled.
				img.Cb[o], img.Cr[o] = byte(100+10*y+x), byte(200+10*y+x)
			}
		}
		dst := make([]byte, I420Size(w, h))
		ycbcrToI420(dst, img)
		want := []byte{
			0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 20, 21, 22, 23, 24, 25, 30, 31, 32, 33, 34, 35,
		}
		// The 4:2:0 sites are pixels (0,0) (2,0) (4,0) (0,2) (2,2) (4,2);
		// whatever the source subsampling, the chroma stored for them is
		// what the last write to their chroma sample left.
		for _, p := range [][2]int{{0, 0}, {2, 0}, {4, 0}, {0, 2}, {2, 2}, {4, 2}} {
			want = append(want, img.Cb[img.COffset(p[0], p[1])])
		}
		for _, p := range [][2]int{{0, 0}, {2, 0}, {4, 0}, {0, 2}, {2, 2}, {4, 2}} {
			want = append(want, img.Cr[img.COffset(p[0], p[1])])
		}
		if !bytes.Equal(dst, want) {
			t.Errorf("%v: ycbcrToI420 = %v, want %v", ratio, dst, want)
		}
		if ratio == image.YCbCrSubsampleRatio444 && (dst[24] != 100 || dst[27] != 120 || dst[30] != 200) {
			t.Errorf("4:4:4 chroma not taken from the top-left pixel: %v", dst[24:])
		}
	}
}

func TestToI420(t *testing.T) {
	f := hal.VideoFrame{Width: 4, Height: 2, Format: hal.PixelI420, Data: make([]byte, I420Size(4, 2)), Seq: 9}
	out, err := ToI420(f)
	if err != nil || &out.Data[0] != &f.Data[0] {
		t.Errorf("ToI420 of I420 copied or failed: %v", err)
	}
	y := hal.VideoFrame{Width: 4, Height: 2, Format: hal.PixelYUYV, Data: make([]byte, YUYVSize(4, 2)), Seq: 9}
	out, err = ToI420(y)
	if err != nil || out.Format != hal.PixelI420 || out.Seq != 9 || len(out.Data) != I420Size(4, 2) {
		t.Errorf("ToI420 of YUYV = %+v, %v", out, err)
	}
}
