package v4l2

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Error is what Device methods return: the operation (an ioctl's kernel
// name, "open", "mmap"...), the device node, and the underlying error,
// usually a unix.Errno.
type Error struct {
	Op   string
	Path string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("v4l2: %s %s: %v", e.Op, e.Path, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// Gone reports whether err says the device went away: ENODEV (the node was
// unregistered, as on USB unplug or driver unbind) or ENXIO. EIO is not
// included: videobuf2 also returns it for a queue in error, which a caller
// may want to tell apart; check the device with QueryCap to decide.
func Gone(err error) bool {
	return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO)
}

// Device is an open V4L2 device node with one method per ioctl. Its methods
// may be called from several goroutines; the kernel serialises them as the
// driver requires.
type Device struct {
	fd   FD
	path string
}

// Open opens the device node at path through OpenFD.
func Open(path string) (*Device, error) { return OpenWith(OpenFD, path) }

// OpenWith opens the device node at path through open, the seam tests fill.
func OpenWith(open Opener, path string) (*Device, error) {
	fd, err := open(path)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, err
		}
		return nil, &Error{Op: "open", Path: path, Err: err}
	}
	return &Device{fd: fd, path: path}, nil
}

// NewDevice wraps an already open FD.
func NewDevice(fd FD, path string) *Device { return &Device{fd: fd, path: path} }

// Path returns the device node's path.
func (d *Device) Path() string { return d.path }

// FD returns the underlying FD.
func (d *Device) FD() FD { return d.fd }

// Close closes the device node. Mappings made with Mmap stay valid until
// Munmap.
func (d *Device) Close() error {
	if err := d.fd.Close(); err != nil {
		return &Error{Op: "close", Path: d.path, Err: err}
	}
	return nil
}

// Ioctl issues a raw request, for ioctls this package has no method for.
// arg must point at memory the garbage collector keeps alive and in place
// (a heap-allocated struct; Go pointers inside it are fine).
func (d *Device) Ioctl(req uint32, arg unsafe.Pointer) error {
	if err := d.fd.Ioctl(req, arg); err != nil {
		return &Error{Op: IoctlName(req), Path: d.path, Err: err}
	}
	return nil
}

// QueryCap issues VIDIOC_QUERYCAP.
func (d *Device) QueryCap() (Capability, error) {
	c := new(Capability)
	err := d.Ioctl(IoctlQueryCap, unsafe.Pointer(c))
	return *c, err
}

// EnumFormats lists the pixel formats of a buffer type (VIDIOC_ENUM_FMT,
// index 0, 1, ... until EINVAL).
func (d *Device) EnumFormats(bufType uint32) ([]FmtDesc, error) {
	var out []FmtDesc
	for i := uint32(0); ; i++ {
		f := &FmtDesc{Index: i, Type: bufType}
		if err := d.Ioctl(IoctlEnumFmt, unsafe.Pointer(f)); err != nil {
			if errors.Is(err, unix.EINVAL) {
				return out, nil
			}
			return out, err
		}
		out = append(out, *f)
	}
}

// EnumFrameSizes lists the frame sizes of a pixel format
// (VIDIOC_ENUM_FRAMESIZES). A driver with stepwise or continuous sizes
// returns one entry of that type.
func (d *Device) EnumFrameSizes(pixFmt uint32) ([]FrmSizeEnum, error) {
	var out []FrmSizeEnum
	for i := uint32(0); ; i++ {
		f := &FrmSizeEnum{Index: i, PixelFormat: pixFmt}
		if err := d.Ioctl(IoctlEnumFrameSizes, unsafe.Pointer(f)); err != nil {
			if errors.Is(err, unix.EINVAL) {
				return out, nil
			}
			return out, err
		}
		out = append(out, *f)
		if f.Type != FrmSizeTypeDiscrete {
			return out, nil
		}
	}
}

