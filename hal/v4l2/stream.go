package v4l2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atriumroom/atrium/hal"
	uapi "github.com/atriumroom/atrium/hal/internal/v4l2"
	"golang.org/x/sys/unix"
)

// NumBuffers is how many kernel buffers a stream asks for: one being
// filled, one waiting, one being copied out, and one spare for jitter.
const NumBuffers = 4

// MaxTimestampAge bounds how old a buffer's timestamp may be and still be
// trusted for CapturedAt (see the package doc).
const MaxTimestampAge = 2 * time.Second

// healthInterval is how long ReadFrame waits for a frame before it checks
// that the device still exists, for drivers that do not wake pollers when
// they go away.
const healthInterval = time.Second

// stream is an open capture stream (hal.VideoStream).
type stream struct {
	cam     *Camera
	dev     *uapi.Device
	log     *slog.Logger
	clock   Clock
	mode    hal.VideoMode
	fourcc  uint32
	bufType uint32
	width   int
	height  int
	planes  []planeLayout // one per memory plane (one for single-planar)
	bufs    [][][]byte    // mappings: [buffer][plane]
	wait    time.Duration // poll timeout between health checks

	closed    atomic.Bool
	closeCtx  context.Context
	closeFn   context.CancelFunc
	closeOnce sync.Once

	// readMu is held by ReadFrame and by Close's teardown, so the mappings
	// are never unmapped under a copy.
	readMu    sync.Mutex
	unplugged error // set once the device is found gone
	seq       uint64
	lastRaw   uint32
	haveSeq   bool
}

// planeLayout is one memory plane of the negotiated format.
type planeLayout struct {
	bytesPerLine int
	sizeImage    int
}

var _ hal.VideoStream = (*stream)(nil)

// openStream negotiates mi on the node and starts streaming. On failure it
// releases everything it took.
func openStream(ctx context.Context, cam *Camera, n *node, mi modeInfo) (_ *stream, err error) {
	dev, err := uapi.OpenWith(cam.drv.open, n.path)
	if err != nil {
		return nil, classify(err)
	}
	s := &stream{
		cam: cam, dev: dev, clock: cam.drv.clock, mode: mi.mode, fourcc: mi.fourcc, bufType: n.bufType,
		log: cam.drv.log.With("id", cam.id, "node", n.path),
	}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	if err := s.setFormat(mi); err != nil {
		return nil, err
	}
	if mi.interval.Numerator != 0 {
		s.setInterval(mi.interval)
	}
	s.wait = max(healthInterval, 3*time.Second/time.Duration(max(mi.mode.FPS, 1)))
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.mapBuffers(); err != nil {
		return nil, err
	}
	if err := dev.StreamOn(s.bufType); err != nil {
		return nil, classify(err)
	}
	s.closeCtx, s.closeFn = context.WithCancel(context.Background())
	s.log.Debug("streaming", "mode", mi.String(), "planes", s.planes)
	return s, nil
}

// setFormat asks for the mode's format and size and records the layout the
// driver chose; a driver that adjusts the request does not offer the mode.
func (s *stream) setFormat(mi modeInfo) error {
	f := uapi.Format{Type: s.bufType}
	w, h := uint32(mi.mode.Width), uint32(mi.mode.Height)
	if uapi.IsMPlane(s.bufType) {
		p := f.PixMP()
		p.Width, p.Height, p.PixelFormat, p.Field = w, h, mi.fourcc, uapi.FieldNone
	} else {
		p := f.Pix()
		p.Width, p.Height, p.PixelFormat, p.Field = w, h, mi.fourcc, uapi.FieldNone
	}
	if err := s.dev.SetFormat(&f); err != nil {
		return classify(err)
	}
	var gotW, gotH, gotFmt uint32
	if uapi.IsMPlane(s.bufType) {
		p := f.PixMP()
		gotW, gotH, gotFmt = p.Width, p.Height, p.PixelFormat
		if p.NumPlanes == 0 || p.NumPlanes > uapi.VideoMaxPlanes {
			return fmt.Errorf("driver reports %d planes", p.NumPlanes)
		}
		for i := range int(p.NumPlanes) {
			s.planes = append(s.planes, planeLayout{int(p.PlaneFmt[i].BytesPerLine), int(p.PlaneFmt[i].SizeImage)})
		}
	} else {
		p := f.Pix()
		gotW, gotH, gotFmt = p.Width, p.Height, p.PixelFormat
		s.planes = []planeLayout{{int(p.BytesPerLine), int(p.SizeImage)}}
	}
	if gotW != w || gotH != h || gotFmt != mi.fourcc {
		return fmt.Errorf("driver chose %dx%d %s instead: %w", gotW, gotH, uapi.FourCCString(gotFmt), hal.ErrUnsupportedMode)
	}
	s.width, s.height = int(w), int(h)
	if err := checkLayout(s.mode.Format, s.fourcc, s.width, s.height, s.planes); err != nil {
		return err
	}
	return nil
}

