package v4l2

import (
	"bytes"
	"encoding/binary"
	"unsafe"
)

// The layouts below are those of a 64-bit kernel ABI. On a 32-bit build this
// array's length is negative and the package does not compile, which is
// better than handing the kernel structs of the wrong size.
var _ [unsafe.Sizeof(uintptr(0)) - 8]struct{}

// Timeval mirrors struct timeval on 64-bit Linux (a buffer's timestamp).
type Timeval struct {
	Sec  int64
	Usec int64
}

// Timespec mirrors struct timespec on 64-bit Linux (an event's timestamp).
type Timespec struct {
	Sec  int64
	Nsec int64
}

// Fract mirrors struct v4l2_fract: a frame interval of Numerator/Denominator
// seconds.
type Fract struct {
	Numerator   uint32
	Denominator uint32
}

// Capability mirrors struct v4l2_capability (VIDIOC_QUERYCAP).
type Capability struct {
	Driver       [16]byte
	Card         [32]byte
	BusInfo      [32]byte
	Version      uint32
	Capabilities uint32 // of the whole physical device
	DeviceCaps   uint32 // of this node; valid when Capabilities has CapDeviceCaps
	Reserved     [3]uint32
}

// DriverName returns Driver as a string.
func (c *Capability) DriverName() string { return cstr(c.Driver[:]) }

// CardName returns Card as a string.
func (c *Capability) CardName() string { return cstr(c.Card[:]) }

// Bus returns BusInfo as a string ("usb-0000:00:14.0-1", "platform:vivid-000").
func (c *Capability) Bus() string { return cstr(c.BusInfo[:]) }

// NodeCaps returns the capabilities of this node: DeviceCaps when the driver
// fills it (every driver since Linux 3.3), otherwise Capabilities.
func (c *Capability) NodeCaps() uint32 {
	if c.Capabilities&CapDeviceCaps != 0 {
		return c.DeviceCaps
	}
	return c.Capabilities
}

// FmtDesc mirrors struct v4l2_fmtdesc (VIDIOC_ENUM_FMT).
type FmtDesc struct {
	Index       uint32
	Type        uint32
	Flags       uint32
	Description [32]byte
	PixelFormat uint32
	MbusCode    uint32
	Reserved    [3]uint32
}

// Name returns Description as a string.
func (f *FmtDesc) Name() string { return cstr(f.Description[:]) }

// FrmSizeDiscrete mirrors struct v4l2_frmsize_discrete.
type FrmSizeDiscrete struct {
	Width, Height uint32
}

// FrmSizeStepwise mirrors struct v4l2_frmsize_stepwise.
type FrmSizeStepwise struct {
	MinWidth, MaxWidth, StepWidth    uint32
	MinHeight, MaxHeight, StepHeight uint32
}

// FrmSizeEnum mirrors struct v4l2_frmsizeenum (VIDIOC_ENUM_FRAMESIZES). The
// union is Stepwise; for FrmSizeTypeDiscrete read Discrete().
type FrmSizeEnum struct {
	Index       uint32
	PixelFormat uint32
	Type        uint32
	Stepwise    FrmSizeStepwise
	Reserved    [2]uint32
}

// Discrete returns the union as a discrete size (valid for
// FrmSizeTypeDiscrete).
func (f *FrmSizeEnum) Discrete() FrmSizeDiscrete {
	return FrmSizeDiscrete{Width: f.Stepwise.MinWidth, Height: f.Stepwise.MaxWidth}
}

// FrmIvalStepwise mirrors struct v4l2_frmival_stepwise.
type FrmIvalStepwise struct {
	Min, Max, Step Fract
}

// FrmIvalEnum mirrors struct v4l2_frmivalenum
// (VIDIOC_ENUM_FRAMEINTERVALS). The union is Stepwise; for
// FrmIvalTypeDiscrete read Discrete().
type FrmIvalEnum struct {
	Index       uint32
	PixelFormat uint32
	Width       uint32
	Height      uint32
	Type        uint32
	Stepwise    FrmIvalStepwise
	Reserved    [2]uint32
}

