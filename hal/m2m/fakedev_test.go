package m2m

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/atriumroom/atrium/hal/internal/v4l2"
)

// fakeNode is a fake mem2mem device node: each open is a context of its
// own, as with a real mem2mem driver. It encodes into, and decodes from, a
// "coded" format that is an FWHT frame header (so isKeyframe can read it)
// followed by the picture as packed I420, so a test can check that the
// pixels made it through the device layouts unchanged.
type fakeNode struct {
	role          string // "encoder", "decoder", "converter", "camera", "stateless"
	mplane        bool
	driver, bus   string
	coded         uint32   // the coded format
	raw           []uint32 // raw formats offered
	align         int      // raw sizes are rounded up to this
	strideExtra   int      // bytes added to each line
	maxW, maxH    int
	flagFrames    bool // encoder: set KEYFRAME/PFRAME on coded buffers
	splitParams   bool // H.264 encoder: SPS and PPS in a buffer of their own before each IDR
	forceKeyCtrl  bool // has V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME
	bitrateCtrl   bool // has V4L2_CID_MPEG_VIDEO_BITRATE
	noSelection   bool
	continuous    bool // decoder: the coded format may span buffers
	codedBufSize  int  // decoder: size of coded buffers (0: a 720p frame)
	openErr       error
	reqbufsErr    error
	ioctlErr      map[uint32]error // fail these ioctls
	stall         bool             // never process anything
	errorFlag     bool             // coded/decoded buffers come back failed
	capRestarts   int              // CAPTURE STREAMONs seen (all contexts)
	mu            sync.Mutex
	trace         []string
	traceDisabled bool
}

func (n *fakeNode) open(string) (v4l2.FD, error) {
	if n.openErr != nil {
		return nil, n.openErr
	}
	c := &fakeCtx{n: n, changed: make(chan struct{}), fmts: map[uint32]*v4l2.Format{}, ctrls: map[uint32]int32{
		v4l2.CIDMPEGVideoGOPSize: 12,
	}}
	c.q[0] = &fakeQueue{}
	c.q[1] = &fakeQueue{}
	return c, nil
}

func (n *fakeNode) log(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.traceDisabled {
		n.trace = append(n.trace, fmt.Sprintf(format, args...))
	}
}

// Trace returns the ioctls the contexts issued, one per line, and forgets
// them.
func (n *fakeNode) Trace() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := strings.Join(n.trace, "\n")
	n.trace = nil
	return s
}

func (n *fakeNode) outType() uint32 {
	if n.mplane {
		return v4l2.BufTypeVideoOutputMPlane
	}
	return v4l2.BufTypeVideoOutput
}

func (n *fakeNode) capType() uint32 {
	if n.mplane {
		return v4l2.BufTypeVideoCaptureMPlane
	}
	return v4l2.BufTypeVideoCapture
}

// fakeQueue is one queue of a context. Indices 0 and 1 of fakeCtx.q are
// OUTPUT and CAPTURE.
type fakeQueue struct {
	bufs      []*fakeBuf
	incoming  []int // queued, not processed
	done      []int // processed, ready to dequeue
	streaming bool
	last      bool // the last buffer was dequeued: DQBUF says EPIPE
}

type fakeBuf struct {
	mem   [][]byte
	used  []uint32
	ts    v4l2.Timeval
	flags uint32
}

type fakeCtx struct {
	n       *fakeNode
	mu      sync.Mutex
	changed chan struct{}
	closed  bool

	fmts   map[uint32]*v4l2.Format
	q      [2]*fakeQueue
	ctrls  map[uint32]int32
	events []v4l2.Event
	crop   v4l2.Rect // encoder OUTPUT crop

	frames   int // encoded since CAPTURE streamon
	forceKey bool
	draining bool

	// decoder
	pending    []byte // coded bytes not yet decoded
	frameTS    v4l2.Timeval
	streamW    int // current stream size
	streamH    int
	waitResume bool // source change signalled; waiting for CAPTURE restart
}

func (c *fakeCtx) qi(t uint32) int {
	if t == c.n.outType() {
		return 0
	}
	return 1
}