// setInterval asks for the frame interval. Drivers round it to one they
// support; a driver without VIDIOC_S_PARM keeps its own rate. Neither stops
// the stream, so both are only logged.
func (s *stream) setInterval(iv uapi.Fract) {
	p, err := s.dev.GetParm(s.bufType)
	if err != nil || p.Parm.Capability&uapi.CapTimePerFrame == 0 {
		s.log.Debug("frame interval cannot be set", "err", err)
		return
	}
	got, err := s.dev.SetFrameInterval(s.bufType, iv)
	if err != nil {
		s.log.Warn("cannot set the frame interval", "want", fmt.Sprintf("%d/%d", iv.Numerator, iv.Denominator), "err", err)
		return
	}
	if got != iv {
		s.log.Info("driver chose another frame interval", "want", fmt.Sprintf("%d/%d", iv.Numerator, iv.Denominator),
			"got", fmt.Sprintf("%d/%d", got.Numerator, got.Denominator))
	}
}

// mapBuffers requests, maps and queues the buffers.
func (s *stream) mapBuffers() error {
	rb, err := s.dev.RequestBuffers(s.bufType, uapi.MemoryMMAP, NumBuffers)
	if err != nil {
		return classify(err)
	}
	if rb.Count < 2 {
		return fmt.Errorf("driver granted %d buffers", rb.Count)
	}
	for i := range rb.Count {
		maps, err := s.queryAndMap(i)
		s.bufs = append(s.bufs, maps) // even partial, so release unmaps them
		if err != nil {
			return err
		}
		if err := s.queue(i); err != nil {
			return err
		}
	}
	return nil
}

func (s *stream) queryAndMap(i uint32) ([][]byte, error) {
	var maps [][]byte
	if !uapi.IsMPlane(s.bufType) {
		b := uapi.Buffer{Index: i, Type: s.bufType, Memory: uapi.MemoryMMAP}
		if err := s.dev.QueryBuffer(&b); err != nil {
			return nil, classify(err)
		}
		m, err := s.dev.Mmap(b.Offset(), b.Length)
		if err != nil {
			return nil, err
		}
		return append(maps, m), nil
	}
	planes := make([]uapi.Plane, len(s.planes))
	b := uapi.PlaneBuffer{Index: i, Type: s.bufType, Memory: uapi.MemoryMMAP, Planes: &planes[0], Length: uint32(len(planes))}
	if err := s.dev.QueryPlaneBuffer(&b); err != nil {
		return nil, classify(err)
	}
	for _, p := range planes[:b.Length] {
		m, err := s.dev.Mmap(p.Offset(), p.Length)
		if err != nil {
			return maps, err
		}
		maps = append(maps, m)
	}
	return maps, nil
}

func (s *stream) queue(i uint32) error {
	if !uapi.IsMPlane(s.bufType) {
		b := uapi.Buffer{Index: i, Type: s.bufType, Memory: uapi.MemoryMMAP}
		return classify(s.dev.QueueBuffer(&b))
	}
	planes := make([]uapi.Plane, len(s.planes))
	b := uapi.PlaneBuffer{Index: i, Type: s.bufType, Memory: uapi.MemoryMMAP, Planes: &planes[0], Length: uint32(len(planes))}
	return classify(s.dev.QueuePlaneBuffer(&b))
}

// dequeued is a buffer the driver filled.
type dequeued struct {
	index    uint32
	flags    uint32
	sequence uint32
	ts       uapi.Timeval
	// used holds each plane's payload within its mapping.
	used [][]byte
}