// Discrete returns the union as a discrete interval (valid for
// FrmIvalTypeDiscrete).
func (f *FrmIvalEnum) Discrete() Fract { return f.Stepwise.Min }

// PixFormat mirrors struct v4l2_pix_format (single-planar formats).
type PixFormat struct {
	Width        uint32
	Height       uint32
	PixelFormat  uint32
	Field        uint32
	BytesPerLine uint32
	SizeImage    uint32
	Colorspace   uint32
	Priv         uint32
	Flags        uint32
	YCbCrEnc     uint32 // union with hsv_enc
	Quantization uint32
	XferFunc     uint32
}

// PlanePixFormat mirrors struct v4l2_plane_pix_format.
type PlanePixFormat struct {
	SizeImage    uint32
	BytesPerLine uint32
	Reserved     [6]uint16
}

// PixFormatMPlane mirrors struct v4l2_pix_format_mplane (multi-planar
// formats). The C struct is packed; its members fall on natural boundaries
// anyway, so this plain struct has the same layout.
type PixFormatMPlane struct {
	Width        uint32
	Height       uint32
	PixelFormat  uint32
	Field        uint32
	Colorspace   uint32
	PlaneFmt     [VideoMaxPlanes]PlanePixFormat
	NumPlanes    uint8
	Flags        uint8
	YCbCrEnc     uint8 // union with hsv_enc
	Quantization uint8
	XferFunc     uint8
	Reserved     [7]uint8
}

// Format mirrors struct v4l2_format (VIDIOC_G_FMT, S_FMT, TRY_FMT). The
// union is raw bytes; Pix and PixMP view it as the member Type selects.
type Format struct {
	Type uint32
	_    uint32 // the union is 8-byte aligned (struct v4l2_window has pointers)
	Fmt  [200]byte
}

// Pix returns the union as a single-planar format, for BufTypeVideoCapture
// and BufTypeVideoOutput. The pointer aliases f.
func (f *Format) Pix() *PixFormat { return (*PixFormat)(unsafe.Pointer(&f.Fmt[0])) }

// PixMP returns the union as a multi-planar format, for
// BufTypeVideoCaptureMPlane and BufTypeVideoOutputMPlane. The pointer aliases
// f.
func (f *Format) PixMP() *PixFormatMPlane {
	return (*PixFormatMPlane)(unsafe.Pointer(&f.Fmt[0]))
}

// CaptureParm mirrors struct v4l2_captureparm. struct v4l2_outputparm has the
// same layout (CaptureMode is outputmode, ReadBuffers is writebuffers), so
// StreamParm uses this one for both directions.
type CaptureParm struct {
	Capability   uint32 // CapTimePerFrame when TimePerFrame can be set
	CaptureMode  uint32
	TimePerFrame Fract
	ExtendedMode uint32
	ReadBuffers  uint32
	Reserved     [4]uint32
}

// StreamParm mirrors struct v4l2_streamparm (VIDIOC_G_PARM, S_PARM). The
// union's raw_data is 200 bytes, of which Parm is the first 40.
type StreamParm struct {
	Type uint32
	Parm CaptureParm
	_    [160]byte
}

// RequestBuffers mirrors struct v4l2_requestbuffers (VIDIOC_REQBUFS).
type RequestBuffers struct {
	Count        uint32
	Type         uint32
	Memory       uint32
	Capabilities uint32 // BufCap*, filled by the kernel
	Flags        uint8
	Reserved     [3]uint8
}

// Timecode mirrors struct v4l2_timecode.
type Timecode struct {
	Type     uint32
	Flags    uint32
	Frames   uint8
	Seconds  uint8
	Minutes  uint8
	Hours    uint8
	UserBits [4]uint8
}