// EnumFrameIntervals lists the frame intervals of a format at a size
// (VIDIOC_ENUM_FRAMEINTERVALS). A driver with stepwise or continuous
// intervals returns one entry of that type.
func (d *Device) EnumFrameIntervals(pixFmt, width, height uint32) ([]FrmIvalEnum, error) {
	var out []FrmIvalEnum
	for i := uint32(0); ; i++ {
		f := &FrmIvalEnum{Index: i, PixelFormat: pixFmt, Width: width, Height: height}
		if err := d.Ioctl(IoctlEnumFrameIntervals, unsafe.Pointer(f)); err != nil {
			if errors.Is(err, unix.EINVAL) {
				return out, nil
			}
			return out, err
		}
		out = append(out, *f)
		if f.Type != FrmIvalTypeDiscrete {
			return out, nil
		}
	}
}

// GetFormat issues VIDIOC_G_FMT for a buffer type.
func (d *Device) GetFormat(bufType uint32) (Format, error) {
	f := &Format{Type: bufType}
	err := d.Ioctl(IoctlGFmt, unsafe.Pointer(f))
	return *f, err
}

// SetFormat issues VIDIOC_S_FMT; f is updated with what the driver chose.
func (d *Device) SetFormat(f *Format) error { return d.fmtIoctl(IoctlSFmt, f) }

// TryFormat issues VIDIOC_TRY_FMT; f is updated with what the driver would
// choose.
func (d *Device) TryFormat(f *Format) error { return d.fmtIoctl(IoctlTryFmt, f) }

func (d *Device) fmtIoctl(req uint32, f *Format) error {
	c := new(Format)
	*c = *f
	err := d.Ioctl(req, unsafe.Pointer(c))
	*f = *c
	return err
}

// GetParm issues VIDIOC_G_PARM for a buffer type.
func (d *Device) GetParm(bufType uint32) (StreamParm, error) {
	p := &StreamParm{Type: bufType}
	err := d.Ioctl(IoctlGParm, unsafe.Pointer(p))
	return *p, err
}

// SetParm issues VIDIOC_S_PARM; p is updated with what the driver chose
// (drivers round the frame interval to one they support).
func (d *Device) SetParm(p *StreamParm) error {
	c := new(StreamParm)
	*c = *p
	err := d.Ioctl(IoctlSParm, unsafe.Pointer(c))
	*p = *c
	return err
}

// SetFrameInterval sets the frame interval of a buffer type to num/den
// seconds with VIDIOC_S_PARM and returns the interval the driver chose.
func (d *Device) SetFrameInterval(bufType uint32, interval Fract) (Fract, error) {
	p := &StreamParm{Type: bufType}
	p.Parm.TimePerFrame = interval
	err := d.SetParm(p)
	return p.Parm.TimePerFrame, err
}

// RequestBuffers issues VIDIOC_REQBUFS and returns the request as the
// driver filled it: Count is the number of buffers allocated (which may
// differ from count), Capabilities the queue's BufCap* flags. count 0 frees
// the buffers, which requires them to be unmapped first.
func (d *Device) RequestBuffers(bufType, memory, count uint32) (RequestBuffers, error) {
	r := &RequestBuffers{Count: count, Type: bufType, Memory: memory}
	err := d.Ioctl(IoctlReqBufs, unsafe.Pointer(r))
	return *r, err
}

// QueryBuffer issues VIDIOC_QUERYBUF on a single-planar queue: b.Index,
// b.Type and b.Memory in, the rest out.
func (d *Device) QueryBuffer(b *Buffer) error { return d.bufIoctl(IoctlQueryBuf, b) }

// QueueBuffer issues VIDIOC_QBUF on a single-planar queue.
func (d *Device) QueueBuffer(b *Buffer) error { return d.bufIoctl(IoctlQBuf, b) }

// DequeueBuffer issues VIDIOC_DQBUF on a single-planar queue: b.Type and
// b.Memory in. The device is non-blocking, so it returns EAGAIN when no
// buffer is ready; Poll first.
func (d *Device) DequeueBuffer(b *Buffer) error { return d.bufIoctl(IoctlDQBuf, b) }

func (d *Device) bufIoctl(req uint32, b *Buffer) error {
	c := new(Buffer)
	*c = *b
	err := d.Ioctl(req, unsafe.Pointer(c))
	*b = *c
	return err
}

// QueryPlaneBuffer issues VIDIOC_QUERYBUF on a multi-planar queue. b.Planes
// points at b.Length planes (at most VideoMaxPlanes), which the kernel fills.
func (d *Device) QueryPlaneBuffer(b *PlaneBuffer) error { return d.planeBufIoctl(IoctlQueryBuf, b) }