func (c *fakeCtx) signal() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// fakeHeader is an FWHT header: magics, then big-endian version, width,
// height, flags (I frame bit), four colour fields, payload size.
func fakeHeader(w, h int, key bool, size int) []byte {
	b := make([]byte, fwhtHeaderSize)
	binary.NativeEndian.PutUint32(b[0:], fwhtMagic1)
	binary.NativeEndian.PutUint32(b[4:], fwhtMagic2)
	binary.BigEndian.PutUint32(b[8:], 3)
	binary.BigEndian.PutUint32(b[12:], uint32(w))
	binary.BigEndian.PutUint32(b[16:], uint32(h))
	if key {
		binary.BigEndian.PutUint32(b[20:], fwhtFlIFrame)
	}
	binary.BigEndian.PutUint32(b[40:], uint32(size))
	return b
}

func alignUp(v, a int) int {
	if a <= 1 {
		return v
	}
	return (v + a - 1) / a * a
}

// rawFormat fills a raw format for w×h in the node's layout rules.
func (c *fakeCtx) rawFormat(f *v4l2.Format, fourcc uint32, w, h int) {
	aw, ah := alignUp(w, c.n.align), alignUp(h, c.n.align)
	stride := aw + c.n.strideExtra
	switch fourcc {
	case v4l2.PixFmtYUV420M, v4l2.PixFmtNV12M:
		p := f.PixMP()
		*p = v4l2.PixFormatMPlane{PixelFormat: fourcc, Width: uint32(aw), Height: uint32(ah), Field: v4l2.FieldNone}
		p.PlaneFmt[0] = v4l2.PlanePixFormat{BytesPerLine: uint32(stride), SizeImage: uint32(stride * ah)}
		if fourcc == v4l2.PixFmtNV12M {
			p.NumPlanes = 2
			p.PlaneFmt[1] = v4l2.PlanePixFormat{BytesPerLine: uint32(stride), SizeImage: uint32(stride * ah / 2)}
		} else {
			p.NumPlanes = 3
			p.PlaneFmt[1] = v4l2.PlanePixFormat{BytesPerLine: uint32(stride / 2), SizeImage: uint32(stride / 2 * ah / 2)}
			p.PlaneFmt[2] = p.PlaneFmt[1]
		}
	default:
		size := stride*ah + stride*ah/2
		if c.n.mplane {
			p := f.PixMP()
			*p = v4l2.PixFormatMPlane{PixelFormat: fourcc, Width: uint32(aw), Height: uint32(ah), Field: v4l2.FieldNone, NumPlanes: 1}
			p.PlaneFmt[0] = v4l2.PlanePixFormat{BytesPerLine: uint32(stride), SizeImage: uint32(size)}
		} else {
			*f.Pix() = v4l2.PixFormat{PixelFormat: fourcc, Width: uint32(aw), Height: uint32(ah), Field: v4l2.FieldNone, BytesPerLine: uint32(stride), SizeImage: uint32(size)}
		}
	}
}

func (c *fakeCtx) codedFormat(f *v4l2.Format, w, h int) {
	size := fwhtHeaderSize + w*h*3/2 + 64 // room for H.264 NAL headers
	if c.n.role == "decoder" && c.n.codedBufSize > 0 {
		size = c.n.codedBufSize
	}
	if c.n.mplane {
		p := f.PixMP()
		*p = v4l2.PixFormatMPlane{PixelFormat: c.n.coded, Width: uint32(w), Height: uint32(h), NumPlanes: 1}
		p.PlaneFmt[0].SizeImage = uint32(size)
	} else {
		*f.Pix() = v4l2.PixFormat{PixelFormat: c.n.coded, Width: uint32(w), Height: uint32(h), SizeImage: uint32(size)}
	}
}

func fmtFourCC(f *v4l2.Format) (uint32, int, int) {
	if v4l2.IsMPlane(f.Type) {
		p := f.PixMP()
		return p.PixelFormat, int(p.Width), int(p.Height)
	}
	p := f.Pix()
	return p.PixelFormat, int(p.Width), int(p.Height)
}

