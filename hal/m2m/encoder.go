package m2m

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/internal/v4l2"
)

// Buffer counts. A session waits for each frame's output before taking
// the next, so few buffers are needed: two raw buffers let the encoder
// hold one as a reference while the next is filled, and the coded ones
// cover an encoder that returns more than one buffer per frame.
const (
	encOutputBuffers  = 2
	encCaptureBuffers = 4
	// drainTimeout bounds the wait for the last buffer when a session
	// stops: what drains is discarded anyway.
	drainTimeout = time.Second
)

// NewVideoEncoder implements hal.VideoEncoderFactory: it opens the node,
// sets it up as the stateful encoder interface says (coded format on
// CAPTURE first, then the raw format on OUTPUT, frame interval, GOP size
// and bitrate when the driver has those controls, MMAP buffers, both queues
// streaming) and returns the session. A device without room for another
// session gives an error wrapping hal.ErrBusy.
func (e *Encoder) NewVideoEncoder(ctx context.Context, cfg hal.VideoEncoderConfig) (hal.VideoEncoder, error) {
	op := fmt.Sprintf("v4l2-m2m: new %s encoder %dx%d@%d on %s", cfg.Codec, cfg.Width, cfg.Height, cfg.FPS, e.n.path)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cf, ok := find(e.n.encodes, cfg.Codec)
	if !ok {
		return nil, fmt.Errorf("%s: %w", op, ErrUnsupportedCodec)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width%2 != 0 || cfg.Height%2 != 0 || cfg.FPS <= 0 || cfg.BitrateBps < 0 || cfg.KeyframeInterval < 0 {
		return nil, fmt.Errorf("%s: size must be even and positive, FPS positive, bitrate and keyframe interval not negative: %w", op, ErrInvalidFrame)
	}
	dev, err := openNode(e.cfg, e.n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	closeCtx, cancel := context.WithCancel(context.Background())
	s := &encodeSession{
		log:      e.cfg.Logger.With("device", e.info.ID, "codec", cfg.Codec),
		n:        e.n,
		codec:    cf,
		cfg:      cfg,
		timeout:  e.cfg.FrameTimeout,
		dev:      dev,
		out:      newQueue(dev, e.n.outType),
		cap:      newQueue(dev, e.n.capType),
		ctrls:    controlsOf(dev),
		closeCtx: closeCtx,
		cancel:   cancel,
	}
	s.target.Store(int64(cfg.BitrateBps))
	if err := s.setup(cfg.Width, cfg.Height); err != nil {
		cancel()
		return nil, fmt.Errorf("%s: %w", op, errors.Join(classify(err), dev.Close()))
	}
	s.log.Debug("opened encoder", "node", e.n.path, "size", fmt.Sprintf("%dx%d", cfg.Width, cfg.Height),
		"raw", v4l2.FourCCString(s.layout.fourcc), "force-key-control", s.ctrls.has(v4l2.CIDMPEGVideoForceKeyFrame),
		"bitrate-control", s.ctrls.has(v4l2.CIDMPEGVideoBitrate))
	return s, nil
}

// controls are the controls a device has, by ID.
type controls map[uint32]v4l2.QueryExtCtrl

func controlsOf(dev *v4l2.Device) controls {
	list, _ := dev.EnumControls() // a device without controls has none
	c := make(controls, len(list))
	for _, q := range list {
		if q.Flags&(v4l2.CtrlFlagDisabled|v4l2.CtrlFlagReadOnly) == 0 {
			c[q.ID] = q
		}
	}
	return c
}

func (c controls) has(id uint32) bool { _, ok := c[id]; return ok }

// clamp brings v into the control's range.
func (c controls) clamp(id uint32, v int64) int32 {
	q := c[id]
	return int32(min(max(v, q.Minimum), q.Maximum))
}

// encodeSession is one open encoder. It implements hal.VideoEncoder.
type encodeSession struct {
	log     *slog.Logger
	n       *node
	codec   codecFormat
	cfg     hal.VideoEncoderConfig
	timeout time.Duration
	ctrls   controls

	// Requests from other goroutines, applied by the next Encode.
	keyframe atomic.Bool
	target   atomic.Int64 // bps
	closing  atomic.Bool
	closeCtx context.Context // done when Close starts, to wake a waiting Encode
	cancel   context.CancelFunc

	mu            sync.Mutex // serialises Encode and Close; guards the rest
	dev           *v4l2.Device
	out, cap      *queue
	layout        layout
	width, height int // visible size the queues are set up for
	streaming     bool
	applied       int64 // bps last given to the driver
	stamps        stamps
	partial       bool  // the last coded buffer did not end its frame
	partialTS     int64 // and had this timestamp
	closed        bool
	warnedRate    bool
}

var _ hal.VideoEncoder = (*encodeSession)(nil)

// setup configures both queues for w×h and starts streaming.
func (s *encodeSession) setup(w, h int) error {
	cf := &v4l2.Format{Type: s.n.capType}
	if v4l2.IsMPlane(cf.Type) {
		p := cf.PixMP()
		p.PixelFormat, p.Width, p.Height, p.NumPlanes = s.codec.fourcc, uint32(w), uint32(h), 1
	} else {
		p := cf.Pix()
		p.PixelFormat, p.Width, p.Height = s.codec.fourcc, uint32(w), uint32(h)
	}
	if err := s.dev.SetFormat(cf); err != nil {
		return err
	}
	if got := formatFourCC(cf); got != s.codec.fourcc {
		return fmt.Errorf("CAPTURE format %s, driver chose %s", v4l2.FourCCString(s.codec.fourcc), v4l2.FourCCString(got))
	}
	l, err := s.setRaw(w, h)
	if err != nil {
		return err
	}
	if l.width < w || l.height < h {
		return fmt.Errorf("OUTPUT format %dx%d, driver chose %dx%d: %w", w, h, l.width, l.height, ErrUnsupportedSize)
	}
	s.layout = l
	if l.width != w || l.height != h {
		// The driver aligned the buffer: encode only the picture.
		if _, err := s.dev.SetSelection(s.n.outType, v4l2.SelTgtCrop, v4l2.Rect{Width: uint32(w), Height: uint32(h)}); err != nil {
			s.log.Debug("driver aligned the picture and refused the crop; the padding is encoded", "buffer", fmt.Sprintf("%dx%d", l.width, l.height), "err", err)
		}
	}
	if _, err := s.dev.SetFrameInterval(s.n.outType, v4l2.Fract{Numerator: 1, Denominator: uint32(s.cfg.FPS)}); err != nil {
		s.log.Debug("driver does not take the frame interval", "err", err)
	}
	s.setControls()
	if err := s.out.allocate(encOutputBuffers + s.minBuffers(v4l2.CIDMinBuffersForOutput)); err != nil {
		return err
	}
	if err := s.cap.allocate(encCaptureBuffers); err != nil {
		return errors.Join(err, s.out.release())
	}
	err = s.cap.putAll()
	if err == nil {
		err = s.out.streamOn()
	}
	if err == nil {
		err = s.cap.streamOn()
	}
	if err != nil {
		return errors.Join(err, s.stop())
	}
	s.width, s.height, s.streaming = w, h, true
	return nil
}

// setRaw sets the first raw OUTPUT format, in this package's order of
// preference, that the driver takes.
func (s *encodeSession) setRaw(w, h int) (layout, error) {
	var errs []error
	for _, raw := range rawFormats {
		if !slices.Contains(s.n.rawIn, raw) {
			continue
		}
		f := &v4l2.Format{Type: s.n.outType}
		if v4l2.IsMPlane(f.Type) {
			p := f.PixMP()
			p.PixelFormat, p.Width, p.Height, p.Field = raw, uint32(w), uint32(h), v4l2.FieldNone
			p.NumPlanes = map[uint32]uint8{v4l2.PixFmtYUV420M: 3, v4l2.PixFmtNV12M: 2}[raw]
			if p.NumPlanes == 0 {
				p.NumPlanes = 1
			}
		} else {
			p := f.Pix()
			p.PixelFormat, p.Width, p.Height, p.Field = raw, uint32(w), uint32(h), v4l2.FieldNone
		}
		if err := s.dev.SetFormat(f); err != nil {
			errs = append(errs, err)
			continue
		}
		if formatFourCC(f) != raw {
			continue
		}
		return layoutOf(f)
	}
	return layout{}, fmt.Errorf("OUTPUT takes none of %s: %w", formatList(s.n.rawIn), errors.Join(errs...))
}

func formatFourCC(f *v4l2.Format) uint32 {
	if v4l2.IsMPlane(f.Type) {
		return f.PixMP().PixelFormat
	}
	return f.Pix().PixelFormat
}

func (s *encodeSession) minBuffers(id uint32) int {
	if !s.ctrls.has(id) {
		return 0
	}
	v, err := s.dev.GetCtrl(id)
	if err != nil || v < 0 || v > 32 {
		return 0
	}
	return int(v)
}

// setControls applies the session's settings through the controls the
// driver has. Each is best effort: a driver that refuses one still encodes.
func (s *encodeSession) setControls() {
	set := func(id uint32, v int64, what string) bool {
		if !s.ctrls.has(id) {
			return false
		}
		if _, err := s.dev.SetCtrl(id, s.ctrls.clamp(id, v)); err != nil {
			s.log.Debug("driver refused a control", "control", what, "value", v, "err", err)
			return false
		}
		return true
	}
	interval := s.cfg.KeyframeInterval
	if interval == 0 {
		interval = DefaultKeyframeInterval
	}
	gop := max(1, int64((interval*time.Duration(s.cfg.FPS)+time.Second/2)/time.Second))
	set(v4l2.CIDMPEGVideoGOPSize, gop, "GOP size")
	set(v4l2.CIDMPEGVideoBitrateMode, v4l2.BitrateModeCBR, "bitrate mode")
	if bps := s.target.Load(); bps > 0 && set(v4l2.CIDMPEGVideoBitrate, bps, "bitrate") {
		s.applied = bps
	}
	if s.cfg.Codec == hal.CodecH264 {
		// What WebRTC receivers expect: constrained baseline, and SPS and
		// PPS with every IDR so a receiver can start at any keyframe.
		set(v4l2.CIDMPEGVideoH264Profile, v4l2.H264ProfileConstrainedBaseline, "H.264 profile")
		set(v4l2.CIDMPEGVideoH264IPeriod, gop, "H.264 I period")
		set(v4l2.CIDMPEGVideoPrependSPSPPSToIDR, 1, "SPS/PPS before IDR")
		set(v4l2.CIDMPEGVideoRepeatSeqHeader, 1, "repeat sequence header")
	}
}

// stop stops both queues and frees the buffers.
func (s *encodeSession) stop() error {
	s.streaming = false
	return errors.Join(s.out.streamOff(), s.cap.streamOff(), s.out.release(), s.cap.release())
}

// Encode implements hal.VideoEncoder. frame must be I420 with even
// dimensions. The session waits for this frame's coded output (at most
// Config.FrameTimeout, then ErrTimeout) and returns it with its CapturedAt:
// usually one frame, more if the driver splits one, none if it dropped the
// frame. Keyframe comes from V4L2_BUF_FLAG_KEYFRAME, or from the bitstream
// when the driver flags neither keyframes nor inter frames (vicodec). A
// frame of another size than the last restarts the encoder at that size;
// its output starts with a keyframe.
func (s *encodeSession) Encode(ctx context.Context, frame hal.VideoFrame) ([]hal.EncodedFrame, error) {
	op := fmt.Sprintf("v4l2-m2m: encode %s frame %d on %s", s.cfg.Codec, frame.Seq, s.n.path)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkFrame(frame); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.closing.Load() {
		return nil, fmt.Errorf("%s: %w", op, hal.ErrClosed)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.closeCtx, cancel)
	defer stop()
	out, err := s.encode(ctx, frame)
	if err != nil {
		if s.closing.Load() {
			err = hal.ErrClosed
		}
		return out, fmt.Errorf("%s: %w", op, classify(err))
	}
	return out, nil
}

func (s *encodeSession) encode(ctx context.Context, f hal.VideoFrame) ([]hal.EncodedFrame, error) {
	if s.streaming && (f.Width != s.width || f.Height != s.height) {
		s.log.Info("frame size changed; restarting the encoder", "from", fmt.Sprintf("%dx%d", s.width, s.height), "to", fmt.Sprintf("%dx%d", f.Width, f.Height))
		if err := s.stop(); err != nil {
			return nil, err
		}
	}
	if !s.streaming {
		if err := s.setup(f.Width, f.Height); err != nil {
			return nil, err
		}
		s.keyframe.Store(false) // a new stream starts with one
	}
	if err := s.apply(); err != nil {
		return nil, err
	}
	i, err := s.freeOutput(ctx)
	if err != nil {
		return nil, err
	}
	s.layout.write(s.out.bufs[i].mem, f.Data, f.Width, f.Height)
	tv := s.stamps.add(f.CapturedAt)
	if err := s.out.put(i, s.layout.bytesUsed(), tv); err != nil {
		return nil, err
	}
	return s.collect(ctx, tv)
}

// apply hands the driver what ForceKeyframe and SetBitrate asked for.
func (s *encodeSession) apply() error {
	if s.keyframe.Swap(false) {
		forced := false
		if s.ctrls.has(v4l2.CIDMPEGVideoForceKeyFrame) {
			_, err := s.dev.SetCtrl(v4l2.CIDMPEGVideoForceKeyFrame, 1)
			if err != nil {
				s.log.Debug("force key frame control failed; resetting the stream instead", "err", err)
			}
			forced = err == nil
		}
		if !forced {
			// The encoder interface's Reset sequence: a restarted CAPTURE
			// queue begins a stream that stands on its own, so with no
			// frame in flight the next frame is a keyframe.
			if err := s.cap.streamOff(); err != nil {
				return err
			}
			if err := s.cap.putAll(); err != nil {
				return err
			}
			if err := s.cap.streamOn(); err != nil {
				return err
			}
		}
	}
	if bps := s.target.Load(); bps != s.applied {
		if !s.ctrls.has(v4l2.CIDMPEGVideoBitrate) {
			if !s.warnedRate {
				s.log.Debug("device has no bitrate control; the rate is the device's own", "bps", bps)
				s.warnedRate = true
			}
			s.applied = bps
			return nil
		}
		if _, err := s.dev.SetCtrl(v4l2.CIDMPEGVideoBitrate, s.ctrls.clamp(v4l2.CIDMPEGVideoBitrate, bps)); err != nil {
			// Some drivers take it only between streams: keep going at the
			// old rate rather than fail the call.
			s.log.Debug("driver refused the bitrate", "bps", bps, "err", err)
		}
		s.applied = bps
	}
	return nil
}

// freeOutput returns a raw buffer to fill, waiting for the driver to give
// one back if it holds them all.
func (s *encodeSession) freeOutput(ctx context.Context) (int, error) {
	for {
		if err := s.reclaim(); err != nil {
			return -1, err
		}
		if i := s.out.free(); i >= 0 {
			return i, nil
		}
		rev, err := s.dev.Poll(ctx, unix.POLLOUT, s.timeout)
		if err != nil {
			return -1, err
		}
		if rev == 0 {
			return -1, fmt.Errorf("no raw buffer back within %v: %w", s.timeout, ErrTimeout)
		}
		if rev&unix.POLLOUT == 0 && rev&(unix.POLLERR|unix.POLLHUP) != 0 {
			return -1, fmt.Errorf("waiting for a raw buffer: poll says %#x: %w", rev, ErrDevice)
		}
	}
}

// reclaim dequeues the raw buffers the driver is done with.
func (s *encodeSession) reclaim() error {
	for {
		d, ok, err := s.out.get()
		if err != nil || !ok {
			return err
		}
		if d.flags&v4l2.BufFlagError != 0 {
			s.log.Debug("driver flagged a raw buffer as failed", "index", d.index)
		}
	}
}

// collect dequeues coded frames until the one for timestamp tv.
func (s *encodeSession) collect(ctx context.Context, tv v4l2.Timeval) ([]hal.EncodedFrame, error) {
	want := tv.Sec*1e6 + tv.Usec
	var out []hal.EncodedFrame
	deadline := time.Now().Add(s.timeout)
	for {
		done, n, err := s.dequeueCoded(&out, want)
		if err != nil || done {
			return out, err
		}
		if err := s.reclaim(); err != nil {
			return out, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return out, fmt.Errorf("no coded frame within %v: %w", s.timeout, ErrTimeout)
		}
		rev, err := s.dev.Poll(ctx, unix.POLLIN, left)
		if err != nil {
			return out, err
		}
		if rev == 0 {
			return out, fmt.Errorf("no coded frame within %v: %w", s.timeout, ErrTimeout)
		}
		if rev&unix.POLLIN == 0 && rev&unix.POLLERR != 0 && n == 0 {
			return out, fmt.Errorf("waiting for a coded frame: poll says %#x: %w", rev, ErrDevice)
		}
	}
}

// dequeueCoded takes every coded frame that is ready, requeues its buffer,
// and reports whether the one with timestamp want (or a later one) came.
func (s *encodeSession) dequeueCoded(out *[]hal.EncodedFrame, want int64) (done bool, n int, err error) {
	for {
		d, ok, err := s.cap.get()
		if err != nil || !ok {
			return done, n, err
		}
		n++
		flags := d.flags
		data := slices.Clone(s.cap.data(d)[0][:d.used[0]])
		if err := s.cap.put(d.index, nil, v4l2.Timeval{}); err != nil {
			return done, n, err
		}
		if flags&v4l2.BufFlagError != 0 {
			return done, n, fmt.Errorf("driver flagged a coded buffer as failed: %w", ErrDevice)
		}
		if flags&v4l2.BufFlagLast != 0 && len(data) == 0 {
			return done, n, fmt.Errorf("encoder stopped (empty last buffer): %w", ErrDevice)
		}
		at, ts, ok := s.stamps.find(d.ts)
		if !ok {
			s.log.Debug("coded frame with an unknown timestamp", "ts", ts)
		}
		key := flags&v4l2.BufFlagKeyframe != 0
		if flags&(v4l2.BufFlagKeyframe|v4l2.BufFlagPFrame|v4l2.BufFlagBFrame) == 0 {
			key = isKeyframe(s.cfg.Codec, data)
		}
		if len(data) == 0 {
			continue
		}
		// One raw frame may come back in several coded buffers with its
		// timestamp (an H.264 encoder may put SPS and PPS in a buffer of
		// their own): they are one hal.EncodedFrame.
		if s.partial && ts == s.partialTS && len(*out) > 0 {
			f := &(*out)[len(*out)-1]
			f.Data = append(f.Data, data...)
			f.Keyframe = f.Keyframe || key
		} else {
			*out = append(*out, hal.EncodedFrame{
				Codec: s.cfg.Codec, Data: data, Keyframe: key, CapturedAt: at,
				Duration: time.Second / time.Duration(s.cfg.FPS),
			})
		}
		s.partial, s.partialTS = !completesFrame(s.cfg.Codec, data), ts
		if ts >= want && !s.partial {
			done = true
		}
	}
}

// ForceKeyframe implements hal.VideoEncoder: the next frame Encode takes
// is coded as a keyframe, through V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME when
// the driver has it, else by restarting the CAPTURE queue (the encoder
// interface's Reset sequence, which vicodec needs).
func (s *encodeSession) ForceKeyframe() { s.keyframe.Store(true) }

// SetBitrate implements hal.VideoEncoder. The next Encode gives the driver
// the rate, clamped to its control's range; a driver without a bitrate
// control (vicodec) keeps its own rate, and the call still succeeds, so
// that congestion control does not fail on such a device.
func (s *encodeSession) SetBitrate(bps int) error {
	op := fmt.Sprintf("v4l2-m2m: set %s bitrate to %d bps", s.cfg.Codec, bps)
	if s.closing.Load() {
		return fmt.Errorf("%s: %w", op, hal.ErrClosed)
	}
	if bps <= 0 {
		return fmt.Errorf("%s: bitrate must be positive: %w", op, ErrInvalidFrame)
	}
	s.target.Store(int64(bps))
	return nil
}

// Close implements hal.VideoEncoder: it wakes a waiting Encode, drains the
// encoder (V4L2_ENC_CMD_STOP, discarding what comes out), stops both
// queues, frees the buffers and closes the node. It is idempotent.
func (s *encodeSession) Close() error {
	s.closing.Store(true)
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.streaming {
		if err := s.drain(); err != nil {
			s.log.Debug("drain on close", "err", err)
		}
		errs = append(errs, s.stop())
	}
	errs = append(errs, s.dev.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("v4l2-m2m: close %s encoder on %s: %w", s.cfg.Codec, s.n.path, err)
	}
	return nil
}

// drain runs the encoder's Drain sequence: V4L2_ENC_CMD_STOP, then coded
// buffers until the one flagged last.
func (s *encodeSession) drain() error {
	if err := s.dev.EncoderCmd(v4l2.EncCmdStop, 0); err != nil {
		return err
	}
	deadline := time.Now().Add(min(s.timeout, drainTimeout))
	for {
		for {
			d, ok, err := s.cap.get()
			if errors.Is(err, unix.EPIPE) {
				return nil // the last buffer was dequeued already
			}
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if d.flags&v4l2.BufFlagLast != 0 {
				return nil
			}
			if err := s.cap.put(d.index, nil, v4l2.Timeval{}); err != nil {
				return err
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ErrTimeout
		}
		rev, err := s.dev.Poll(context.Background(), unix.POLLIN, left)
		if err != nil {
			return err
		}
		if rev == 0 || rev&unix.POLLIN == 0 {
			return fmt.Errorf("drain: poll says %#x: %w", rev, ErrTimeout)
		}
	}
}
