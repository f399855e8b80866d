package v4l2

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	uapi "github.com/atriumroom/atrium/hal/internal/v4l2"
	"golang.org/x/sys/unix"
)

// fakeFormat is one pixel format a fake device offers.
type fakeFormat struct {
	fourcc uint32
	sizes  []fakeSize
	// stepwise, when set, is reported instead of sizes.
	stepwise *uapi.FrmSizeStepwise
}

type fakeSize struct {
	w, h  int
	fps   []int // discrete intervals 1/fps
	ivals *uapi.FrmIvalStepwise
}

// fakeCtrl is one control of a fake device.
type fakeCtrl struct {
	q     uapi.QueryExtCtrl
	value int64
	menu  map[uint32]string // menu items by index
	// apply, when set, is what the driver stores for a set value (rounding).
	apply func(int64) int64
}

// fakeDev is a V4L2 capture driver in memory: it answers the ioctls the
// camera driver uses, with the struct layouts of hal/internal/v4l2, and
// produces frames when the test calls produce.
type fakeDev struct {
	t *testing.T

	mu      sync.Mutex
	cond    *sync.Cond
	cap     uapi.Capability
	mplane  bool
	pad     int // extra bytes per row (bytesperline padding)
	formats []fakeFormat
	ctrls   map[uint32]*fakeCtrl
	setLog  []string // "cid=value" of every applied S_EXT_CTRLS

	gone      bool // every ioctl fails with ENODEV, polls report POLLERR|POLLHUP
	queueErr  bool // vb2's queue error: DQBUF fails with EIO, polls report POLLERR
	pollErrs  int  // this many polls without a frame report POLLERR for no reason
	openCount int  // open handles
	maxOpen   int

	// Streaming state.
	owner     *fakeFD // the handle that requested buffers
	fmt       uapi.Format
	interval  uapi.Fract
	bufs      [][]byte
	queued    []uint32
	done      []fakeDone
	streaming bool
	seq       uint32
	mapped    int
	stamp     func() uapi.Timeval
}

type fakeDone struct {
	index uint32
	seq   uint32
	flags uint32
	used  uint32
	ts    uapi.Timeval
}

func newFakeDev(t *testing.T, driver, card, bus string) *fakeDev {
	d := &fakeDev{t: t, ctrls: make(map[uint32]*fakeCtrl)}
	d.cond = sync.NewCond(&d.mu)
	copy(d.cap.Driver[:], driver)
	copy(d.cap.Card[:], card)
	copy(d.cap.BusInfo[:], bus)
	d.cap.Capabilities = uapi.CapVideoCapture | uapi.CapStreaming | uapi.CapDeviceCaps | uapi.CapVideoOutput | uapi.CapMetaCapture
	d.cap.DeviceCaps = uapi.CapVideoCapture | uapi.CapStreaming
	return d
}

// fakeFD is one open handle of a fakeDev.
type fakeFD struct {
	dev    *fakeDev
	closed bool
}

func (d *fakeDev) open() (uapi.FD, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gone {
		return nil, unix.ENOENT
	}
	d.openCount++
	d.maxOpen = max(d.maxOpen, d.openCount)
	return &fakeFD{dev: d}, nil
}

func (f *fakeFD) Close() error {
	d := f.dev
	d.mu.Lock()
	defer d.mu.Unlock()
	if f.closed {
		return uapi.ErrClosed
	}
	f.closed = true
	d.openCount--
	if d.owner == f {
		// The kernel frees an owner's buffers on its last close.
		d.owner, d.streaming, d.bufs, d.queued, d.done = nil, false, nil, nil, nil
	}
	d.cond.Broadcast()
	return nil
}

func (f *fakeFD) Mmap(offset int64, length int) ([]byte, error) {
	d := f.dev
	d.mu.Lock()
	defer d.mu.Unlock()
	i := int(offset / 0x100000)
	if i >= len(d.bufs) || length > len(d.bufs[i]) {
		return nil, unix.EINVAL
	}
	d.mapped++
	return d.bufs[i][:length:length], nil
}