func fmtPlaneSizes(f *v4l2.Format) []int {
	if v4l2.IsMPlane(f.Type) {
		p := f.PixMP()
		var out []int
		for i := range int(p.NumPlanes) {
			out = append(out, int(p.PlaneFmt[i].SizeImage))
		}
		return out
	}
	return []int{int(f.Pix().SizeImage)}
}

// readRaw reads the w×h picture at the top left of a raw buffer as packed
// I420; it is the fake's own reading of the layouts, written apart from
// the package's.
func readRaw(f *v4l2.Format, mem [][]byte, w, h int) []byte {
	fourcc, _, ah := fmtFourCC(f)
	var stride []int
	if v4l2.IsMPlane(f.Type) {
		p := f.PixMP()
		for i := range int(p.NumPlanes) {
			stride = append(stride, int(p.PlaneFmt[i].BytesPerLine))
		}
	} else {
		stride = []int{int(f.Pix().BytesPerLine)}
	}
	out := make([]byte, 0, w*h*3/2)
	for r := range h {
		out = append(out, mem[0][r*stride[0]:r*stride[0]+w]...)
	}
	chroma := func(plane []byte, st, comp, step int) {
		for r := range h / 2 {
			for x := range w / 2 {
				out = append(out, plane[r*st+x*step+comp])
			}
		}
	}
	switch fourcc {
	case v4l2.PixFmtYUV420:
		s := stride[0]
		u := mem[0][s*ah:]
		chroma(u, s/2, 0, 1)
		chroma(u[s/2*ah/2:], s/2, 0, 1)
	case v4l2.PixFmtNV12:
		uv := mem[0][stride[0]*ah:]
		chroma(uv, stride[0], 0, 2)
		chroma(uv, stride[0], 1, 2)
	case v4l2.PixFmtYUV420M:
		chroma(mem[1], stride[1], 0, 1)
		chroma(mem[2], stride[2], 0, 1)
	case v4l2.PixFmtNV12M:
		chroma(mem[1], stride[1], 0, 2)
		chroma(mem[1], stride[1], 1, 2)
	}
	return out
}

// writeRaw is readRaw's inverse.
func writeRaw(f *v4l2.Format, mem [][]byte, src []byte, w, h int) {
	fourcc, _, ah := fmtFourCC(f)
	var stride []int
	if v4l2.IsMPlane(f.Type) {
		p := f.PixMP()
		for i := range int(p.NumPlanes) {
			stride = append(stride, int(p.PlaneFmt[i].BytesPerLine))
		}
	} else {
		stride = []int{int(f.Pix().BytesPerLine)}
	}
	for r := range h {
		copy(mem[0][r*stride[0]:], src[r*w:(r+1)*w])
	}
	u, v := src[w*h:w*h+w*h/4], src[w*h+w*h/4:]
	put := func(plane []byte, st, comp, step int, from []byte) {
		for r := range h / 2 {
			for x := range w / 2 {
				plane[r*st+x*step+comp] = from[r*w/2+x]
			}
		}
	}
	switch fourcc {
	case v4l2.PixFmtYUV420:
		s := stride[0]
		put(mem[0][s*ah:], s/2, 0, 1, u)
		put(mem[0][s*ah+s/2*ah/2:], s/2, 0, 1, v)
	case v4l2.PixFmtNV12:
		put(mem[0][stride[0]*ah:], stride[0], 0, 2, u)
		put(mem[0][stride[0]*ah:], stride[0], 1, 2, v)
	case v4l2.PixFmtYUV420M:
		put(mem[1], stride[1], 0, 1, u)
		put(mem[2], stride[2], 0, 1, v)
	case v4l2.PixFmtNV12M:
		put(mem[1], stride[1], 0, 2, u)
		put(mem[1], stride[1], 1, 2, v)
	}
}

