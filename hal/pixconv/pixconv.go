// Package pixconv converts camera frames between the HAL's pixel formats,
// in pure Go: YUYV, NV12 and MJPEG to I420 (what the software encoders
// take), and I420 to NV12 (what hardware encoders usually take).
//
// Layouts are those of hal.VideoFrame: planes back to back without row
// padding; chroma planes of the 4:2:0 formats are ceil(w/2) × ceil(h/2).
// Each To* function writes into dst, which must have the size the *Size
// functions give, so a caller converting every frame reuses one buffer;
// ToI420 is the allocating convenience.
//
// Costs at 720p are measured by this package's benchmarks (go test -bench .
// ./hal/pixconv): NV12 and YUYV are a pass over the bytes, MJPEG is a JPEG
// decode and an order of magnitude dearer. A consumer whose encoder takes
// the camera's own format should pass the frame through instead.
package pixconv

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"

	"github.com/atriumroom/atrium/hal"
)

// ErrFormat is returned for a conversion this package does not do.
var ErrFormat = errors.New("pixconv: unsupported conversion")

// ErrSize is returned when a buffer's length does not match the frame's
// dimensions, or a JPEG's dimensions do not match the frame's.
var ErrSize = errors.New("pixconv: size mismatch")

// I420Size is the size of a w×h I420 (or NV12) frame.
func I420Size(w, h int) int {
	cw, ch := (w+1)/2, (h+1)/2
	return w*h + 2*cw*ch
}

// YUYVSize is the size of a w×h YUYV frame.
func YUYVSize(w, h int) int { return 2 * w * h }

// ToI420 returns f in I420. An I420 frame is returned as is (no copy); any
// other supported format is converted into a new buffer, the other fields
// carried over.
func ToI420(f hal.VideoFrame) (hal.VideoFrame, error) {
	if f.Format == hal.PixelI420 {
		return f, nil
	}
	out := f
	out.Format = hal.PixelI420
	out.Data = make([]byte, I420Size(f.Width, f.Height))
	var err error
	switch f.Format {
	case hal.PixelYUYV:
		err = YUYVToI420(out.Data, f.Data, f.Width, f.Height)
	case hal.PixelNV12:
		err = NV12ToI420(out.Data, f.Data, f.Width, f.Height)
	case hal.PixelMJPG:
		err = MJPEGToI420(out.Data, f.Data, f.Width, f.Height)
	default:
		err = fmt.Errorf("%w: %s to I420", ErrFormat, f.Format)
	}
	if err != nil {
		return hal.VideoFrame{}, err
	}
	return out, nil
}

func checkSizes(dst, src []byte, w, h, srcSize int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%w: %dx%d", ErrSize, w, h)
	}
	if len(dst) != I420Size(w, h) {
		return fmt.Errorf("%w: I420 %dx%d needs %d bytes, dst has %d", ErrSize, w, h, I420Size(w, h), len(dst))
	}
	if srcSize >= 0 && len(src) != srcSize {
		return fmt.Errorf("%w: %dx%d source needs %d bytes, has %d", ErrSize, w, h, srcSize, len(src))
	}
	return nil
}

// YUYVToI420 converts packed 4:2:2 (Y0 U Y1 V) to I420. Each chroma sample
// is the average of the two rows it covers.
func YUYVToI420(dst, src []byte, w, h int) error {
	if err := checkSizes(dst, src, w, h, YUYVSize(w, h)); err != nil {
		return err
	}
	cw, ch := (w+1)/2, (h+1)/2
	yp, up, vp := dst[:w*h], dst[w*h:w*h+cw*ch], dst[w*h+cw*ch:]
	stride := 2 * w
	// Two rows at a time: both rows' luma, and their averaged chroma, in one
	// pass over the source, four bytes (two pixels) per step.
	for cy := range ch {
		y0 := 2 * cy
		y1 := min(y0+1, h-1) // an odd height's last row pairs with itself
		r0 := src[y0*stride : y0*stride+stride]
		r1 := src[y1*stride : y1*stride+stride]
		l0 := yp[y0*w : y0*w+w]
		l1 := yp[y1*w : y1*w+w]
		ur := up[cy*cw : cy*cw+cw]
		vr := vp[cy*cw : cy*cw+cw]
		pairs := w / 2
		for cx := range pairs {
			i := 4 * cx
			a, b := r0[i:i+4:i+4], r1[i:i+4:i+4]
			l := l0[2*cx : 2*cx+2 : 2*cx+2]
			l[0], l[1] = a[0], a[2]
			l = l1[2*cx : 2*cx+2 : 2*cx+2]
			l[0], l[1] = b[0], b[2]
			ur[cx] = byte((uint(a[1]) + uint(b[1]) + 1) >> 1)
			vr[cx] = byte((uint(a[3]) + uint(b[3]) + 1) >> 1)
		}
		if w%2 == 1 {
			// An odd width's last pixel has a U but its V is missing from
			// the row: repeat the previous pair's V, or use neutral.
			i := 4 * pairs
			l0[w-1], l1[w-1] = r0[i], r1[i]
			ur[cw-1] = byte((uint(r0[i+1]) + uint(r1[i+1]) + 1) >> 1)
			if cw > 1 {
				vr[cw-1] = vr[cw-2]
			} else {
				vr[cw-1] = 128
			}
		}
	}
	return nil
}