func (f *fakeFD) Munmap(b []byte) error {
	d := f.dev
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mapped--
	return nil
}

func (f *fakeFD) Poll(ctx context.Context, events int16, timeout time.Duration) (int16, error) {
	d := f.dev
	stop := context.AfterFunc(ctx, func() {
		d.mu.Lock()
		d.cond.Broadcast()
		d.mu.Unlock()
	})
	defer stop()
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
		t := time.AfterFunc(timeout, func() {
			d.mu.Lock()
			d.cond.Broadcast()
			d.mu.Unlock()
		})
		defer t.Stop()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		switch {
		case f.closed:
			return 0, uapi.ErrClosed
		case d.gone:
			return unix.POLLERR | unix.POLLHUP, nil
		case d.queueErr:
			return unix.POLLERR, nil
		case ctx.Err() != nil:
			return 0, ctx.Err()
		case len(d.done) > 0 && events&unix.POLLIN != 0:
			return unix.POLLIN, nil
		case d.pollErrs > 0:
			d.pollErrs--
			return unix.POLLERR, nil
		case !deadline.IsZero() && !time.Now().Before(deadline):
			return 0, nil
		}
		d.cond.Wait()
	}
}

// produce fills the next queued buffer with a frame and hands it to the
// reader, as a driver's interrupt handler would; it returns false when no
// buffer is queued (the frame is dropped, and the sequence advances).
func (d *fakeDev) produce(flags uint32) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	seq := d.seq
	d.seq++
	if !d.streaming || len(d.queued) == 0 {
		return false
	}
	i := d.queued[0]
	d.queued = d.queued[1:]
	used := d.fill(d.bufs[i], seq)
	ts := uapi.Timeval{}
	if d.stamp != nil {
		ts = d.stamp()
		flags |= uapi.BufFlagTimestampMonotonic
	}
	d.done = append(d.done, fakeDone{index: i, seq: seq, flags: flags, used: uint32(used), ts: ts})
	d.cond.Broadcast()
	return true
}

// fill writes frame seq: every byte of the image is pattern(seq, plane, row,
// col); padding bytes are 0xEE, so a reader that copies padding is caught.
func (d *fakeDev) fill(buf []byte, seq uint32) int {
	for i := range buf {
		buf[i] = 0xEE
	}
	p := d.fmt.Pix()
	if p.PixelFormat == uapi.PixFmtMJPEG {
		n := copy(buf, fmt.Sprintf("JPEG frame %d", seq))
		return n
	}
	for _, pl := range fakePlanes(p.PixelFormat, int(p.Width), int(p.Height), int(p.BytesPerLine)) {
		for r := range pl.rows {
			for c := range pl.row {
				buf[pl.offset+r*pl.stride+c] = pattern(seq, pl.index, r, c)
			}
		}
	}
	return int(p.SizeImage)
}

func pattern(seq uint32, plane, row, col int) byte {
	return byte(int(seq)*7 + plane*50 + row*3 + col)
}

type fakePlane struct{ index, offset, stride, row, rows int }

// fakePlanes is the fake driver's own idea of the layouts (written from the
// V4L2 format definitions, independently of rawPlanes).
func fakePlanes(fourcc uint32, w, h, bpl int) []fakePlane {
	switch fourcc {
	case uapi.PixFmtYUYV:
		return []fakePlane{{0, 0, bpl, 2 * w, h}}
	case uapi.PixFmtNV12:
		return []fakePlane{{0, 0, bpl, w, h}, {1, bpl * h, bpl, w, h / 2}}
	case uapi.PixFmtYUV420:
		return []fakePlane{{0, 0, bpl, w, h}, {1, bpl * h, bpl / 2, w / 2, h / 2}, {2, bpl*h + bpl/2*h/2, bpl / 2, w / 2, h / 2}}
	}
	panic("fake: no layout")
}