// process runs what the queued buffers allow; the caller holds c.mu.
func (c *fakeCtx) process() {
	if c.n.stall {
		return
	}
	out, capq := c.q[0], c.q[1]
	switch c.n.role {
	case "encoder":
		for out.streaming && capq.streaming && len(out.incoming) > 0 && len(capq.incoming) > 1 {
			ob := out.bufs[out.incoming[0]]
			of := c.fmts[c.n.outType()]
			w, h := int(c.crop.Width), int(c.crop.Height)
			pic := readRaw(of, ob.mem, w, h)
			key := c.frames%int(c.ctrls[v4l2.CIDMPEGVideoGOPSize]) == 0 || c.forceKey
			c.forceKey = false
			c.frames++
			coded := append(fakeHeader(w, h, key, len(pic)), pic...)
			var parts [][]byte
			if c.n.coded == v4l2.PixFmtH264 {
				// A slice NAL unit header in front, so the stream reads as
				// H.264 to the package.
				slice := []byte{0, 0, 0, 1, 0x41}
				if key {
					slice[4] = 0x65
				}
				coded = append(slice, coded...)
				if key && c.n.splitParams {
					parts = append(parts, []byte{0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80})
				}
			}
			parts = append(parts, coded)
			for _, part := range parts {
				cb := capq.bufs[capq.incoming[0]]
				n := copy(cb.mem[0], part)
				cb.used = []uint32{uint32(n)}
				cb.ts, cb.flags = ob.ts, 0
				if c.n.flagFrames {
					cb.flags = v4l2.BufFlagPFrame
					if key {
						cb.flags = v4l2.BufFlagKeyframe
					}
				}
				if c.n.errorFlag {
					cb.flags |= v4l2.BufFlagError
				}
				capq.done = append(capq.done, capq.incoming[0])
				capq.incoming = capq.incoming[1:]
			}
			out.done = append(out.done, out.incoming[0])
			out.incoming = out.incoming[1:]
		}
		if c.draining && len(out.incoming) == 0 && len(capq.incoming) > 0 {
			cb := capq.bufs[capq.incoming[0]]
			cb.used, cb.flags = []uint32{0}, v4l2.BufFlagLast
			capq.done = append(capq.done, capq.incoming[0])
			capq.incoming = capq.incoming[1:]
			c.draining = false
		}
	case "decoder":
		for out.streaming && !c.waitResume {
			// Take coded bytes until a whole frame is in.
			if len(out.incoming) > 0 && !c.wholeFrame() {
				ob := out.bufs[out.incoming[0]]
				c.pending = append(c.pending, ob.mem[0][:ob.used[0]]...)
				c.pendingTS(ob.ts)
				out.done = append(out.done, out.incoming[0])
				out.incoming = out.incoming[1:]
				continue
			}
			if !c.wholeFrame() {
				if len(c.pending) >= 4 && binary.NativeEndian.Uint32(c.pending) != fwhtMagic1 {
					c.pending = nil // not a stream: drop, as a decoder skips junk
				}
				return
			}
			w := int(binary.BigEndian.Uint32(c.pending[12:]))
			h := int(binary.BigEndian.Uint32(c.pending[16:]))
			if w != c.streamW || h != c.streamH {
				c.streamW, c.streamH = w, h
				cf := &v4l2.Format{Type: c.n.capType()}
				c.rawFormat(cf, c.n.raw[0], w, h)
				c.fmts[cf.Type] = cf
				ev := v4l2.Event{Type: v4l2.EventTypeSourceChange}
				binary.NativeEndian.PutUint32(ev.U[:], v4l2.EventSrcChResolution)
				c.events = append(c.events, ev)
				if capq.streaming {
					// The dynamic resolution change: an empty last buffer.
					if len(capq.incoming) > 0 {
						cb := capq.bufs[capq.incoming[0]]
						cb.used, cb.flags = make([]uint32, len(cb.mem)), v4l2.BufFlagLast
						capq.done = append(capq.done, capq.incoming[0])
						capq.incoming = capq.incoming[1:]
					}
				}
				c.waitResume = true
				return
			}
			if !capq.streaming || len(capq.incoming) == 0 {
				return
			}
			size := int(binary.BigEndian.Uint32(c.pending[40:]))
			pic := c.pending[fwhtHeaderSize : fwhtHeaderSize+size]
			cb := capq.bufs[capq.incoming[0]]
			cf := c.fmts[c.n.capType()]
			writeRaw(cf, cb.mem, pic, w, h)
			cb.used = nil
			for _, s := range fmtPlaneSizes(cf) {
				cb.used = append(cb.used, uint32(s))
			}
			cb.ts, cb.flags = c.frameTS, 0
			if c.n.errorFlag {
				cb.flags = v4l2.BufFlagError
			}
			c.pending = c.pending[fwhtHeaderSize+size:]
			capq.done = append(capq.done, capq.incoming[0])
			capq.incoming = capq.incoming[1:]
		}
	}
}

