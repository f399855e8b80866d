package v4l2

import (
	"testing"
	"unsafe"
)

// TestLayout pins every struct's size, and the offsets of the members that
// follow padding or packing, to what linux/videodev2.h gives on amd64 (and
// arm64, whose layout is the same). The numbers were printed by a C program
// compiled against the 6.1 uapi headers with sizeof and offsetof.
func TestLayout(t *testing.T) {
	sizes := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"v4l2_capability", unsafe.Sizeof(Capability{}), 104},
		{"v4l2_fmtdesc", unsafe.Sizeof(FmtDesc{}), 64},
		{"v4l2_frmsizeenum", unsafe.Sizeof(FrmSizeEnum{}), 44},
		{"v4l2_frmivalenum", unsafe.Sizeof(FrmIvalEnum{}), 52},
		{"v4l2_format", unsafe.Sizeof(Format{}), 208},
		{"v4l2_pix_format", unsafe.Sizeof(PixFormat{}), 48},
		{"v4l2_pix_format_mplane", unsafe.Sizeof(PixFormatMPlane{}), 192},
		{"v4l2_plane_pix_format", unsafe.Sizeof(PlanePixFormat{}), 20},
		{"v4l2_streamparm", unsafe.Sizeof(StreamParm{}), 204},
		{"v4l2_captureparm", unsafe.Sizeof(CaptureParm{}), 40},
		{"v4l2_requestbuffers", unsafe.Sizeof(RequestBuffers{}), 20},
		{"v4l2_buffer", unsafe.Sizeof(Buffer{}), 88},
		{"v4l2_buffer (mplane)", unsafe.Sizeof(PlaneBuffer{}), 88},
		{"v4l2_plane", unsafe.Sizeof(Plane{}), 64},
		{"v4l2_timecode", unsafe.Sizeof(Timecode{}), 16},
		{"v4l2_queryctrl", unsafe.Sizeof(QueryCtrl{}), 68},
		{"v4l2_query_ext_ctrl", unsafe.Sizeof(QueryExtCtrl{}), 232},
		{"v4l2_querymenu", unsafe.Sizeof(QueryMenu{}), 44},
		{"v4l2_control", unsafe.Sizeof(Control{}), 8},
		{"v4l2_ext_control", unsafe.Sizeof(ExtControl{}), 20},
		{"v4l2_ext_controls", unsafe.Sizeof(ExtControls{}), 32},
		{"v4l2_event_subscription", unsafe.Sizeof(EventSubscription{}), 32},
		{"v4l2_event", unsafe.Sizeof(Event{}), 136},
		{"v4l2_event_ctrl", unsafe.Sizeof(EventCtrl{}), 40},
		{"v4l2_encoder_cmd", unsafe.Sizeof(EncoderCmd{}), 40},
		{"v4l2_decoder_cmd", unsafe.Sizeof(DecoderCmd{}), 72},
	}
	for _, s := range sizes {
		if s.got != s.want {
			t.Errorf("sizeof(struct %s) = %d, kernel says %d", s.name, s.got, s.want)
		}
	}

	offsets := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"v4l2_buffer.timestamp", unsafe.Offsetof(Buffer{}.Timestamp), 24},
		{"v4l2_buffer.timecode", unsafe.Offsetof(Buffer{}.Timecode), 40},
		{"v4l2_buffer.sequence", unsafe.Offsetof(Buffer{}.Sequence), 56},
		{"v4l2_buffer.memory", unsafe.Offsetof(Buffer{}.Memory), 60},
		{"v4l2_buffer.m", unsafe.Offsetof(Buffer{}.M), 64},
		{"v4l2_buffer.length", unsafe.Offsetof(Buffer{}.Length), 72},
		{"v4l2_buffer.reserved2", unsafe.Offsetof(Buffer{}.Reserved2), 76},
		{"v4l2_buffer.request_fd", unsafe.Offsetof(Buffer{}.RequestFD), 80},
		{"v4l2_buffer.m.planes", unsafe.Offsetof(PlaneBuffer{}.Planes), 64},
		{"v4l2_buffer.length (mplane)", unsafe.Offsetof(PlaneBuffer{}.Length), 72},
		{"v4l2_buffer.request_fd (mplane)", unsafe.Offsetof(PlaneBuffer{}.RequestFD), 80},
		{"v4l2_plane.m", unsafe.Offsetof(Plane{}.M), 8},
		{"v4l2_plane.data_offset", unsafe.Offsetof(Plane{}.DataOffset), 16},
		{"v4l2_format.fmt", unsafe.Offsetof(Format{}.Fmt), 8},
		{"v4l2_event.u", unsafe.Offsetof(Event{}.U), 8},
		{"v4l2_event.pending", unsafe.Offsetof(Event{}.Pending), 72},
		{"v4l2_event.timestamp", unsafe.Offsetof(Event{}.Timestamp), 80},
		{"v4l2_event.id", unsafe.Offsetof(Event{}.ID), 96},
		{"v4l2_ext_controls.count", unsafe.Offsetof(ExtControls{}.Count), 4},
		{"v4l2_ext_controls.controls", unsafe.Offsetof(ExtControls{}.Controls), 24},
		{"v4l2_ext_control.value", unsafe.Offsetof(ExtControl{}.Value), 12},
		{"v4l2_query_ext_ctrl.minimum", unsafe.Offsetof(QueryExtCtrl{}.Minimum), 40},
		{"v4l2_query_ext_ctrl.elem_size", unsafe.Offsetof(QueryExtCtrl{}.ElemSize), 76},
		{"v4l2_querymenu.value", unsafe.Offsetof(QueryMenu{}.Name), 8},
		{"v4l2_frmsizeenum.discrete", unsafe.Offsetof(FrmSizeEnum{}.Stepwise), 12},
		{"v4l2_frmivalenum.discrete", unsafe.Offsetof(FrmIvalEnum{}.Stepwise), 20},
		{"v4l2_pix_format_mplane.plane_fmt", unsafe.Offsetof(PixFormatMPlane{}.PlaneFmt), 20},
		{"v4l2_pix_format_mplane.num_planes", unsafe.Offsetof(PixFormatMPlane{}.NumPlanes), 180},
		{"v4l2_encoder_cmd.raw", unsafe.Offsetof(EncoderCmd{}.Raw), 8},
		{"v4l2_decoder_cmd.raw", unsafe.Offsetof(DecoderCmd{}.Raw), 8},
		{"v4l2_event_ctrl.flags", unsafe.Offsetof(EventCtrl{}.Flags), 16},
	}
	for _, o := range offsets {
		if o.got != o.want {
			t.Errorf("offsetof(%s) = %d, kernel says %d", o.name, o.got, o.want)
		}
	}
}