// QueuePlaneBuffer issues VIDIOC_QBUF on a multi-planar queue; for an output
// queue set each plane's BytesUsed.
func (d *Device) QueuePlaneBuffer(b *PlaneBuffer) error { return d.planeBufIoctl(IoctlQBuf, b) }

// DequeuePlaneBuffer issues VIDIOC_DQBUF on a multi-planar queue.
func (d *Device) DequeuePlaneBuffer(b *PlaneBuffer) error { return d.planeBufIoctl(IoctlDQBuf, b) }

func (d *Device) planeBufIoctl(req uint32, b *PlaneBuffer) error {
	if b.Planes == nil || b.Length == 0 || b.Length > VideoMaxPlanes {
		return &Error{Op: IoctlName(req), Path: d.path, Err: fmt.Errorf("multi-planar buffer with %d planes: %w", b.Length, unix.EINVAL)}
	}
	// The kernel reads and writes the planes through the pointer: copy
	// them into a heap block next to the buffer, so both stay put for the
	// call, then copy back.
	blk := new(struct {
		buf    PlaneBuffer
		planes [VideoMaxPlanes]Plane
	})
	user := unsafe.Slice(b.Planes, b.Length)
	blk.buf = *b
	copy(blk.planes[:], user)
	blk.buf.Planes = &blk.planes[0]
	err := d.Ioctl(req, unsafe.Pointer(&blk.buf))
	runtime.KeepAlive(blk)
	planes := b.Planes
	*b = blk.buf
	b.Planes = planes
	copy(user, blk.planes[:b.Length])
	return err
}

// StreamOn issues VIDIOC_STREAMON for a buffer type.
func (d *Device) StreamOn(bufType uint32) error {
	t := new(uint32)
	*t = bufType
	return d.Ioctl(IoctlStreamOn, unsafe.Pointer(t))
}

// StreamOff issues VIDIOC_STREAMOFF for a buffer type. It dequeues every
// buffer, in the kernel's view: they are all the caller's again.
func (d *Device) StreamOff(bufType uint32) error {
	t := new(uint32)
	*t = bufType
	return d.Ioctl(IoctlStreamOff, unsafe.Pointer(t))
}

// QueryCtrl issues VIDIOC_QUERYCTRL for id (which may carry
// CtrlFlagNextCtrl to enumerate).
func (d *Device) QueryCtrl(id uint32) (QueryCtrl, error) {
	q := &QueryCtrl{ID: id}
	err := d.Ioctl(IoctlQueryCtrl, unsafe.Pointer(q))
	return *q, err
}

// QueryExtCtrl issues VIDIOC_QUERY_EXT_CTRL for id (which may carry
// CtrlFlagNextCtrl and CtrlFlagNextCompound to enumerate).
func (d *Device) QueryExtCtrl(id uint32) (QueryExtCtrl, error) {
	q := &QueryExtCtrl{ID: id}
	err := d.Ioctl(IoctlQueryExtCtrl, unsafe.Pointer(q))
	return *q, err
}

// EnumControls lists the device's non-compound controls, control-class
// headings included, with VIDIOC_QUERY_EXT_CTRL and CtrlFlagNextCtrl. On a
// driver without VIDIOC_QUERY_EXT_CTRL (ENOTTY) it falls back to
// VIDIOC_QUERYCTRL and widens the answers.
func (d *Device) EnumControls() ([]QueryExtCtrl, error) {
	var out []QueryExtCtrl
	id := uint32(0)
	for {
		q, err := d.QueryExtCtrl(id | CtrlFlagNextCtrl)
		if errors.Is(err, unix.ENOTTY) && len(out) == 0 {
			return d.enumControlsOld()
		}
		if errors.Is(err, unix.EINVAL) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if q.ID&CtrlIDMask <= id&CtrlIDMask {
			// A driver that does not advance would loop forever.
			return out, &Error{Op: "VIDIOC_QUERY_EXT_CTRL", Path: d.path, Err: fmt.Errorf("control enumeration went from %#x back to %#x", id, q.ID)}
		}
		out = append(out, q)
		id = q.ID
	}
}