func (c *fakeCtx) wholeFrame() bool {
	if len(c.pending) < fwhtHeaderSize || binary.NativeEndian.Uint32(c.pending) != fwhtMagic1 {
		return false
	}
	return len(c.pending) >= fwhtHeaderSize+int(binary.BigEndian.Uint32(c.pending[40:]))
}

// frameTS is the timestamp of the buffer that completed the pending frame.
func (c *fakeCtx) pendingTS(ts v4l2.Timeval) { c.frameTS = ts }

func (c *fakeCtx) Ioctl(req uint32, arg unsafe.Pointer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return v4l2.ErrClosed
	}
	if err := c.n.ioctlErr[req]; err != nil {
		c.n.log("%s -> %v", v4l2.IoctlName(req), err)
		return err
	}
	err := c.ioctl(req, arg)
	c.process()
	c.signal()
	return err
}

func (c *fakeCtx) ioctl(req uint32, arg unsafe.Pointer) error {
	n := c.n
	switch req {
	case v4l2.IoctlQueryCap:
		cp := (*v4l2.Capability)(arg)
		*cp = v4l2.Capability{Capabilities: v4l2.CapDeviceCaps}
		copy(cp.Driver[:], n.driver)
		copy(cp.Card[:], n.driver)
		copy(cp.BusInfo[:], n.bus)
		switch {
		case n.role == "camera":
			cp.DeviceCaps = v4l2.CapVideoCapture | v4l2.CapStreaming
		case n.mplane:
			cp.DeviceCaps = v4l2.CapVideoM2MMPlane | v4l2.CapStreaming
		default:
			cp.DeviceCaps = v4l2.CapVideoM2M | v4l2.CapStreaming
		}
		return nil
	case v4l2.IoctlEnumFmt:
		f := (*v4l2.FmtDesc)(arg)
		var list []v4l2.FmtDesc
		coded := v4l2.FmtDesc{PixelFormat: n.coded, Flags: v4l2.FmtFlagCompressed}
		if n.continuous {
			coded.Flags |= v4l2.FmtFlagContinuousBytestream
		}
		var raws []v4l2.FmtDesc
		for _, r := range n.raw {
			raws = append(raws, v4l2.FmtDesc{PixelFormat: r})
		}
		isOut := f.Type == n.outType()
		if f.Type != n.outType() && f.Type != n.capType() {
			return unix.EINVAL
		}
		switch n.role {
		case "encoder":
			list = raws
			if !isOut {
				list = []v4l2.FmtDesc{coded}
			}
		case "decoder", "stateless":
			list = []v4l2.FmtDesc{coded}
			if !isOut {
				list = raws
			}
		default:
			list = raws
		}
		if int(f.Index) >= len(list) {
			return unix.EINVAL
		}
		d := list[f.Index]
		f.PixelFormat, f.Flags = d.PixelFormat, d.Flags
		return nil
	case v4l2.IoctlEnumFrameSizes:
		f := (*v4l2.FrmSizeEnum)(arg)
		if f.Index > 0 || f.PixelFormat != n.coded || n.maxW == 0 {
			return unix.EINVAL
		}
		f.Type = v4l2.FrmSizeTypeStepwise
		f.Stepwise = v4l2.FrmSizeStepwise{MinWidth: 64, MaxWidth: uint32(n.maxW), StepWidth: 2, MinHeight: 64, MaxHeight: uint32(n.maxH), StepHeight: 2}
		return nil
	case v4l2.IoctlSFmt, v4l2.IoctlGFmt:
		f := (*v4l2.Format)(arg)
		if f.Type != n.outType() && f.Type != n.capType() {
			return unix.EINVAL
		}
		if req == v4l2.IoctlGFmt {
			cur, ok := c.fmts[f.Type]
			if !ok {
				return unix.EINVAL
			}
			*f = *cur
			n.log("G_FMT %s", qname(f.Type))
			return nil
		}
		if len(c.q[c.qi(f.Type)].bufs) > 0 {
			return unix.EBUSY
		}
		fourcc, w, h := fmtFourCC(f)
		isCoded := (n.role == "encoder") != (f.Type == n.outType())
		if isCoded {
			c.codedFormat(f, w, h)
		} else {
			ok := false
			for _, r := range n.raw {
				ok = ok || r == fourcc
			}
			if !ok {
				fourcc = n.raw[0]
			}
			c.rawFormat(f, fourcc, w, h)
			if n.role == "encoder" {
				c.crop = v4l2.Rect{Width: uint32(w), Height: uint32(h)}
			}
		}
		cp := *f
		c.fmts[f.Type] = &cp
		got, gw, gh := fmtFourCC(f)
		n.log("S_FMT %s %s %dx%d", qname(f.Type), v4l2.FourCCString(got), gw, gh)
		return nil
	case v4l2.IoctlSParm:
		p := (*v4l2.StreamParm)(arg)
		n.log("S_PARM %s %d/%d", qname(p.Type), p.Parm.TimePerFrame.Numerator, p.Parm.TimePerFrame.Denominator)
		return nil
	case v4l2.IoctlGSelection, v4l2.IoctlSSelection:
		if n.noSelection {
			return unix.ENOTTY
		}
		s := (*v4l2.Selection)(arg)
		if req == v4l2.IoctlSSelection {
			c.crop = s.R
			n.log("S_SELECTION %d %d %dx%d", s.Type, s.Target, s.R.Width, s.R.Height)
			return nil
		}
		if s.Target == v4l2.SelTgtCompose && s.Type == v4l2.BufTypeVideoCapture && n.role == "decoder" {
			s.R = v4l2.Rect{Width: uint32(c.streamW), Height: uint32(c.streamH)}
			return nil
		}
		return unix.EINVAL
	case v4l2.IoctlQueryExtCtrl:
		q := (*v4l2.QueryExtCtrl)(arg)
		id := q.ID &^ (v4l2.CtrlFlagNextCtrl | v4l2.CtrlFlagNextCompound)
		for _, ctl := range n.controls() {
			if ctl.ID > id {
				*q = ctl
				return nil
			}
		}
		return unix.EINVAL
	case v4l2.IoctlGCtrl:
		ctl := (*v4l2.Control)(arg)
		if ctl.ID == v4l2.CIDMinBuffersForCapture && n.role == "decoder" {
			ctl.Value = 3
			return nil
		}
		return unix.EINVAL
	case v4l2.IoctlSCtrl:
		ctl := (*v4l2.Control)(arg)
		found := false
		for _, q := range n.controls() {
			if q.ID == ctl.ID {
				found = true
				ctl.Value = int32(min(max(int64(ctl.Value), q.Minimum), q.Maximum))
			}
		}
		if !found {
			return unix.EINVAL
		}
		n.log("S_CTRL %s %d", ctrlName(ctl.ID), ctl.Value)
		c.ctrls[ctl.ID] = ctl.Value
		if ctl.ID == v4l2.CIDMPEGVideoForceKeyFrame {
			c.forceKey = true
		}
		return nil
	case v4l2.IoctlReqBufs:
		r := (*v4l2.RequestBuffers)(arg)
		q := c.q[c.qi(r.Type)]
		n.log("REQBUFS %s %d", qname(r.Type), r.Count)
		if r.Count > 0 && n.reqbufsErr != nil {
			return n.reqbufsErr
		}
		if q.streaming {
			return unix.EBUSY
		}
		q.bufs, q.incoming, q.done, q.last = nil, nil, nil, false
		f := c.fmts[r.Type]
		if r.Count > 0 && f == nil {
			return unix.EINVAL
		}
		for range r.Count {
			b := &fakeBuf{}
			for _, s := range fmtPlaneSizes(f) {
				b.mem = append(b.mem, make([]byte, s))
			}
			q.bufs = append(q.bufs, b)
		}
		return nil
	case v4l2.IoctlQueryBuf, v4l2.IoctlQBuf, v4l2.IoctlDQBuf:
		return c.bufIoctl(req, arg)
	case v4l2.IoctlStreamOn, v4l2.IoctlStreamOff:
		t := *(*uint32)(arg)
		q := c.q[c.qi(t)]
		if req == v4l2.IoctlStreamOn {
			n.log("STREAMON %s", qname(t))
			q.streaming = true
			if c.qi(t) == 1 {
				c.frames = 0 // an encoder restarts its GOP
				c.waitResume = false
				n.mu.Lock()
				n.capRestarts++
				n.mu.Unlock()
			}
			return nil
		}
		n.log("STREAMOFF %s", qname(t))
		q.streaming, q.incoming, q.done, q.last = false, nil, nil, false
		return nil
	case v4l2.IoctlSubscribeEvent:
		s := (*v4l2.EventSubscription)(arg)
		n.log("SUBSCRIBE_EVENT %d", s.Type)
		return nil
	case v4l2.IoctlDQEvent:
		if len(c.events) == 0 {
			return unix.ENOENT
		}
		*(*v4l2.Event)(arg) = c.events[0]
		c.events = c.events[1:]
		n.log("DQEVENT")
		return nil
	case v4l2.IoctlEncoderCmd:
		e := (*v4l2.EncoderCmd)(arg)
		n.log("ENCODER_CMD %d", e.Cmd)
		if e.Cmd == v4l2.EncCmdStop {
			c.draining = true
		}
		return nil
	}
	return unix.ENOTTY
}

