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

// Decoder buffer counts and the coded size hint. The hint sizes the coded
// buffers of drivers that derive their size from the OUTPUT format (vicodec
// does); 720p is the common real-time size, and larger frames are split
// across buffers for formats that allow it.
const (
	decOutputBuffers   = 4
	decCaptureExtra    = 2 // on top of V4L2_CID_MIN_BUFFERS_FOR_CAPTURE
	decCaptureMin      = 4
	decHintW, decHintH = 1280, 720
)

// NewVideoDecoder implements hal.VideoDecoderFactory: it opens the node,
// subscribes to source changes, sets the coded OUTPUT format and starts the
// OUTPUT queue. The CAPTURE queue is set up when the decoder has parsed
// the stream's first header and says what it needs (V4L2_EVENT_SOURCE_CHANGE).
func (d *Decoder) NewVideoDecoder(ctx context.Context, codec hal.Codec) (hal.VideoDecoder, error) {
	op := fmt.Sprintf("v4l2-m2m: new %s decoder on %s", codec, d.n.path)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cf, ok := find(d.n.decodes, codec)
	if !ok {
		return nil, fmt.Errorf("%s: %w", op, ErrUnsupportedCodec)
	}
	dev, err := openNode(d.cfg, d.n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	closeCtx, cancel := context.WithCancel(context.Background())
	s := &decodeSession{
		log:      d.cfg.Logger.With("device", d.info.ID, "codec", codec),
		n:        d.n,
		codec:    cf,
		timeout:  d.cfg.FrameTimeout,
		dev:      dev,
		out:      newQueue(dev, d.n.outType),
		cap:      newQueue(dev, d.n.capType),
		closeCtx: closeCtx,
		cancel:   cancel,
	}
	if err := s.open(); err != nil {
		cancel()
		return nil, fmt.Errorf("%s: %w", op, errors.Join(classify(err), s.stop(), dev.Close()))
	}
	s.log.Debug("opened decoder", "node", d.n.path)
	return s, nil
}

// decodeSession is one open decoder. It implements hal.VideoDecoder.
type decodeSession struct {
	log     *slog.Logger
	n       *node
	codec   codecFormat
	timeout time.Duration

	closing  atomic.Bool
	closeCtx context.Context
	cancel   context.CancelFunc

	mu         sync.Mutex // serialises Decode and Close; guards the rest
	dev        *v4l2.Device
	out, cap   *queue
	capOn      bool   // the CAPTURE queue is set up and streaming
	capLast    bool   // the decoder returned its last CAPTURE buffer
	changed    bool   // a source change is pending
	layout     layout // of CAPTURE
	visW, visH int    // the visible picture in CAPTURE buffers
	stamps     stamps
	seq        uint64
	closed     bool
}

var _ hal.VideoDecoder = (*decodeSession)(nil)

func (s *decodeSession) open() error {
	if err := s.dev.SubscribeEvent(v4l2.EventTypeSourceChange, 0, 0); err != nil {
		return fmt.Errorf("subscribe to source changes: %w", err)
	}
	f := &v4l2.Format{Type: s.n.outType}
	if v4l2.IsMPlane(f.Type) {
		p := f.PixMP()
		p.PixelFormat, p.Width, p.Height, p.NumPlanes = s.codec.fourcc, decHintW, decHintH, 1
	} else {
		p := f.Pix()
		p.PixelFormat, p.Width, p.Height = s.codec.fourcc, decHintW, decHintH
	}
	if err := s.dev.SetFormat(f); err != nil {
		return err
	}
	if got := formatFourCC(f); got != s.codec.fourcc {
		return fmt.Errorf("OUTPUT format %s, driver chose %s", v4l2.FourCCString(s.codec.fourcc), v4l2.FourCCString(got))
	}
	if err := s.out.allocate(decOutputBuffers); err != nil {
		return err
	}
	return s.out.streamOn()
}

// stop stops both queues and frees the buffers.
func (s *decodeSession) stop() error {
	var errs []error
	if s.capOn {
		errs = append(errs, s.cap.streamOff())
	}
	s.capOn = false
	errs = append(errs, s.out.streamOff(), s.out.release(), s.cap.release())
	return errors.Join(errs...)
}

// Decode implements hal.VideoDecoder. frame is one whole coded frame (for
// FWHT, header and data, as vicodec's encoder makes it). It is queued, and
// Decode returns the pictures the decoder finishes meanwhile, as I420 with
// the CapturedAt of the frame they came from: normally this frame's
// picture, which it waits for up to Config.FrameTimeout (ErrTimeout after
// that). A frame before the stream's first header gives none. Resolution
// changes are followed as the stateful decoder interface says: the
// CAPTURE queue is set up again at the new size.
func (s *decodeSession) Decode(ctx context.Context, frame hal.EncodedFrame) ([]hal.VideoFrame, error) {
	op := fmt.Sprintf("v4l2-m2m: decode %s frame on %s", s.codec.caps.Codec, s.n.path)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if frame.Codec != "" && frame.Codec != s.codec.caps.Codec {
		return nil, fmt.Errorf("%s: got a %s frame: %w", op, frame.Codec, ErrUnsupportedCodec)
	}
	if len(frame.Data) == 0 {
		return nil, fmt.Errorf("%s: empty frame: %w", op, ErrInvalidFrame)
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
	out, err := s.decode(ctx, frame)
	if err != nil {
		if s.closing.Load() {
			err = hal.ErrClosed
		}
		return out, fmt.Errorf("%s: %w", op, classify(err))
	}
	return out, nil
}

func (s *decodeSession) decode(ctx context.Context, frame hal.EncodedFrame) ([]hal.VideoFrame, error) {
	tv := s.stamps.add(frame.CapturedAt)
	want := tv.Sec*1e6 + tv.Usec
	data := frame.Data
	var out []hal.VideoFrame
	var lastIndex int
	for len(data) > 0 {
		i, err := s.freeOutput(ctx, &out)
		if err != nil {
			return out, err
		}
		m := s.out.bufs[i].mem[0]
		n := copy(m, data)
		if n < len(data) && s.codec.flags&v4l2.FmtFlagContinuousBytestream == 0 {
			return out, fmt.Errorf("frame of %d bytes, buffers of %d, and the format cannot span buffers: %w", len(frame.Data), len(m), ErrInvalidFrame)
		}
		data = data[n:]
		if err := s.out.put(i, []uint32{uint32(n)}, tv); err != nil {
			return out, err
		}
		lastIndex = i
	}
	// Wait for this frame's picture; before the CAPTURE queue exists, only
	// until the decoder has taken the frame (it may not hold a stream
	// start) or announces the stream.
	deadline := time.Now().Add(s.timeout)
	for {
		got, err := s.service(&out, want)
		if err != nil || got {
			return out, err
		}
		if !s.capOn && !s.changed && !s.out.bufs[lastIndex].queued {
			return out, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return out, fmt.Errorf("no picture within %v: %w", s.timeout, ErrTimeout)
		}
		rev, err := s.dev.Poll(ctx, unix.POLLIN|unix.POLLOUT|unix.POLLPRI, left)
		if err != nil {
			return out, err
		}
		if rev == 0 {
			return out, fmt.Errorf("no picture within %v: %w", s.timeout, ErrTimeout)
		}
	}
}

// freeOutput returns a coded buffer to fill, servicing the device while it
// waits for one.
func (s *decodeSession) freeOutput(ctx context.Context, out *[]hal.VideoFrame) (int, error) {
	for {
		if _, err := s.service(out, -1); err != nil {
			return -1, err
		}
		if i := s.out.free(); i >= 0 {
			return i, nil
		}
		rev, err := s.dev.Poll(ctx, unix.POLLOUT|unix.POLLIN|unix.POLLPRI, s.timeout)
		if err != nil {
			return -1, err
		}
		if rev == 0 {
			return -1, fmt.Errorf("no coded buffer back within %v: %w", s.timeout, ErrTimeout)
		}
	}
}

// service does whatever the device has ready: events, finished coded
// buffers, decoded pictures (appended to out), and the CAPTURE setup a
// source change calls for. It reports whether the picture for timestamp
// want (or a later one) came out.
func (s *decodeSession) service(out *[]hal.VideoFrame, want int64) (bool, error) {
	if err := s.events(); err != nil {
		return false, err
	}
	for {
		d, ok, err := s.out.get()
		if err != nil {
			return false, err
		}
		if !ok {
			break
		}
		if d.flags&v4l2.BufFlagError != 0 {
			s.log.Debug("decoder flagged a coded buffer as failed", "index", d.index)
		}
	}
	got := false
	var errs []error
	for s.capOn && !s.capLast {
		d, ok, err := s.cap.get()
		if errors.Is(err, unix.EPIPE) {
			// The last buffer went by already: the queue waits for a restart.
			d, ok, err = dequeued{flags: v4l2.BufFlagLast}, true, nil
			d.index = -1
		}
		if err != nil {
			return got, err
		}
		if !ok {
			break
		}
		last := d.flags&v4l2.BufFlagLast != 0
		if d.index >= 0 && d.used[0] > 0 && d.flags&v4l2.BufFlagError == 0 {
			at, ts, _ := s.stamps.find(d.ts)
			*out = append(*out, hal.VideoFrame{
				Width: s.visW, Height: s.visH, Format: hal.PixelI420,
				Data: s.layout.read(s.cap.data(d), s.visW, s.visH),
				Seq:  s.seq, CapturedAt: at,
			})
			s.seq++
			if want >= 0 && ts >= want {
				got = true
			}
		} else if d.index >= 0 && d.flags&v4l2.BufFlagError != 0 {
			errs = append(errs, fmt.Errorf("decoder flagged a picture as failed: %w", ErrDevice))
		}
		if last {
			// The decoder stopped its CAPTURE queue, which it does at a
			// source change (the dynamic resolution change sequence): set it
			// up again once the event is in, below or in a later call.
			s.capLast = true
			if err := s.events(); err != nil {
				return got, err
			}
			break
		}
		if err := s.cap.put(d.index, nil, v4l2.Timeval{}); err != nil {
			return got, err
		}
	}
	if s.changed && (!s.capOn || s.capLast) {
		if err := s.setupCapture(); err != nil {
			return got, err
		}
	}
	return got, errors.Join(errs...)
}

// events dequeues pending events and notes source changes.
func (s *decodeSession) events() error {
	for {
		ev, err := s.dev.DequeueEvent()
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return err
		}
		if ev.Type == v4l2.EventTypeSourceChange && ev.SrcChange().Changes&v4l2.EventSrcChResolution != 0 {
			s.changed = true
		}
	}
}

// setupCapture (re)creates the CAPTURE queue for the format the decoder
// reports after a source change.
func (s *decodeSession) setupCapture() error {
	if s.capOn {
		if err := s.cap.streamOff(); err != nil {
			return err
		}
		s.capOn, s.capLast = false, false
	}
	if err := s.cap.release(); err != nil {
		return err
	}
	s.changed = false
	f, err := s.dev.GetFormat(s.n.capType)
	if err != nil {
		return err
	}
	if !rawSupported(formatFourCC(&f)) {
		if err := s.pickRaw(&f); err != nil {
			return err
		}
	}
	l, err := layoutOf(&f)
	if err != nil {
		return err
	}
	s.layout = l
	s.visW, s.visH = l.width, l.height
	if r, err := s.dev.GetSelection(s.n.capType, v4l2.SelTgtCompose); err == nil && r.Width > 0 && r.Height > 0 &&
		int(r.Width) <= l.width && int(r.Height) <= l.height && r.Left == 0 && r.Top == 0 {
		s.visW, s.visH = int(r.Width)&^1, int(r.Height)&^1
	}
	count := decCaptureMin
	if v, err := s.dev.GetCtrl(v4l2.CIDMinBuffersForCapture); err == nil && v > 0 && v < 32 {
		count = max(count, int(v)+decCaptureExtra)
	}
	if err := s.cap.allocate(count); err != nil {
		return err
	}
	if err := s.cap.putAll(); err != nil {
		return err
	}
	if err := s.cap.streamOn(); err != nil {
		return err
	}
	s.capOn = true
	s.log.Info("decoding", "size", fmt.Sprintf("%dx%d", s.visW, s.visH), "raw", v4l2.FourCCString(l.fourcc),
		"buffer", fmt.Sprintf("%dx%d", l.width, l.height))
	return nil
}

// pickRaw sets the first raw CAPTURE format this package reads that the
// decoder offers for the stream.
func (s *decodeSession) pickRaw(f *v4l2.Format) error {
	fmts, err := s.dev.EnumFormats(s.n.capType)
	if err != nil {
		return err
	}
	for _, raw := range rawFormats {
		if !slices.ContainsFunc(fmts, func(d v4l2.FmtDesc) bool { return d.PixelFormat == raw }) {
			continue
		}
		if v4l2.IsMPlane(f.Type) {
			f.PixMP().PixelFormat = raw
		} else {
			f.Pix().PixelFormat = raw
		}
		if err := s.dev.SetFormat(f); err == nil && formatFourCC(f) == raw {
			return nil
		}
	}
	return fmt.Errorf("decoder offers %s for this stream, none of %s: %w", fourccs(fmts), formatList(rawFormats), ErrUnsupportedCodec)
}

// Close implements hal.VideoDecoder: it wakes a waiting Decode, stops both
// queues, frees the buffers and closes the node. Pictures still in the
// decoder are dropped. It is idempotent.
func (s *decodeSession) Close() error {
	s.closing.Store(true)
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := errors.Join(s.stop(), s.dev.Close()); err != nil {
		return fmt.Errorf("v4l2-m2m: close %s decoder on %s: %w", s.codec.caps.Codec, s.n.path, err)
	}
	return nil
}