func (d *Device) enumControlsOld() ([]QueryExtCtrl, error) {
	var out []QueryExtCtrl
	id := uint32(0)
	for {
		q, err := d.QueryCtrl(id | CtrlFlagNextCtrl)
		if errors.Is(err, unix.EINVAL) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if q.ID&CtrlIDMask <= id&CtrlIDMask {
			return out, &Error{Op: "VIDIOC_QUERYCTRL", Path: d.path, Err: fmt.Errorf("control enumeration went from %#x back to %#x", id, q.ID)}
		}
		e := QueryExtCtrl{
			ID: q.ID, Type: q.Type, Name: q.Name,
			Minimum: int64(q.Minimum), Maximum: int64(q.Maximum), Step: uint64(q.Step),
			DefaultValue: int64(q.DefaultValue), Flags: q.Flags, ElemSize: 4, Elems: 1,
		}
		if q.Type == CtrlTypeInteger64 {
			e.ElemSize = 8
		}
		out = append(out, e)
		id = q.ID
	}
}

// QueryMenu issues VIDIOC_QUERYMENU for one item of a menu control. Menus
// may have holes: an index the driver skips returns EINVAL.
func (d *Device) QueryMenu(id, index uint32) (QueryMenu, error) {
	m := &QueryMenu{ID: id, Index: index}
	err := d.Ioctl(IoctlQueryMenu, unsafe.Pointer(m))
	return *m, err
}