// dequeue takes a filled buffer; ok is false when none is ready (EAGAIN).
func (s *stream) dequeue() (d dequeued, ok bool, err error) {
	if !uapi.IsMPlane(s.bufType) {
		b := uapi.Buffer{Type: s.bufType, Memory: uapi.MemoryMMAP}
		if err := s.dev.DequeueBuffer(&b); err != nil {
			if errors.Is(err, unix.EAGAIN) {
				return d, false, nil
			}
			return d, false, err
		}
		if int(b.Index) >= len(s.bufs) {
			return d, false, fmt.Errorf("driver dequeued buffer %d of %d", b.Index, len(s.bufs))
		}
		m := s.bufs[b.Index][0]
		used := int(b.BytesUsed)
		if used == 0 || used > len(m) {
			used = min(len(m), s.planes[0].sizeImage)
		}
		return dequeued{index: b.Index, flags: b.Flags, sequence: b.Sequence, ts: b.Timestamp, used: [][]byte{m[:used]}}, true, nil
	}
	planes := make([]uapi.Plane, len(s.planes))
	b := uapi.PlaneBuffer{Type: s.bufType, Memory: uapi.MemoryMMAP, Planes: &planes[0], Length: uint32(len(planes))}
	if err := s.dev.DequeuePlaneBuffer(&b); err != nil {
		if errors.Is(err, unix.EAGAIN) {
			return d, false, nil
		}
		return d, false, err
	}
	if int(b.Index) >= len(s.bufs) || len(s.bufs[b.Index]) < len(planes) {
		return d, false, fmt.Errorf("driver dequeued buffer %d of %d", b.Index, len(s.bufs))
	}
	d = dequeued{index: b.Index, flags: b.Flags, sequence: b.Sequence, ts: b.Timestamp}
	for i, p := range planes {
		m := s.bufs[b.Index][i]
		end := int(p.BytesUsed)
		if end == 0 || end > len(m) {
			end = min(len(m), s.planes[i].sizeImage)
		}
		off := min(int(p.DataOffset), end)
		d.used = append(d.used, m[off:end])
	}
	return d, true, nil
}

// Mode returns the stream's mode (hal.VideoStream).
func (s *stream) Mode() hal.VideoMode { return s.mode }

// A POLLERR that DQBUF cannot explain is waited out this many times, this
// long apart, before ReadFrame gives up on the stream.
const (
	maxSpuriousPollErr  = 20
	spuriousPollBackoff = 10 * time.Millisecond
)

// ReadFrame returns the next frame (hal.VideoStream). Concurrent calls are
// served one at a time.
func (s *stream) ReadFrame(ctx context.Context) (hal.VideoFrame, error) {
	if s.closed.Load() {
		return hal.VideoFrame{}, hal.ErrClosed
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if s.closed.Load() {
		return hal.VideoFrame{}, hal.ErrClosed
	}
	if s.unplugged != nil {
		return hal.VideoFrame{}, s.unplugged
	}
	// Poll wakes for ctx or for Close, whichever comes first.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.closeCtx, cancel)
	defer stop()

	spurious := 0
	for {
		d, ok, err := s.dequeue()
		if err != nil {
			return hal.VideoFrame{}, s.fail("VIDIOC_DQBUF", err)
		}
		if ok {
			frame, keep, err := s.copyOut(d)
			if qerr := s.queue(d.index); qerr != nil {
				return hal.VideoFrame{}, s.fail("VIDIOC_QBUF", qerr)
			}
			if err != nil {
				s.log.Warn("frame dropped", "seq", d.sequence, "err", err)
				continue
			}
			if keep {
				return frame, nil
			}
			continue
		}
		rev, err := s.dev.Poll(pctx, unix.POLLIN, s.wait)
		if err != nil {
			if s.closed.Load() {
				return hal.VideoFrame{}, hal.ErrClosed
			}
			if ctx.Err() != nil {
				return hal.VideoFrame{}, ctx.Err()
			}
			return hal.VideoFrame{}, s.fail("poll", err)
		}
		if rev == 0 || rev&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			// No frame for a while, or an error: is the device still there?
			if _, err := s.dev.QueryCap(); err != nil {
				return hal.VideoFrame{}, s.fail("VIDIOC_QUERYCAP", err)
			}
			if rev != 0 && rev&unix.POLLIN == 0 {
				// vb2 reports POLLERR for a queue in error or not
				// streaming; DQBUF at the top of the loop then says which
				// (EIO, EINVAL) and fail() names it. Once (in CI, vivid
				// right after another instance's disconnect) POLLERR came
				// while DQBUF had nothing to say, so a few of those are
				// waited out before giving up.
				spurious++
				if spurious > maxSpuriousPollErr {
					return hal.VideoFrame{}, fmt.Errorf("v4l2: %s: poll keeps reporting %#x on a streaming device while VIDIOC_DQBUF has no buffer and no error", s.dev.Path(), rev)
				}
				select {
				case <-time.After(spuriousPollBackoff):
				case <-pctx.Done():
				}
			}
		}
	}
}