// Buffer mirrors struct v4l2_buffer for single-planar queues (VIDIOC_QUERYBUF,
// QBUF, DQBUF). For multi-planar queues use PlaneBuffer, whose union is a
// pointer.
type Buffer struct {
	Index     uint32
	Type      uint32
	BytesUsed uint32
	Flags     uint32
	Field     uint32
	_         uint32
	Timestamp Timeval
	Timecode  Timecode
	Sequence  uint32
	Memory    uint32
	// M is the union m: the mmap offset (MemoryMMAP, low 32 bits), the user
	// pointer (MemoryUserPtr) or the dmabuf fd (MemoryDMABuf, low 32 bits).
	M         uint64
	Length    uint32
	Reserved2 uint32
	RequestFD int32 // union with reserved
	_         uint32
}

// Offset returns the mmap offset of an MMAP buffer.
func (b *Buffer) Offset() uint32 { return uint32(b.M) }

// Plane mirrors struct v4l2_plane.
type Plane struct {
	BytesUsed uint32
	Length    uint32
	// M is the union m: mem_offset (MemoryMMAP, low 32 bits), userptr or fd.
	M          uint64
	DataOffset uint32
	Reserved   [11]uint32
}

// Offset returns the mmap offset of an MMAP plane.
func (p *Plane) Offset() uint32 { return uint32(p.M) }

// PlaneBuffer mirrors struct v4l2_buffer for multi-planar queues: the union
// m is the planes pointer and Length counts the planes. The pointer is a Go
// pointer, so the planes stay alive and in place while the kernel uses them.
type PlaneBuffer struct {
	Index     uint32
	Type      uint32
	BytesUsed uint32
	Flags     uint32
	Field     uint32
	_         uint32
	Timestamp Timeval
	Timecode  Timecode
	Sequence  uint32
	Memory    uint32
	Planes    *Plane
	Length    uint32 // number of elements Planes points to
	Reserved2 uint32
	RequestFD int32
	_         uint32
}

// Control mirrors struct v4l2_control (VIDIOC_G_CTRL, S_CTRL).
type Control struct {
	ID    uint32
	Value int32
}

// QueryCtrl mirrors struct v4l2_queryctrl (VIDIOC_QUERYCTRL).
type QueryCtrl struct {
	ID           uint32
	Type         uint32
	Name         [32]byte
	Minimum      int32
	Maximum      int32
	Step         int32
	DefaultValue int32
	Flags        uint32
	Reserved     [2]uint32
}

// QueryExtCtrl mirrors struct v4l2_query_ext_ctrl (VIDIOC_QUERY_EXT_CTRL).
type QueryExtCtrl struct {
	ID           uint32
	Type         uint32
	Name         [32]byte
	Minimum      int64
	Maximum      int64
	Step         uint64
	DefaultValue int64
	Flags        uint32
	ElemSize     uint32
	Elems        uint32
	NrOfDims     uint32
	Dims         [4]uint32
	Reserved     [32]uint32
}

// CtrlName returns Name as a string.
func (q *QueryExtCtrl) CtrlName() string { return cstr(q.Name[:]) }

// QueryMenu mirrors struct v4l2_querymenu (VIDIOC_QUERYMENU). The C struct
// is packed, with a union of name[32] and an s64 value (for integer menus) at
// offset 8; Name holds the union's bytes.
type QueryMenu struct {
	ID       uint32
	Index    uint32
	Name     [32]byte
	Reserved uint32
}

// ItemName returns the union as a menu item's name (CtrlTypeMenu).
func (m *QueryMenu) ItemName() string { return cstr(m.Name[:]) }

// Value returns the union as an integer menu item's value
// (CtrlTypeIntegerMenu).
func (m *QueryMenu) Value() int64 { return int64(binary.NativeEndian.Uint64(m.Name[:8])) }

// ExtControl mirrors struct v4l2_ext_control. The C struct is packed, so its
// 8-byte value union sits at offset 12; it is raw bytes here, read and
// written with Int32/Int64 and SetInt32/SetInt64. Pointer payloads (strings,
// compound controls) are not supported.
type ExtControl struct {
	ID        uint32
	Size      uint32
	Reserved2 uint32
	Value     [8]byte
}

// Int32 returns the value of a 32-bit control (integer, boolean, menu,
// button, bitmask).
func (c *ExtControl) Int32() int32 { return int32(binary.NativeEndian.Uint32(c.Value[:4])) }