func (c *fakeCtx) bufIoctl(req uint32, arg unsafe.Pointer) error {
	// Single- and multi-planar buffers share the header; the planes
	// pointer is where a single-planar buffer has m.
	b := (*v4l2.Buffer)(arg)
	pb := (*v4l2.PlaneBuffer)(arg)
	if v4l2.IsMPlane(b.Type) != c.n.mplane || (b.Type != c.n.outType() && b.Type != c.n.capType()) {
		return unix.EINVAL
	}
	q := c.q[c.qi(b.Type)]
	var planes []v4l2.Plane
	if c.n.mplane {
		planes = unsafe.Slice(pb.Planes, pb.Length)
	}
	switch req {
	case v4l2.IoctlQueryBuf:
		if int(b.Index) >= len(q.bufs) {
			return unix.EINVAL
		}
		fb := q.bufs[b.Index]
		if c.n.mplane {
			if int(pb.Length) < len(fb.mem) {
				return unix.EINVAL
			}
			pb.Length = uint32(len(fb.mem))
			for p, m := range fb.mem {
				planes[p] = v4l2.Plane{Length: uint32(len(m)), M: uint64(offsetOf(c.qi(b.Type), int(b.Index), p))}
			}
			return nil
		}
		b.Length, b.M = uint32(len(fb.mem[0])), uint64(offsetOf(c.qi(b.Type), int(b.Index), 0))
		return nil
	case v4l2.IoctlQBuf:
		if int(b.Index) >= len(q.bufs) {
			return unix.EINVAL
		}
		fb := q.bufs[b.Index]
		fb.ts = b.Timestamp
		if c.n.mplane {
			fb.used = nil
			for _, p := range planes {
				fb.used = append(fb.used, p.BytesUsed)
			}
		} else {
			fb.used = []uint32{b.BytesUsed}
		}
		q.incoming = append(q.incoming, int(b.Index))
		return nil
	default: // DQBUF
		if q.last {
			return unix.EPIPE
		}
		if len(q.done) == 0 {
			return unix.EAGAIN
		}
		i := q.done[0]
		q.done = q.done[1:]
		fb := q.bufs[i]
		b.Index, b.Flags, b.Timestamp = uint32(i), fb.flags, fb.ts
		if fb.flags&v4l2.BufFlagLast != 0 {
			q.last = true
		}
		if c.n.mplane {
			pb.Length = uint32(len(fb.mem))
			for p := range fb.mem {
				planes[p] = v4l2.Plane{BytesUsed: fb.used[p], Length: uint32(len(fb.mem[p]))}
			}
		} else {
			b.BytesUsed = fb.used[0]
		}
		return nil
	}
}