// fail turns a capture error into ReadFrame's result, recognising a device
// that went away: ENODEV directly, or EIO (videobuf2's queue error, what a
// UVC disconnect leaves) when VIDIOC_QUERYCAP then says ENODEV. It is called
// with readMu held.
func (s *stream) fail(op string, err error) error {
	gone := uapi.Gone(err)
	if !gone && errors.Is(err, unix.EIO) {
		_, qerr := s.dev.QueryCap()
		gone = uapi.Gone(qerr)
	}
	if gone {
		s.unplugged = fmt.Errorf("v4l2: %s: %w (%s: %v)", s.cam.id, hal.ErrUnplugged, op, err)
		s.log.Warn("camera unplugged while streaming", "err", err)
		return s.unplugged
	}
	return fmt.Errorf("v4l2: %s: %w", s.cam.id, err)
}

// copyOut copies a dequeued buffer into a new frame, tightly packed.
// keep is false for a buffer the driver marked as corrupted.
func (s *stream) copyOut(d dequeued) (hal.VideoFrame, bool, error) {
	s.advanceSeq(d.sequence)
	if d.flags&uapi.BufFlagError != 0 {
		return hal.VideoFrame{}, false, nil
	}
	data, err := pack(s.mode.Format, s.fourcc, s.width, s.height, s.planes, d.used)
	if err != nil {
		return hal.VideoFrame{}, false, err
	}
	return hal.VideoFrame{
		Width: s.width, Height: s.height, Format: s.mode.Format, Data: data,
		Seq: s.seq, CapturedAt: s.capturedAt(d),
	}, true, nil
}

// advanceSeq follows the driver's 32-bit sequence into a 64-bit count. A
// sequence that does not move forward (vivid repeats one when its thread
// runs late, and some UVC cameras restart it) still counts as the next
// frame: consumers read a gap in Seq as dropped frames, and a repeat or a
// step back is neither.
func (s *stream) advanceSeq(raw uint32) {
	switch delta := raw - s.lastRaw; {
	case !s.haveSeq:
		s.seq, s.haveSeq = uint64(raw), true
	case delta == 0 || delta > 1<<31: // modular: a wrap is a small delta
		s.seq++
	default:
		s.seq += uint64(delta)
	}
	s.lastRaw = raw
}

// capturedAt maps a buffer's monotonic timestamp to wall time.
func (s *stream) capturedAt(d dequeued) time.Time {
	now := s.clock.Now()
	if d.flags&uapi.BufFlagTimestampMask != uapi.BufFlagTimestampMonotonic || (d.ts.Sec == 0 && d.ts.Usec == 0) {
		return now
	}
	ts := time.Duration(d.ts.Sec)*time.Second + time.Duration(d.ts.Usec)*time.Microsecond
	age := s.clock.Monotonic() - ts
	if age < 0 || age > MaxTimestampAge {
		return now
	}
	return now.Add(-age)
}

// Close stops the stream and releases the device (hal.VideoStream). It
// interrupts a ReadFrame in progress, which returns hal.ErrClosed, and is
// idempotent.
func (s *stream) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeFn()
		s.readMu.Lock()
		defer s.readMu.Unlock()
		s.release()
	})
	return nil
}

// release stops streaming, unmaps and frees the buffers and closes the
// node, best effort: after an unplug every ioctl fails, and the kernel
// frees it all when the last reference goes anyway.
func (s *stream) release() {
	_ = s.dev.StreamOff(s.bufType)
	for _, maps := range s.bufs {
		for _, m := range maps {
			if err := s.dev.Munmap(m); err != nil {
				s.log.Warn("munmap failed", "err", err)
			}
		}
	}
	s.bufs = nil
	_, _ = s.dev.RequestBuffers(s.bufType, uapi.MemoryMMAP, 0)
	if err := s.dev.Close(); err != nil {
		s.log.Debug("close failed", "err", err)
	}
	s.cam.streamClosed(s)
}
