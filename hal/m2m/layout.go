package m2m

import (
	"fmt"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/internal/v4l2"
)

// The raw formats this package reads and writes, in order of preference:
// I420 first, since it is the HAL's own and needs no conversion; NV12 is
// what most hardware codecs want. The conversion is this package's own
// rather than hal/pixconv's: pixconv works on packed buffers, while a
// device's buffers have line strides, aligned heights and separate memory
// planes, and converting straight into them saves a copy of every frame.
var rawFormats = []uint32{v4l2.PixFmtYUV420, v4l2.PixFmtYUV420M, v4l2.PixFmtNV12, v4l2.PixFmtNV12M}

func rawSupported(f uint32) bool {
	for _, r := range rawFormats {
		if r == f {
			return true
		}
	}
	return false
}

// layout is a raw 4:2:0 picture as a V4L2 queue holds it: the format's
// (possibly aligned) size, and each memory plane's line stride and size.
type layout struct {
	fourcc        uint32
	width, height int // of the buffer, at least the visible size
	stride        []int
	size          []int
}

// layoutOf reads a raw format set or got on a queue.
func layoutOf(f *v4l2.Format) (layout, error) {
	var l layout
	if v4l2.IsMPlane(f.Type) {
		p := f.PixMP()
		l = layout{fourcc: p.PixelFormat, width: int(p.Width), height: int(p.Height)}
		for i := range int(p.NumPlanes) {
			l.stride = append(l.stride, int(p.PlaneFmt[i].BytesPerLine))
			l.size = append(l.size, int(p.PlaneFmt[i].SizeImage))
		}
	} else {
		p := f.Pix()
		l = layout{fourcc: p.PixelFormat, width: int(p.Width), height: int(p.Height),
			stride: []int{int(p.BytesPerLine)}, size: []int{int(p.SizeImage)}}
	}
	if !rawSupported(l.fourcc) {
		return l, fmt.Errorf("raw format %s: not one of %s", v4l2.FourCCString(l.fourcc), formatList(rawFormats))
	}
	want := 1
	switch l.fourcc {
	case v4l2.PixFmtYUV420M:
		want = 3
	case v4l2.PixFmtNV12M:
		want = 2
	}
	if len(l.stride) != want {
		return l, fmt.Errorf("raw format %s with %d memory planes, want %d", v4l2.FourCCString(l.fourcc), len(l.stride), want)
	}
	for i := range l.stride {
		if l.stride[i] == 0 {
			// Some drivers leave bytesperline 0 for "tightly packed".
			l.stride[i] = l.width
			if l.fourcc == v4l2.PixFmtYUV420M && i > 0 {
				l.stride[i] = l.width / 2
			}
		}
	}
	if l.width%2 != 0 || l.height%2 != 0 {
		return l, fmt.Errorf("raw format %s %dx%d: odd size", v4l2.FourCCString(l.fourcc), l.width, l.height)
	}
	// Every plane must hold what its stride and rows say.
	for i, need := range l.planeNeeds() {
		if l.size[i] < need {
			return l, fmt.Errorf("raw format %s %dx%d: plane %d of %d bytes, needs %d", v4l2.FourCCString(l.fourcc), l.width, l.height, i, l.size[i], need)
		}
	}
	return l, nil
}

// planeNeeds returns the bytes each memory plane needs.
func (l layout) planeNeeds() []int {
	y := l.stride[0] * l.height
	switch l.fourcc {
	case v4l2.PixFmtYUV420:
		return []int{y + 2*(l.stride[0]/2)*(l.height/2)}
	case v4l2.PixFmtNV12:
		return []int{y + l.stride[0]*(l.height/2)}
	case v4l2.PixFmtYUV420M:
		return []int{y, l.stride[1] * (l.height / 2), l.stride[2] * (l.height / 2)}
	default: // NV12M
		return []int{y, l.stride[1] * (l.height / 2)}
	}
}