// MenuItems lists the items of a menu or integer-menu control from
// q.Minimum to q.Maximum, skipping the indices the driver does not offer.
func (d *Device) MenuItems(q QueryExtCtrl) ([]QueryMenu, error) {
	var out []QueryMenu
	if q.Minimum < 0 || q.Maximum > 1<<16 {
		return nil, &Error{Op: "VIDIOC_QUERYMENU", Path: d.path, Err: fmt.Errorf("menu %#x range %d..%d: %w", q.ID, q.Minimum, q.Maximum, unix.EINVAL)}
	}
	for i := q.Minimum; i <= q.Maximum; i++ {
		m, err := d.QueryMenu(q.ID, uint32(i))
		if errors.Is(err, unix.EINVAL) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, nil
}

// GetCtrl issues VIDIOC_G_CTRL.
func (d *Device) GetCtrl(id uint32) (int32, error) {
	c := &Control{ID: id}
	err := d.Ioctl(IoctlGCtrl, unsafe.Pointer(c))
	return c.Value, err
}

// SetCtrl issues VIDIOC_S_CTRL and returns the value the driver reports
// back (the control framework clamps and rounds to the step).
func (d *Device) SetCtrl(id uint32, value int32) (int32, error) {
	c := &Control{ID: id, Value: value}
	err := d.Ioctl(IoctlSCtrl, unsafe.Pointer(c))
	return c.Value, err
}

// GetExtCtrls issues VIDIOC_G_EXT_CTRLS for ctrls (IDs in, values out).
// which is CtrlWhichCurVal, CtrlWhichDefVal or a control class.
func (d *Device) GetExtCtrls(which uint32, ctrls []ExtControl) error {
	return d.extCtrls(IoctlGExtCtrls, which, ctrls)
}

// SetExtCtrls issues VIDIOC_S_EXT_CTRLS; ctrls are updated with what the
// driver applied. The kernel applies all or none.
func (d *Device) SetExtCtrls(which uint32, ctrls []ExtControl) error {
	return d.extCtrls(IoctlSExtCtrls, which, ctrls)
}

// TryExtCtrls issues VIDIOC_TRY_EXT_CTRLS; ctrls are updated with what the
// driver would apply.
func (d *Device) TryExtCtrls(which uint32, ctrls []ExtControl) error {
	return d.extCtrls(IoctlTryExtCtrls, which, ctrls)
}

func (d *Device) extCtrls(req uint32, which uint32, ctrls []ExtControl) error {
	if len(ctrls) == 0 {
		return nil
	}
	// As in planeBufIoctl: the array and the header in one heap block.
	blk := &struct {
		hdr   ExtControls
		ctrls []ExtControl
	}{ctrls: append([]ExtControl(nil), ctrls...)}
	blk.hdr = ExtControls{Which: which, Count: uint32(len(ctrls)), Controls: &blk.ctrls[0]}
	err := d.Ioctl(req, unsafe.Pointer(&blk.hdr))
	runtime.KeepAlive(blk)
	copy(ctrls, blk.ctrls)
	if err != nil && blk.hdr.ErrorIdx < uint32(len(ctrls)) {
		var e *Error
		if errors.As(err, &e) {
			e.Err = fmt.Errorf("control %#x: %w", ctrls[blk.hdr.ErrorIdx].ID, e.Err)
		}
	}
	return err
}

// SubscribeEvent issues VIDIOC_SUBSCRIBE_EVENT.
func (d *Device) SubscribeEvent(typ, id, flags uint32) error {
	s := &EventSubscription{Type: typ, ID: id, Flags: flags}
	return d.Ioctl(IoctlSubscribeEvent, unsafe.Pointer(s))
}

// UnsubscribeEvent issues VIDIOC_UNSUBSCRIBE_EVENT (EventTypeAll for all).
func (d *Device) UnsubscribeEvent(typ, id uint32) error {
	s := &EventSubscription{Type: typ, ID: id}
	return d.Ioctl(IoctlUnsubscribeEvent, unsafe.Pointer(s))
}

// DequeueEvent issues VIDIOC_DQEVENT. Events make the device readable for
// unix.POLLPRI; with none pending it returns ENOENT.
func (d *Device) DequeueEvent() (Event, error) {
	e := new(Event)
	err := d.Ioctl(IoctlDQEvent, unsafe.Pointer(e))
	return *e, err
}

// EncoderCmd issues VIDIOC_ENCODER_CMD (EncCmdStop drains a stateful
// encoder, EncCmdStart resumes it).
func (d *Device) EncoderCmd(cmd, flags uint32) error {
	c := &EncoderCmd{Cmd: cmd, Flags: flags}
	return d.Ioctl(IoctlEncoderCmd, unsafe.Pointer(c))
}

// TryEncoderCmd issues VIDIOC_TRY_ENCODER_CMD.
func (d *Device) TryEncoderCmd(cmd, flags uint32) error {
	c := &EncoderCmd{Cmd: cmd, Flags: flags}
	return d.Ioctl(IoctlTryEncoderCmd, unsafe.Pointer(c))
}

// DecoderCmd issues VIDIOC_DECODER_CMD (DecCmdStop drains a stateful
// decoder, DecCmdStart resumes it).
func (d *Device) DecoderCmd(cmd, flags uint32) error {
	c := &DecoderCmd{Cmd: cmd, Flags: flags}
	return d.Ioctl(IoctlDecoderCmd, unsafe.Pointer(c))
}

// TryDecoderCmd issues VIDIOC_TRY_DECODER_CMD.
func (d *Device) TryDecoderCmd(cmd, flags uint32) error {
	c := &DecoderCmd{Cmd: cmd, Flags: flags}
	return d.Ioctl(IoctlTryDecoderCmd, unsafe.Pointer(c))
}

// Mmap maps a buffer or plane (offset from QueryBuffer's Offset, length its
// Length).
func (d *Device) Mmap(offset uint32, length uint32) ([]byte, error) {
	b, err := d.fd.Mmap(int64(offset), int(length))
	if err != nil {
		return nil, &Error{Op: "mmap", Path: d.path, Err: err}
	}
	return b, nil
}

// Munmap unmaps what Mmap mapped.
func (d *Device) Munmap(b []byte) error {
	if err := d.fd.Munmap(b); err != nil {
		return &Error{Op: "munmap", Path: d.path, Err: err}
	}
	return nil
}

// Poll waits until the device is ready for events (unix.POLLIN for a
// capture buffer, POLLOUT for an output buffer, POLLPRI for an event), the
// timeout passes (0 revents, nil error; negative waits forever), or ctx is
// done (ctx.Err(), unwrapped so callers can compare). After unplug the
// kernel reports POLLERR|POLLHUP.
func (d *Device) Poll(ctx context.Context, events int16, timeout time.Duration) (int16, error) {
	rev, err := d.fd.Poll(ctx, events, timeout)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return 0, err
		}
		return 0, &Error{Op: "poll", Path: d.path, Err: err}
	}
	return rev, nil
}
