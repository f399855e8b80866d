package v4l2

import (
	"fmt"
	"unsafe"
)

// Request-number encoding of linux/ioctl.h (asm-generic, which amd64 and
// arm64 use): direction in bits 30-31, argument size in bits 16-29, type in
// bits 8-15, number in bits 0-7. V4L2's type is 'V'.
const (
	iocWrite = 1 << 30
	iocRead  = 2 << 30
	iocRW    = iocRead | iocWrite
	iocV     = 'V' << 8
	iocSize  = 16
)

// Ioctl request numbers, computed from the sizes of this package's structs
// exactly as the kernel's _IOR/_IOW/_IOWR macros compute them, so a struct of
// the wrong size shows up as a wrong number in layout_test.go.
const (
	IoctlQueryCap           uint32 = iocRead | iocV | uint32(unsafe.Sizeof(Capability{}))<<iocSize
	IoctlEnumFmt            uint32 = iocRW | iocV | 2 | uint32(unsafe.Sizeof(FmtDesc{}))<<iocSize
	IoctlGFmt               uint32 = iocRW | iocV | 4 | uint32(unsafe.Sizeof(Format{}))<<iocSize
	IoctlSFmt               uint32 = iocRW | iocV | 5 | uint32(unsafe.Sizeof(Format{}))<<iocSize
	IoctlReqBufs            uint32 = iocRW | iocV | 8 | uint32(unsafe.Sizeof(RequestBuffers{}))<<iocSize
	IoctlQueryBuf           uint32 = iocRW | iocV | 9 | uint32(unsafe.Sizeof(Buffer{}))<<iocSize
	IoctlQBuf               uint32 = iocRW | iocV | 15 | uint32(unsafe.Sizeof(Buffer{}))<<iocSize
	IoctlDQBuf              uint32 = iocRW | iocV | 17 | uint32(unsafe.Sizeof(Buffer{}))<<iocSize
	IoctlStreamOn           uint32 = iocWrite | iocV | 18 | uint32(unsafe.Sizeof(int32(0)))<<iocSize
	IoctlStreamOff          uint32 = iocWrite | iocV | 19 | uint32(unsafe.Sizeof(int32(0)))<<iocSize
	IoctlGParm              uint32 = iocRW | iocV | 21 | uint32(unsafe.Sizeof(StreamParm{}))<<iocSize
	IoctlSParm              uint32 = iocRW | iocV | 22 | uint32(unsafe.Sizeof(StreamParm{}))<<iocSize
	IoctlGCtrl              uint32 = iocRW | iocV | 27 | uint32(unsafe.Sizeof(Control{}))<<iocSize
	IoctlSCtrl              uint32 = iocRW | iocV | 28 | uint32(unsafe.Sizeof(Control{}))<<iocSize
	IoctlQueryCtrl          uint32 = iocRW | iocV | 36 | uint32(unsafe.Sizeof(QueryCtrl{}))<<iocSize
	IoctlQueryMenu          uint32 = iocRW | iocV | 37 | uint32(unsafe.Sizeof(QueryMenu{}))<<iocSize
	IoctlTryFmt             uint32 = iocRW | iocV | 64 | uint32(unsafe.Sizeof(Format{}))<<iocSize
	IoctlGExtCtrls          uint32 = iocRW | iocV | 71 | uint32(unsafe.Sizeof(ExtControls{}))<<iocSize
	IoctlSExtCtrls          uint32 = iocRW | iocV | 72 | uint32(unsafe.Sizeof(ExtControls{}))<<iocSize
	IoctlTryExtCtrls        uint32 = iocRW | iocV | 73 | uint32(unsafe.Sizeof(ExtControls{}))<<iocSize
	IoctlEnumFrameSizes     uint32 = iocRW | iocV | 74 | uint32(unsafe.Sizeof(FrmSizeEnum{}))<<iocSize
	IoctlEnumFrameIntervals uint32 = iocRW | iocV | 75 | uint32(unsafe.Sizeof(FrmIvalEnum{}))<<iocSize
	IoctlEncoderCmd         uint32 = iocRW | iocV | 77 | uint32(unsafe.Sizeof(EncoderCmd{}))<<iocSize
	IoctlTryEncoderCmd      uint32 = iocRW | iocV | 78 | uint32(unsafe.Sizeof(EncoderCmd{}))<<iocSize
	IoctlDQEvent            uint32 = iocRead | iocV | 89 | uint32(unsafe.Sizeof(Event{}))<<iocSize
	IoctlSubscribeEvent     uint32 = iocWrite | iocV | 90 | uint32(unsafe.Sizeof(EventSubscription{}))<<iocSize
	IoctlUnsubscribeEvent   uint32 = iocWrite | iocV | 91 | uint32(unsafe.Sizeof(EventSubscription{}))<<iocSize
	IoctlDecoderCmd         uint32 = iocRW | iocV | 96 | uint32(unsafe.Sizeof(DecoderCmd{}))<<iocSize
	IoctlTryDecoderCmd      uint32 = iocRW | iocV | 97 | uint32(unsafe.Sizeof(DecoderCmd{}))<<iocSize
	IoctlQueryExtCtrl       uint32 = iocRW | iocV | 103 | uint32(unsafe.Sizeof(QueryExtCtrl{}))<<iocSize
)

