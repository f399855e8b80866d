package v4l2

import "unsafe"

// Rect mirrors struct v4l2_rect.
type Rect struct {
	Left, Top     int32
	Width, Height uint32
}

// Selection mirrors struct v4l2_selection (VIDIOC_G_SELECTION,
// S_SELECTION). Type is a single-planar buffer type even on multi-planar
// queues: the kernel maps it.
type Selection struct {
	Type     uint32
	Target   uint32 // SelTgt*
	Flags    uint32
	R        Rect
	Reserved [9]uint32
}

// Selection targets (V4L2_SEL_TGT_*). An encoder crops its OUTPUT queue
// (the visible part of an aligned raw frame); a decoder composes into its
// CAPTURE queue (the visible part of an aligned decoded frame).
const (
	SelTgtCrop          = 0x0000
	SelTgtCropDefault   = 0x0001
	SelTgtCropBounds    = 0x0002
	SelTgtCompose       = 0x0100
	SelTgtComposeDflt   = 0x0101
	SelTgtComposeBounds = 0x0102
)

// Selection ioctls, computed like the others in ioctl.go.
const (
	IoctlGSelection uint32 = iocRW | iocV | 94 | uint32(unsafe.Sizeof(Selection{}))<<iocSize
	IoctlSSelection uint32 = iocRW | iocV | 95 | uint32(unsafe.Sizeof(Selection{}))<<iocSize
)

// Pixel formats of mem2mem codecs that ioctl.go's list lacks.
const (
	// PixFmtFWHTStateless is vicodec's stateless FWHT, which needs the
	// request API: a node offering it is not a stateful decoder.
	PixFmtFWHTStateless = 'S' | 'F'<<8 | 'W'<<16 | 'H'<<24
	PixFmtHEVC          = 'H' | 'E'<<8 | 'V'<<16 | 'C'<<24
	PixFmtNV21M         = 'N' | 'M'<<8 | '2'<<16 | '1'<<24
	PixFmtYVU420M       = 'Y' | 'M'<<8 | '2'<<16 | '1'<<24
)

// Codec-class controls that consts.go lacks.
const (
	// CIDMPEGVideoPrependSPSPPSToIDR makes an H.264 encoder send SPS and
	// PPS before every IDR (V4L2_CID_MPEG_VIDEO_PREPEND_SPSPPS_TO_IDR).
	CIDMPEGVideoPrependSPSPPSToIDR = CIDCodecBase + 644
)

// Values of the CIDMPEGVideoBitrateMode menu and the H.264 profile menu.
const (
	BitrateModeVBR = 0
	BitrateModeCBR = 1

	H264ProfileConstrainedBaseline = 1
)

// GetSelection issues VIDIOC_G_SELECTION for a buffer type and target.
func (d *Device) GetSelection(bufType, target uint32) (Rect, error) {
	s := &Selection{Type: selType(bufType), Target: target}
	if err := d.fd.Ioctl(IoctlGSelection, unsafe.Pointer(s)); err != nil {
		return Rect{}, &Error{Op: "VIDIOC_G_SELECTION", Path: d.path, Err: err}
	}
	return s.R, nil
}

// SetSelection issues VIDIOC_S_SELECTION and returns the rectangle the
// driver chose.
func (d *Device) SetSelection(bufType, target uint32, r Rect) (Rect, error) {
	s := &Selection{Type: selType(bufType), Target: target, R: r}
	if err := d.fd.Ioctl(IoctlSSelection, unsafe.Pointer(s)); err != nil {
		return Rect{}, &Error{Op: "VIDIOC_S_SELECTION", Path: d.path, Err: err}
	}
	return s.R, nil
}

// selType maps a multi-planar buffer type to the single-planar one the
// selection API wants.
func selType(t uint32) uint32 {
	switch t {
	case BufTypeVideoCaptureMPlane:
		return BufTypeVideoCapture
	case BufTypeVideoOutputMPlane:
		return BufTypeVideoOutput
	}
	return t
}
