package v4l2

import (
	"fmt"

	"github.com/atriumroom/atrium/hal"
	uapi "github.com/atriumroom/atrium/hal/internal/v4l2"
)

// planeSpec is one plane of a raw format as the frame packs it: rows of
// rowBytes, read from the buffer at stride bytes apart.
type planeSpec struct {
	mem    int // which memory plane it is in
	offset int // where it starts in that memory plane
	stride int
	row    int
	rows   int
}

// rawPlanes lays out a raw format's planes in the driver's buffers; it
// returns nil for compressed formats. The strides follow the V4L2 format
// definitions: for the single-buffer 4:2:0 formats, the chroma planes of
// NV12 share the luma's bytesperline and those of YU12 use half of it.
func rawPlanes(format hal.PixelFormat, fourcc uint32, w, h int, mem []planeLayout) ([]planeSpec, error) {
	cw, ch := (w+1)/2, (h+1)/2
	bpl := func(i int) int { return mem[i].bytesPerLine }
	switch {
	case format == hal.PixelYUYV:
		return []planeSpec{{0, 0, bpl(0), 2 * w, h}}, nil
	case fourcc == uapi.PixFmtNV12:
		return []planeSpec{{0, 0, bpl(0), w, h}, {0, bpl(0) * h, bpl(0), 2 * cw, ch}}, nil
	case fourcc == uapi.PixFmtNV12M:
		if len(mem) < 2 {
			return nil, fmt.Errorf("NM12 in %d memory planes", len(mem))
		}
		return []planeSpec{{0, 0, bpl(0), w, h}, {1, 0, bpl(1), 2 * cw, ch}}, nil
	case fourcc == uapi.PixFmtYUV420:
		cs := bpl(0) / 2
		return []planeSpec{{0, 0, bpl(0), w, h}, {0, bpl(0) * h, cs, cw, ch}, {0, bpl(0)*h + cs*ch, cs, cw, ch}}, nil
	case fourcc == uapi.PixFmtYUV420M:
		if len(mem) < 3 {
			return nil, fmt.Errorf("YM12 in %d memory planes", len(mem))
		}
		return []planeSpec{{0, 0, bpl(0), w, h}, {1, 0, bpl(1), cw, ch}, {2, 0, bpl(2), cw, ch}}, nil
	case format == hal.PixelMJPG || format == hal.PixelH264:
		return nil, nil
	}
	return nil, fmt.Errorf("no layout for %s", uapi.FourCCString(fourcc))
}

// checkLayout verifies, once at Open, that the driver's buffers can hold
// the planes the format needs, so a driver bug shows as an Open error
// rather than as a dropped frame each time.
func checkLayout(format hal.PixelFormat, fourcc uint32, w, h int, mem []planeLayout) error {
	specs, err := rawPlanes(format, fourcc, w, h, mem)
	if err != nil {
		return err
	}
	for _, p := range specs {
		if p.stride < p.row {
			return fmt.Errorf("%s: bytesperline %d is less than a row of %d bytes", uapi.FourCCString(fourcc), p.stride, p.row)
		}
		if end := p.offset + p.stride*(p.rows-1) + p.row; end > mem[p.mem].sizeImage {
			return fmt.Errorf("%s: sizeimage %d of plane %d is less than the %d bytes the format needs", uapi.FourCCString(fourcc), mem[p.mem].sizeImage, p.mem, end)
		}
	}
	return nil
}

// pack copies a buffer's payload into a new, tightly packed slice: the one
// copy of the capture path.
func pack(format hal.PixelFormat, fourcc uint32, w, h int, mem []planeLayout, used [][]byte) ([]byte, error) {
	specs, err := rawPlanes(format, fourcc, w, h, mem)
	if err != nil {
		return nil, err
	}
	if specs == nil { // compressed: the payload as it is
		if len(used) == 0 || len(used[0]) == 0 {
			return nil, fmt.Errorf("empty %s buffer", format)
		}
		return append([]byte(nil), used[0]...), nil
	}
	total := 0
	for _, p := range specs {
		total += p.row * p.rows
	}
	out := make([]byte, total)
	dst := out
	for _, p := range specs {
		if p.mem >= len(used) {
			return nil, fmt.Errorf("payload has %d memory planes, format needs %d", len(used), p.mem+1)
		}
		src := used[p.mem]
		if need := p.offset + p.stride*(p.rows-1) + p.row; len(src) < need {
			return nil, fmt.Errorf("payload of %d bytes, format needs %d", len(src), need)
		}
		if p.stride == p.row {
			n := p.row * p.rows
			copy(dst, src[p.offset:p.offset+n])
			dst = dst[n:]
			continue
		}
		for r := range p.rows {
			o := p.offset + r*p.stride
			copy(dst, src[o:o+p.row])
			dst = dst[p.row:]
		}
	}
	return out, nil
}