// planes locates the Y, U and V (or Y and interleaved UV, with v nil) planes
// in the mapped memory planes, with their strides.
func (l layout) planes(mem [][]byte) (y, u, v []byte, ys, cs int) {
	ys = l.stride[0]
	switch l.fourcc {
	case v4l2.PixFmtYUV420:
		cs = ys / 2
		yl, cl := ys*l.height, cs*(l.height/2)
		m := mem[0]
		return m[:yl], m[yl : yl+cl], m[yl+cl : yl+2*cl], ys, cs
	case v4l2.PixFmtNV12:
		yl := ys * l.height
		return mem[0][:yl], mem[0][yl:], nil, ys, ys
	case v4l2.PixFmtYUV420M:
		return mem[0], mem[1], mem[2], ys, l.stride[1]
	default: // NV12M
		return mem[0], mem[1], nil, ys, l.stride[1]
	}
}

// bytesUsed returns what to queue as each plane's bytesused: the format's
// sizeimage, as for any raw frame.
func (l layout) bytesUsed() []uint32 {
	out := make([]uint32, len(l.size))
	for i, n := range l.size {
		out[i] = uint32(n)
	}
	return out
}

// i420Size is the size of a packed I420 picture of even size.
func i420Size(w, h int) int { return w*h + w*h/2 }

// write puts the w×h I420 picture src (packed, as hal.VideoFrame holds it)
// at the top left of the buffer.
func (l layout) write(mem [][]byte, src []byte, w, h int) {
	y, u, v, ys, cs := l.planes(mem)
	sy, su, sv := src[:w*h], src[w*h:w*h+w*h/4], src[w*h+w*h/4:i420Size(w, h)]
	for r := range h {
		copy(y[r*ys:r*ys+w], sy[r*w:(r+1)*w])
	}
	cw, ch := w/2, h/2
	if v != nil {
		for r := range ch {
			copy(u[r*cs:r*cs+cw], su[r*cw:(r+1)*cw])
			copy(v[r*cs:r*cs+cw], sv[r*cw:(r+1)*cw])
		}
		return
	}
	for r := range ch {
		row := u[r*cs : r*cs+2*cw]
		for c := range cw {
			row[2*c] = su[r*cw+c]
			row[2*c+1] = sv[r*cw+c]
		}
	}
}

// read copies the w×h picture at the top left of the buffer out as packed
// I420.
func (l layout) read(mem [][]byte, w, h int) []byte {
	y, u, v, ys, cs := l.planes(mem)
	out := make([]byte, i420Size(w, h))
	dy, du, dv := out[:w*h], out[w*h:w*h+w*h/4], out[w*h+w*h/4:]
	for r := range h {
		copy(dy[r*w:(r+1)*w], y[r*ys:r*ys+w])
	}
	cw, ch := w/2, h/2
	if v != nil {
		for r := range ch {
			copy(du[r*cw:(r+1)*cw], u[r*cs:r*cs+cw])
			copy(dv[r*cw:(r+1)*cw], v[r*cs:r*cs+cw])
		}
		return out
	}
	for r := range ch {
		row := u[r*cs : r*cs+2*cw]
		for c := range cw {
			du[r*cw+c] = row[2*c]
			dv[r*cw+c] = row[2*c+1]
		}
	}
	return out
}

// checkFrame checks that f is an I420 picture the layout can take.
func checkFrame(f hal.VideoFrame) error {
	if f.Format != hal.PixelI420 {
		return fmt.Errorf("pixel format %q, want %s: %w", f.Format, hal.PixelI420, ErrInvalidFrame)
	}
	if f.Width <= 0 || f.Height <= 0 || f.Width%2 != 0 || f.Height%2 != 0 {
		return fmt.Errorf("size %dx%d: width and height must be even and positive: %w", f.Width, f.Height, ErrInvalidFrame)
	}
	if need := i420Size(f.Width, f.Height); len(f.Data) < need {
		return fmt.Errorf("%d bytes of data, %dx%d I420 needs %d: %w", len(f.Data), f.Width, f.Height, need, ErrInvalidFrame)
	}
	return nil
}

func formatList(fs []uint32) string {
	s := ""
	for i, f := range fs {
		if i > 0 {
			s += ", "
		}
		s += v4l2.FourCCString(f)
	}
	return s
}