// TestIoctlNumbers checks the request numbers computed from the struct sizes
// against the kernel's, printed from the headers' VIDIOC_* macros.
func TestIoctlNumbers(t *testing.T) {
	for _, c := range []struct {
		got  uint32
		want uint32
		name string
	}{
		{IoctlQueryCap, 0x80685600, "VIDIOC_QUERYCAP"},
		{IoctlEnumFmt, 0xc0405602, "VIDIOC_ENUM_FMT"},
		{IoctlEnumFrameSizes, 0xc02c564a, "VIDIOC_ENUM_FRAMESIZES"},
		{IoctlEnumFrameIntervals, 0xc034564b, "VIDIOC_ENUM_FRAMEINTERVALS"},
		{IoctlGFmt, 0xc0d05604, "VIDIOC_G_FMT"},
		{IoctlSFmt, 0xc0d05605, "VIDIOC_S_FMT"},
		{IoctlTryFmt, 0xc0d05640, "VIDIOC_TRY_FMT"},
		{IoctlGParm, 0xc0cc5615, "VIDIOC_G_PARM"},
		{IoctlSParm, 0xc0cc5616, "VIDIOC_S_PARM"},
		{IoctlReqBufs, 0xc0145608, "VIDIOC_REQBUFS"},
		{IoctlQueryBuf, 0xc0585609, "VIDIOC_QUERYBUF"},
		{IoctlQBuf, 0xc058560f, "VIDIOC_QBUF"},
		{IoctlDQBuf, 0xc0585611, "VIDIOC_DQBUF"},
		{IoctlStreamOn, 0x40045612, "VIDIOC_STREAMON"},
		{IoctlStreamOff, 0x40045613, "VIDIOC_STREAMOFF"},
		{IoctlQueryCtrl, 0xc0445624, "VIDIOC_QUERYCTRL"},
		{IoctlQueryExtCtrl, 0xc0e85667, "VIDIOC_QUERY_EXT_CTRL"},
		{IoctlQueryMenu, 0xc02c5625, "VIDIOC_QUERYMENU"},
		{IoctlGCtrl, 0xc008561b, "VIDIOC_G_CTRL"},
		{IoctlSCtrl, 0xc008561c, "VIDIOC_S_CTRL"},
		{IoctlGExtCtrls, 0xc0205647, "VIDIOC_G_EXT_CTRLS"},
		{IoctlSExtCtrls, 0xc0205648, "VIDIOC_S_EXT_CTRLS"},
		{IoctlTryExtCtrls, 0xc0205649, "VIDIOC_TRY_EXT_CTRLS"},
		{IoctlSubscribeEvent, 0x4020565a, "VIDIOC_SUBSCRIBE_EVENT"},
		{IoctlUnsubscribeEvent, 0x4020565b, "VIDIOC_UNSUBSCRIBE_EVENT"},
		{IoctlDQEvent, 0x80885659, "VIDIOC_DQEVENT"},
		{IoctlEncoderCmd, 0xc028564d, "VIDIOC_ENCODER_CMD"},
		{IoctlTryEncoderCmd, 0xc028564e, "VIDIOC_TRY_ENCODER_CMD"},
		{IoctlDecoderCmd, 0xc0485660, "VIDIOC_DECODER_CMD"},
		{IoctlTryDecoderCmd, 0xc0485661, "VIDIOC_TRY_DECODER_CMD"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, kernel says %#x", c.name, c.got, c.want)
		}
		if n := IoctlName(c.got); n != c.name {
			t.Errorf("IoctlName(%#x) = %q, want %q", c.got, n, c.name)
		}
	}
}

func TestFourCC(t *testing.T) {
	// 0x56595559 is V4L2_PIX_FMT_YUYV as the kernel headers spell it.
	if got := FourCC('Y', 'U', 'Y', 'V'); got != 0x56595559 {
		t.Errorf("FourCC(YUYV) = %#x, want 0x56595559", got)
	}
	if PixFmtYUYV != 0x56595559 || PixFmtMJPEG != 0x47504a4d || PixFmtYUV420 != 0x32315559 {
		t.Errorf("pixel format constants differ from the kernel's")
	}
	for _, c := range []struct {
		f    uint32
		want string
	}{{PixFmtYUYV, "YUYV"}, {PixFmtYUV420, "YU12"}, {PixFmtMJPEG, "MJPG"}, {PixFmtH264, "H264"}, {FourCC('Y', '1', '0', ' '), "Y10"}, {PixFmtNV12 | 1<<31, "NV12-BE"}} {
		if got := FourCCString(c.f); got != c.want {
			t.Errorf("FourCCString(%#x) = %q, want %q", c.f, got, c.want)
		}
	}
}