// packedFrame is what a reader should make of frame seq.
func packedFrame(fourcc uint32, w, h int, seq uint32) []byte {
	var out []byte
	for _, pl := range fakePlanes(fourcc, w, h, 0) {
		for r := range pl.rows {
			for c := range pl.row {
				out = append(out, pattern(seq, pl.index, r, c))
			}
		}
	}
	return out
}

func (d *fakeDev) findFormat(fourcc uint32) *fakeFormat {
	for i := range d.formats {
		if d.formats[i].fourcc == fourcc {
			return &d.formats[i]
		}
	}
	return nil
}

func (f *fakeFD) Ioctl(req uint32, arg unsafe.Pointer) error {
	d := f.dev
	d.mu.Lock()
	defer d.mu.Unlock()
	if f.closed {
		return uapi.ErrClosed
	}
	if d.gone {
		return unix.ENODEV
	}
	bufType := uint32(uapi.BufTypeVideoCapture)
	if d.mplane {
		bufType = uapi.BufTypeVideoCaptureMPlane
	}
	switch req {
	case uapi.IoctlQueryCap:
		*(*uapi.Capability)(arg) = d.cap
	case uapi.IoctlEnumFmt:
		fd := (*uapi.FmtDesc)(arg)
		if fd.Type != bufType || int(fd.Index) >= len(d.formats) {
			return unix.EINVAL
		}
		fd.PixelFormat = d.formats[fd.Index].fourcc
	case uapi.IoctlEnumFrameSizes:
		fs := (*uapi.FrmSizeEnum)(arg)
		ff := d.findFormat(fs.PixelFormat)
		if ff == nil {
			return unix.EINVAL
		}
		if ff.stepwise != nil {
			if fs.Index > 0 {
				return unix.EINVAL
			}
			fs.Type, fs.Stepwise = uapi.FrmSizeTypeStepwise, *ff.stepwise
			return nil
		}
		if int(fs.Index) >= len(ff.sizes) {
			return unix.EINVAL
		}
		s := ff.sizes[fs.Index]
		fs.Type = uapi.FrmSizeTypeDiscrete
		fs.Stepwise = uapi.FrmSizeStepwise{MinWidth: uint32(s.w), MaxWidth: uint32(s.h)} // the union's discrete view
	case uapi.IoctlEnumFrameIntervals:
		fi := (*uapi.FrmIvalEnum)(arg)
		ff := d.findFormat(fi.PixelFormat)
		if ff == nil {
			return unix.EINVAL
		}
		var size *fakeSize
		for i := range ff.sizes {
			if ff.sizes[i].w == int(fi.Width) && ff.sizes[i].h == int(fi.Height) {
				size = &ff.sizes[i]
			}
		}
		if size == nil && ff.stepwise != nil {
			size = &fakeSize{fps: []int{30, 15}}
		}
		if size == nil {
			return unix.EINVAL
		}
		if size.ivals != nil {
			if fi.Index > 0 {
				return unix.EINVAL
			}
			fi.Type, fi.Stepwise = uapi.FrmIvalTypeStepwise, *size.ivals
			return nil
		}
		if int(fi.Index) >= len(size.fps) {
			return unix.EINVAL
		}
		fi.Type = uapi.FrmIvalTypeDiscrete
		fi.Stepwise.Min = uapi.Fract{Numerator: 1, Denominator: uint32(size.fps[fi.Index])}
	case uapi.IoctlSFmt, uapi.IoctlTryFmt, uapi.IoctlGFmt:
		return d.format(f, req, (*uapi.Format)(arg), bufType)
	case uapi.IoctlGParm, uapi.IoctlSParm:
		p := (*uapi.StreamParm)(arg)
		if p.Type != bufType {
			return unix.EINVAL
		}
		if req == uapi.IoctlSParm {
			d.interval = p.Parm.TimePerFrame
		}
		p.Parm.Capability = uapi.CapTimePerFrame
		p.Parm.TimePerFrame = d.interval
	case uapi.IoctlReqBufs:
		return d.reqbufs(f, (*uapi.RequestBuffers)(arg), bufType)
	case uapi.IoctlQueryBuf, uapi.IoctlQBuf, uapi.IoctlDQBuf:
		return d.buffer(f, req, arg)
	case uapi.IoctlStreamOn, uapi.IoctlStreamOff:
		if *(*uint32)(arg) != bufType || d.owner != f {
			return unix.EINVAL
		}
		d.streaming = req == uapi.IoctlStreamOn
		if !d.streaming {
			d.queued, d.done = nil, nil
		}
	case uapi.IoctlQueryExtCtrl:
		q := (*uapi.QueryExtCtrl)(arg)
		c := d.ctrlFor(q.ID)
		if c == nil {
			return unix.EINVAL
		}
		*q = c.q
	case uapi.IoctlQueryMenu:
		m := (*uapi.QueryMenu)(arg)
		c := d.ctrls[m.ID]
		if c == nil || c.menu == nil {
			return unix.EINVAL
		}
		name, ok := c.menu[m.Index]
		if !ok {
			return unix.EINVAL
		}
		copy(m.Name[:], name)
	case uapi.IoctlGExtCtrls, uapi.IoctlSExtCtrls:
		h := (*uapi.ExtControls)(arg)
		for i, x := range unsafe.Slice(h.Controls, h.Count) {
			c := d.ctrls[x.ID]
			if c == nil {
				h.ErrorIdx = uint32(i)
				return unix.EINVAL
			}
			if req == uapi.IoctlGExtCtrls && c.q.Flags&uapi.CtrlFlagWriteOnly != 0 {
				return unix.EACCES
			}
		}
		ctrls := unsafe.Slice(h.Controls, h.Count)
		for i := range ctrls {
			x := &ctrls[i]
			c := d.ctrls[x.ID]
			if req == uapi.IoctlSExtCtrls {
				v := int64(x.Int32())
				if v < c.q.Minimum || v > c.q.Maximum {
					return unix.ERANGE
				}
				if c.apply != nil {
					v = c.apply(v)
				}
				c.value = v
				d.setLog = append(d.setLog, fmt.Sprintf("%#x=%d", x.ID, v))
			}
			x.SetInt32(int32(c.value))
		}
	default:
		return unix.ENOTTY
	}
	return nil
}