// Int64 returns the value of a CtrlTypeInteger64 control.
func (c *ExtControl) Int64() int64 { return int64(binary.NativeEndian.Uint64(c.Value[:])) }

// SetInt32 sets the value of a 32-bit control.
func (c *ExtControl) SetInt32(v int32) {
	c.Value = [8]byte{}
	binary.NativeEndian.PutUint32(c.Value[:4], uint32(v))
}

// SetInt64 sets the value of a CtrlTypeInteger64 control.
func (c *ExtControl) SetInt64(v int64) { binary.NativeEndian.PutUint64(c.Value[:], uint64(v)) }

// ExtControls mirrors struct v4l2_ext_controls (VIDIOC_G_EXT_CTRLS,
// S_EXT_CTRLS, TRY_EXT_CTRLS).
type ExtControls struct {
	Which     uint32 // CtrlWhich* or a control class (union with ctrl_class)
	Count     uint32
	ErrorIdx  uint32
	RequestFD int32
	Reserved  uint32
	Controls  *ExtControl // Count elements
}

// EventSubscription mirrors struct v4l2_event_subscription
// (VIDIOC_SUBSCRIBE_EVENT, UNSUBSCRIBE_EVENT).
type EventSubscription struct {
	Type     uint32
	ID       uint32
	Flags    uint32
	Reserved [5]uint32
}

// EventSrcChange mirrors struct v4l2_event_src_change.
type EventSrcChange struct {
	Changes uint32 // EventSrcChResolution
}

// EventCtrl mirrors struct v4l2_event_ctrl.
type EventCtrl struct {
	Changes      uint32
	Type         uint32
	Value        int64 // union of value (s32) and value64
	Flags        uint32
	Minimum      int32
	Maximum      int32
	Step         int32
	DefaultValue int32
}

// Event mirrors struct v4l2_event (VIDIOC_DQEVENT). The union is raw bytes;
// SrcChange and Ctrl view it as Type selects.
type Event struct {
	Type      uint32
	_         uint32
	U         [64]byte
	Pending   uint32
	Sequence  uint32
	Timestamp Timespec
	ID        uint32
	Reserved  [8]uint32
}

// SrcChange returns the union of an EventTypeSourceChange event.
func (e *Event) SrcChange() EventSrcChange {
	return EventSrcChange{Changes: binary.NativeEndian.Uint32(e.U[:4])}
}

// Ctrl returns the union of an EventTypeCtrl event. The pointer aliases e.
func (e *Event) Ctrl() *EventCtrl { return (*EventCtrl)(unsafe.Pointer(&e.U[0])) }

// EncoderCmd mirrors struct v4l2_encoder_cmd (VIDIOC_ENCODER_CMD).
type EncoderCmd struct {
	Cmd   uint32
	Flags uint32
	Raw   [8]uint32
}

// DecoderCmd mirrors struct v4l2_decoder_cmd (VIDIOC_DECODER_CMD). The union
// (stop.pts, start.speed/format, raw) is Raw; its first 8 bytes are stop.pts,
// or start.speed then start.format.
type DecoderCmd struct {
	Cmd   uint32
	Flags uint32
	Raw   [16]uint32
}

// cstr returns the NUL-terminated string at the start of b.
func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// FourCC returns the V4L2 pixel format code of four characters, as
// v4l2_fourcc does.
func FourCC(a, b, c, d byte) uint32 {
	return uint32(a) | uint32(b)<<8 | uint32(c)<<16 | uint32(d)<<24
}

// FourCCString returns the four characters of a pixel format code ("YUYV"),
// with the big-endian flag (bit 31) shown as a "-BE" suffix.
func FourCCString(f uint32) string {
	s := []byte{byte(f), byte(f >> 8), byte(f >> 16), byte(f>>24) &^ 0x80}
	out := string(bytes.TrimRight(s, " "))
	if f&(1<<31) != 0 {
		out += "-BE"
	}
	return out
}