// offsetOf makes a distinct mmap offset per queue, buffer and plane.
func offsetOf(q, i, p int) int { return q<<20 | i<<8 | p }

func (c *fakeCtx) Mmap(offset int64, length int) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q, i, p := int(offset>>20), int(offset>>8&0xfff), int(offset&0xff)
	if q > 1 || i >= len(c.q[q].bufs) || p >= len(c.q[q].bufs[i].mem) || length != len(c.q[q].bufs[i].mem[p]) {
		return nil, unix.EINVAL
	}
	return c.q[q].bufs[i].mem[p], nil
}

func (c *fakeCtx) Munmap([]byte) error { return nil }

func (c *fakeCtx) Poll(ctx context.Context, events int16, timeout time.Duration) (int16, error) {
	var timer <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, v4l2.ErrClosed
		}
		var rev int16
		if len(c.q[1].done) > 0 || c.q[1].last {
			rev |= unix.POLLIN
		}
		if len(c.q[0].done) > 0 {
			rev |= unix.POLLOUT
		}
		if len(c.events) > 0 {
			rev |= unix.POLLPRI
		}
		ch := c.changed
		c.mu.Unlock()
		if rev&events != 0 {
			return rev & events, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-timer:
			return 0, nil
		}
	}
}

func (c *fakeCtx) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return v4l2.ErrClosed
	}
	c.closed = true
	c.signal()
	c.n.log("close")
	return nil
}