// ctrlFor answers QUERY_EXT_CTRL, including enumeration with NEXT_CTRL.
func (d *fakeDev) ctrlFor(id uint32) *fakeCtrl {
	if id&uapi.CtrlFlagNextCtrl == 0 {
		return d.ctrls[id]
	}
	var ids []uint32
	for cid := range d.ctrls {
		ids = append(ids, cid)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, cid := range ids {
		if cid > id&uapi.CtrlIDMask {
			return d.ctrls[cid]
		}
	}
	return nil
}

func (d *fakeDev) format(f *fakeFD, req uint32, fm *uapi.Format, bufType uint32) error {
	if fm.Type != bufType {
		return unix.EINVAL
	}
	if req == uapi.IoctlGFmt {
		*fm = d.fmt
		return nil
	}
	if req == uapi.IoctlSFmt && d.owner != nil && d.owner != f {
		return unix.EBUSY
	}
	var w, h, fourcc uint32
	if d.mplane {
		w, h, fourcc = fm.PixMP().Width, fm.PixMP().Height, fm.PixMP().PixelFormat
	} else {
		w, h, fourcc = fm.Pix().Width, fm.Pix().Height, fm.Pix().PixelFormat
	}
	ff := d.findFormat(fourcc)
	if ff == nil {
		ff = &d.formats[0]
	}
	// Like real drivers, fall back to the first size rather than fail.
	ok := ff.stepwise != nil
	for _, s := range ff.sizes {
		if s.w == int(w) && s.h == int(h) {
			ok = true
		}
	}
	if !ok {
		w, h = uint32(ff.sizes[0].w), uint32(ff.sizes[0].h)
	}
	var bpl, size uint32
	switch ff.fourcc {
	case uapi.PixFmtYUYV:
		bpl = 2*w + uint32(d.pad)
		size = bpl * h
	case uapi.PixFmtNV12, uapi.PixFmtYUV420:
		bpl = w + uint32(d.pad)
		size = bpl * h * 3 / 2
	default:
		size = w * h
	}
	out := uapi.Format{Type: bufType}
	if d.mplane {
		p := out.PixMP()
		p.Width, p.Height, p.PixelFormat, p.Field, p.NumPlanes = w, h, ff.fourcc, uapi.FieldNone, 1
		p.PlaneFmt[0] = uapi.PlanePixFormat{BytesPerLine: bpl, SizeImage: size}
	} else {
		p := out.Pix()
		p.Width, p.Height, p.PixelFormat, p.Field, p.BytesPerLine, p.SizeImage = w, h, ff.fourcc, uapi.FieldNone, bpl, size
	}
	*fm = out
	if req == uapi.IoctlSFmt {
		// The fake keeps its single-planar view for fill.
		d.fmt = uapi.Format{Type: uapi.BufTypeVideoCapture}
		p := d.fmt.Pix()
		p.Width, p.Height, p.PixelFormat, p.BytesPerLine, p.SizeImage = w, h, ff.fourcc, bpl, size
	}
	return nil
}

func (d *fakeDev) reqbufs(f *fakeFD, r *uapi.RequestBuffers, bufType uint32) error {
	if r.Type != bufType || r.Memory != uapi.MemoryMMAP {
		return unix.EINVAL
	}
	if d.owner != nil && d.owner != f {
		return unix.EBUSY
	}
	if r.Count == 0 {
		if d.mapped > 0 {
			return unix.EBUSY
		}
		d.owner, d.bufs, d.queued, d.done, d.streaming = nil, nil, nil, nil, false
		return nil
	}
	d.owner = f
	d.bufs = make([][]byte, r.Count)
	for i := range d.bufs {
		d.bufs[i] = make([]byte, d.fmt.Pix().SizeImage)
	}
	d.seq = 0
	return nil
}

func (d *fakeDev) buffer(f *fakeFD, req uint32, arg unsafe.Pointer) error {
	if d.owner != f {
		return unix.EINVAL
	}
	// Both buffer structs share the header; read it through the
	// single-planar view and write planes separately.
	b := (*uapi.Buffer)(arg)
	var planes []uapi.Plane
	if d.mplane {
		pb := (*uapi.PlaneBuffer)(arg)
		if pb.Length < 1 {
			return unix.EINVAL
		}
		planes = unsafe.Slice(pb.Planes, pb.Length)
	}
	switch req {
	case uapi.IoctlQueryBuf:
		if int(b.Index) >= len(d.bufs) {
			return unix.EINVAL
		}
		if d.mplane {
			planes[0].Length, planes[0].M = uint32(len(d.bufs[b.Index])), uint64(b.Index)*0x100000
		} else {
			b.Length, b.M = uint32(len(d.bufs[b.Index])), uint64(b.Index)*0x100000
		}
	case uapi.IoctlQBuf:
		if int(b.Index) >= len(d.bufs) {
			return unix.EINVAL
		}
		for _, q := range d.queued {
			if q == b.Index {
				return unix.EINVAL
			}
		}
		d.queued = append(d.queued, b.Index)
	case uapi.IoctlDQBuf:
		if d.queueErr {
			return unix.EIO
		}
		if len(d.done) == 0 {
			return unix.EAGAIN
		}
		dn := d.done[0]
		d.done = d.done[1:]
		b.Index, b.Sequence, b.Flags, b.Timestamp = dn.index, dn.seq, dn.flags, dn.ts
		if d.mplane {
			planes[0].BytesUsed = dn.used
		} else {
			b.BytesUsed = dn.used
		}
	}
	return nil
}

// fakeSystem is a fake sysfs tree and a set of fake device nodes.
type fakeSystem struct {
	t     *testing.T
	sysfs string
	devs  map[string]*fakeDev // by node path
	mu    sync.Mutex
}

func newFakeSystem(t *testing.T) *fakeSystem {
	return &fakeSystem{t: t, sysfs: t.TempDir(), devs: make(map[string]*fakeDev)}
}

func (s *fakeSystem) opener(path string) (uapi.FD, error) {
	s.mu.Lock()
	d := s.devs[path]
	s.mu.Unlock()
	if d == nil {
		return nil, unix.ENOENT
	}
	return d.open()
}

// addNode creates class/video4linux/<sysName> as a symlink into
// devices/<parent>/video4linux/<sysName>, with its name attribute and a
// device link to devices/<parent>, and registers dev as /dev/<sysName>.
func (s *fakeSystem) addNode(sysName, name, parent string, dev *fakeDev) {
	t := s.t
	devDir := filepath.Join(s.sysfs, "devices", parent, "video4linux", sysName)
	must(t, os.MkdirAll(devDir, 0o755))
	must(t, os.WriteFile(filepath.Join(devDir, "name"), []byte(name+"\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(devDir, "uevent"), []byte("MAJOR=81\nMINOR=0\nDEVNAME="+sysName+"\n"), 0o644))
	must(t, os.Symlink(filepath.Join("..", ".."), filepath.Join(devDir, "device")))
	class := filepath.Join(s.sysfs, "class", "video4linux")
	must(t, os.MkdirAll(class, 0o755))
	rel, err := filepath.Rel(class, devDir)
	must(t, err)
	must(t, os.Symlink(rel, filepath.Join(class, sysName)))
	s.mu.Lock()
	s.devs["/dev/"+sysName] = dev
	s.mu.Unlock()
}

// removeNode is the kernel unregistering a node.
func (s *fakeSystem) removeNode(sysName string) {
	must(s.t, os.Remove(filepath.Join(s.sysfs, "class", "video4linux", sysName)))
	s.mu.Lock()
	delete(s.devs, "/dev/"+sysName)
	s.mu.Unlock()
}

// addUSB creates a USB device directory with an interface, and returns the
// interface's path (relative to devices/) for addNode.
func (s *fakeSystem) addUSB(port, vendor, product, serial string) string {
	dev := filepath.Join("pci0000:00", "0000:00:14.0", "usb1", port)
	dir := filepath.Join(s.sysfs, "devices", dev)
	must(s.t, os.MkdirAll(dir, 0o755))
	must(s.t, os.WriteFile(filepath.Join(dir, "idVendor"), []byte(vendor+"\n"), 0o644))
	must(s.t, os.WriteFile(filepath.Join(dir, "idProduct"), []byte(product+"\n"), 0o644))
	if serial != "" {
		must(s.t, os.WriteFile(filepath.Join(dir, "serial"), []byte(serial+"\n"), 0o644))
	}
	iface := filepath.Join(dev, port+":1.0")
	must(s.t, os.MkdirAll(filepath.Join(s.sysfs, "devices", iface), 0o755))
	must(s.t, os.WriteFile(filepath.Join(s.sysfs, "devices", iface, "bInterfaceNumber"), []byte("00\n"), 0o644))
	return iface
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// String describes the fake's state, for failure messages.
func (d *fakeDev) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Sprintf("open=%d mapped=%d owner=%v streaming=%v queued=%v done=%d sets=[%s]",
		d.openCount, d.mapped, d.owner != nil, d.streaming, d.queued, len(d.done), strings.Join(d.setLog, " "))
}

// unsafePointer converts a pointer to a uapi struct for a direct Ioctl.
func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