// NV12ToI420 converts NV12 (Y plane, then interleaved U/V) to I420.
func NV12ToI420(dst, src []byte, w, h int) error {
	if err := checkSizes(dst, src, w, h, I420Size(w, h)); err != nil {
		return err
	}
	cw, ch := (w+1)/2, (h+1)/2
	copy(dst[:w*h], src[:w*h])
	uv := src[w*h:]
	up, vp := dst[w*h:w*h+cw*ch], dst[w*h+cw*ch:]
	for i := range cw * ch {
		up[i] = uv[2*i]
		vp[i] = uv[2*i+1]
	}
	return nil
}

// I420ToNV12 converts I420 to NV12, for encoders that take NV12.
func I420ToNV12(dst, src []byte, w, h int) error {
	if err := checkSizes(dst, src, w, h, I420Size(w, h)); err != nil { // NV12 is as big as I420
		return err
	}
	cw, ch := (w+1)/2, (h+1)/2
	copy(dst[:w*h], src[:w*h])
	up, vp := src[w*h:w*h+cw*ch], src[w*h+cw*ch:]
	uv := dst[w*h:]
	for i := range cw * ch {
		uv[2*i] = up[i]
		uv[2*i+1] = vp[i]
	}
	return nil
}

// MJPEGToI420 decodes a JPEG (a UVC camera's MJPEG frame) of w×h into I420.
// 4:2:0 JPEGs, the usual case, are copied plane by plane; other chroma
// subsamplings are resampled, and grey JPEGs get neutral chroma.
func MJPEGToI420(dst, src []byte, w, h int) error {
	if err := checkSizes(dst, src, w, h, -1); err != nil {
		return err
	}
	img, err := jpeg.Decode(bytes.NewReader(src))
	if err != nil {
		return fmt.Errorf("pixconv: decode MJPEG frame: %w", err)
	}
	b := img.Bounds()
	if b.Dx() != w || b.Dy() != h {
		return fmt.Errorf("%w: JPEG is %dx%d, frame says %dx%d", ErrSize, b.Dx(), b.Dy(), w, h)
	}
	switch m := img.(type) {
	case *image.YCbCr:
		ycbcrToI420(dst, m)
		return nil
	case *image.Gray:
		for y := range h {
			copy(dst[y*w:(y+1)*w], m.Pix[y*m.Stride:])
		}
		for i := w * h; i < len(dst); i++ {
			dst[i] = 128
		}
		return nil
	}
	return fmt.Errorf("%w: JPEG decodes to %T", ErrFormat, img)
}

// ycbcrToI420 copies a decoded picture into I420: plane by plane for 4:2:0,
// sampling each chroma value at its 4:2:0 site (the top-left pixel of the
// 2×2 block) for other subsamplings.
func ycbcrToI420(dst []byte, m *image.YCbCr) {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	cw, ch := (w+1)/2, (h+1)/2
	yp, up, vp := dst[:w*h], dst[w*h:w*h+cw*ch], dst[w*h+cw*ch:]
	for y := range h {
		copy(yp[y*w:(y+1)*w], m.Y[m.YOffset(b.Min.X, b.Min.Y+y):])
	}
	if m.SubsampleRatio == image.YCbCrSubsampleRatio420 {
		for y := range ch {
			o := m.COffset(b.Min.X, b.Min.Y+2*y)
			copy(up[y*cw:(y+1)*cw], m.Cb[o:])
			copy(vp[y*cw:(y+1)*cw], m.Cr[o:])
		}
		return
	}
	for y := range ch {
		for x := range cw {
			o := m.COffset(b.Min.X+2*x, b.Min.Y+2*y)
			up[y*cw+x] = m.Cb[o]
			vp[y*cw+x] = m.Cr[o]
		}
	}
}