func (n *fakeNode) controls() []v4l2.QueryExtCtrl {
	var list []v4l2.QueryExtCtrl
	if n.role != "encoder" {
		return nil
	}
	list = append(list, v4l2.QueryExtCtrl{ID: v4l2.CIDMPEGVideoGOPSize, Type: v4l2.CtrlTypeInteger, Minimum: 1, Maximum: 60, Step: 1})
	if n.bitrateCtrl {
		list = append(list,
			v4l2.QueryExtCtrl{ID: v4l2.CIDMPEGVideoBitrateMode, Type: v4l2.CtrlTypeMenu, Minimum: 0, Maximum: 1, Step: 1},
			v4l2.QueryExtCtrl{ID: v4l2.CIDMPEGVideoBitrate, Type: v4l2.CtrlTypeInteger, Minimum: 100_000, Maximum: 8_000_000, Step: 1})
	}
	if n.forceKeyCtrl {
		list = append(list, v4l2.QueryExtCtrl{ID: v4l2.CIDMPEGVideoForceKeyFrame, Type: v4l2.CtrlTypeButton, Minimum: 0, Maximum: 1, Step: 1})
	}
	// Sorted by ID, as the kernel enumerates.
	for i := range list {
		for j := i + 1; j < len(list); j++ {
			if list[j].ID < list[i].ID {
				list[i], list[j] = list[j], list[i]
			}
		}
	}
	return list
}

func qname(t uint32) string {
	switch t {
	case v4l2.BufTypeVideoOutput, v4l2.BufTypeVideoOutputMPlane:
		return "OUTPUT"
	}
	return "CAPTURE"
}

func ctrlName(id uint32) string {
	switch id {
	case v4l2.CIDMPEGVideoGOPSize:
		return "GOP_SIZE"
	case v4l2.CIDMPEGVideoBitrateMode:
		return "BITRATE_MODE"
	case v4l2.CIDMPEGVideoBitrate:
		return "BITRATE"
	case v4l2.CIDMPEGVideoForceKeyFrame:
		return "FORCE_KEY_FRAME"
	}
	return fmt.Sprintf("%#x", id)
}