// IoctlName returns the kernel's name for a request number of this package
// ("VIDIOC_S_FMT"), for error messages, or the number in hex.
func IoctlName(req uint32) string {
	switch req {
	case IoctlQueryCap:
		return "VIDIOC_QUERYCAP"
	case IoctlEnumFmt:
		return "VIDIOC_ENUM_FMT"
	case IoctlGFmt:
		return "VIDIOC_G_FMT"
	case IoctlSFmt:
		return "VIDIOC_S_FMT"
	case IoctlReqBufs:
		return "VIDIOC_REQBUFS"
	case IoctlQueryBuf:
		return "VIDIOC_QUERYBUF"
	case IoctlQBuf:
		return "VIDIOC_QBUF"
	case IoctlDQBuf:
		return "VIDIOC_DQBUF"
	case IoctlStreamOn:
		return "VIDIOC_STREAMON"
	case IoctlStreamOff:
		return "VIDIOC_STREAMOFF"
	case IoctlGParm:
		return "VIDIOC_G_PARM"
	case IoctlSParm:
		return "VIDIOC_S_PARM"
	case IoctlGCtrl:
		return "VIDIOC_G_CTRL"
	case IoctlSCtrl:
		return "VIDIOC_S_CTRL"
	case IoctlQueryCtrl:
		return "VIDIOC_QUERYCTRL"
	case IoctlQueryMenu:
		return "VIDIOC_QUERYMENU"
	case IoctlTryFmt:
		return "VIDIOC_TRY_FMT"
	case IoctlGExtCtrls:
		return "VIDIOC_G_EXT_CTRLS"
	case IoctlSExtCtrls:
		return "VIDIOC_S_EXT_CTRLS"
	case IoctlTryExtCtrls:
		return "VIDIOC_TRY_EXT_CTRLS"
	case IoctlEnumFrameSizes:
		return "VIDIOC_ENUM_FRAMESIZES"
	case IoctlEnumFrameIntervals:
		return "VIDIOC_ENUM_FRAMEINTERVALS"
	case IoctlEncoderCmd:
		return "VIDIOC_ENCODER_CMD"
	case IoctlTryEncoderCmd:
		return "VIDIOC_TRY_ENCODER_CMD"
	case IoctlDQEvent:
		return "VIDIOC_DQEVENT"
	case IoctlSubscribeEvent:
		return "VIDIOC_SUBSCRIBE_EVENT"
	case IoctlUnsubscribeEvent:
		return "VIDIOC_UNSUBSCRIBE_EVENT"
	case IoctlDecoderCmd:
		return "VIDIOC_DECODER_CMD"
	case IoctlTryDecoderCmd:
		return "VIDIOC_TRY_DECODER_CMD"
	case IoctlQueryExtCtrl:
		return "VIDIOC_QUERY_EXT_CTRL"
	}
	return fmt.Sprintf("ioctl %#x", req)
}
