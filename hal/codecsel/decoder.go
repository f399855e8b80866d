package codecsel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// Decoders is a hal.VideoDecoderFactory that opens each session on
// hardware when it can and on software otherwise, and moves sessions from
// hardware to software when the hardware fails (see the package
// documentation). Its sessions implement PathReporter. It is safe for
// concurrent use.
//
// Hardware decoders often take only 3 or 4 streams: with MaxSessions in
// their CodecCaps, or hal.ErrBusy at open, the streams beyond go to
// software from the start.
type Decoders struct {
	sel *selector[hal.VideoDecoderFactory]
}

var _ hal.VideoDecoderFactory = (*Decoders)(nil)

// NewDecoders returns a selector over factories, in order of preference
// within hardware and within software.
func NewDecoders(factories []hal.VideoDecoderFactory, opts Options) *Decoders {
	return &Decoders{sel: newSelector(factories, opts)}
}

// SetFactories replaces the factories (after a hotplug). Open sessions keep
// theirs, and session counts carry over for factories with the same ID.
func (d *Decoders) SetFactories(factories []hal.VideoDecoderFactory) {
	d.sel.setFactories(factories)
}

// Sessions reports how many sessions opened here are running on the
// factory with the given device ID.
func (d *Decoders) Sessions(id string) int { return d.sel.sessions(id) }

// Info implements hal.Device.
func (d *Decoders) Info() hal.Info {
	return hal.Info{ID: DecodersID, Kind: hal.KindVideoDecoder, Name: "Video decoders (hardware first, software fallback)", Driver: DriverName}
}

// Codecs implements hal.VideoDecoderFactory: the union of the factories'
// codecs.
func (d *Decoders) Codecs() []hal.CodecCaps { return d.sel.codecs() }

// NewVideoDecoder implements hal.VideoDecoderFactory. The stream's size is
// not known yet, so a hardware decoder too small for it fails on the first
// frames and the session moves to software then. The session it returns
// implements PathReporter.
func (d *Decoders) NewVideoDecoder(ctx context.Context, codec hal.Codec) (hal.VideoDecoder, error) {
	s := &decoder{
		sel:   d.sel,
		log:   d.sel.log.With("codec", codec),
		codec: codec,
	}
	o, reason, detail, err := pick(ctx, d.sel, codec, 0, 0, true, func(f hal.VideoDecoderFactory) (hal.VideoDecoder, error) {
		return f.NewVideoDecoder(ctx, codec)
	})
	if err != nil {
		return nil, fmt.Errorf("codecsel: new decoder: %w", err)
	}
	s.cur = &decSession{dec: o.sess, id: o.info.ID, hw: o.hw, release: o.release}
	s.path = pathOf(o, reason, detail, 0, d.sel.opts.Clock.Now())
	s.log.Debug("opened video decoder", "device", o.info.ID, "hardware", o.hw, "reason", reason, "detail", detail)
	return s, nil
}

// decSession is one underlying decoder session.
type decSession struct {
	dec     hal.VideoDecoder
	id      string
	hw      bool
	release func()
}

// gopFrame is a coded frame the hardware was given since the last keyframe.
type gopFrame struct {
	frame hal.EncodedFrame
	owned bool // frame.Data is a copy
	out   bool // the hardware returned its picture (or skipped it)
}

// decoder is one session of Decoders.
type decoder struct {
	sel   *selector[hal.VideoDecoderFactory]
	log   *slog.Logger
	codec hal.Codec

	// decMu serialises Decode and Close, and guards the fields below it.
	decMu    sync.Mutex
	gop      []gopFrame // since the last keyframe, to replay into software
	gopBytes int
	armed    bool // a keyframe went in or a picture came out: stalls count
	quiet    int
	busy     time.Duration
	seq      uint64 // Seq of the next picture
	hwFailed bool
	closed   bool

	mu   sync.Mutex
	cur  *decSession
	path Path

	bg sync.WaitGroup
}

var (
	_ hal.VideoDecoder = (*decoder)(nil)
	_ PathReporter     = (*decoder)(nil)
)

// CodecPath implements PathReporter.
func (d *decoder) CodecPath() Path {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.path
}

func (d *decoder) current() *decSession {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur
}

// Decode implements hal.VideoDecoder. Pictures are numbered (Seq) by this
// session, across a change of path. On hardware, an error or a stall moves
// the session to software: the coded frames since the last keyframe are
// decoded again there, and the pictures the hardware had not returned, this
// frame's included, come out of this call. Frames must say Keyframe for
// this to start at the right place; stall counting starts at the first
// keyframe (or picture), so a stream joined mid-GOP does not count as a
// stall while the decoder waits for its keyframe.
func (d *decoder) Decode(ctx context.Context, frame hal.EncodedFrame) ([]hal.VideoFrame, error) {
	d.decMu.Lock()
	defer d.decMu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("codecsel: decode: %w", hal.ErrClosed)
	}
	s := d.current()
	if s == nil {
		var err error
		if s, err = d.reopen(ctx); err != nil {
			return nil, err
		}
	}
	if !s.hw {
		out, err := s.dec.Decode(ctx, frame)
		return d.number(out), err
	}
	out, err := d.decodeHardware(ctx, s, frame)
	return d.number(out), err
}

func (d *decoder) number(out []hal.VideoFrame) []hal.VideoFrame {
	for i := range out {
		out[i].Seq = d.seq
		d.seq++
	}
	return out
}

func (d *decoder) decodeHardware(ctx context.Context, s *decSession, frame hal.EncodedFrame) ([]hal.VideoFrame, error) {
	if frame.Keyframe {
		d.armed = true
	}
	d.gop = append(d.gop, gopFrame{frame: frame})
	d.gopBytes += len(frame.Data)
	d.trim()
	opts := d.sel.opts
	budget := opts.StallTimeout - d.busy
	r, err := hwCall(ctx, opts.Clock, budget, func(ctx context.Context) ([]hal.VideoFrame, error) {
		return s.dec.Decode(ctx, frame)
	})
	out := r.out
	if d.armed {
		d.busy += r.took
	}
	d.matchOutputs(out)
	if err != nil {
		if ctx.Err() != nil {
			d.gopBytes -= len(frame.Data)
			d.gop = d.gop[:len(d.gop)-1]
			return out, err
		}
		reason := ReasonError
		if r.stalled {
			reason = ReasonStall
			err = fmt.Errorf("call blocked past the stall timeout of %v: %w", opts.StallTimeout, err)
		}
		more, ferr := d.fallback(ctx, s, reason, err)
		return append(out, more...), ferr
	}
	if len(out) > 0 {
		d.armed, d.quiet, d.busy = true, 0, 0
	} else if d.armed {
		d.quiet++
	}
	switch {
	case d.quiet >= opts.StallFrames:
		more, ferr := d.fallback(ctx, s, ReasonStall, fmt.Errorf("no output for %d frames", d.quiet))
		return append(out, more...), ferr
	case d.busy >= opts.StallTimeout:
		more, ferr := d.fallback(ctx, s, ReasonStall, fmt.Errorf("no output after %v in the decoder", d.busy))
		return append(out, more...), ferr
	}
	for i := range d.gop {
		if g := &d.gop[i]; !g.owned {
			g.frame.Data = slices.Clone(g.frame.Data)
			g.owned = true
		}
	}
	return out, nil
}

// trim drops the frames a replay no longer needs: those before the last
// keyframe that precedes every frame whose picture has not come out yet.
// (Frames the hardware holds when a keyframe arrives still need the
// keyframe before them.) Beyond MaxReplayBytes it drops the oldest anyway.
func (d *decoder) trim() {
	u := slices.IndexFunc(d.gop, func(g gopFrame) bool { return !g.out })
	if u < 0 {
		u = len(d.gop) - 1
	}
	k := u
	for k > 0 && !d.gop[k].frame.Keyframe {
		k--
	}
	drop := k
	if !d.gop[k].frame.Keyframe {
		drop = 0 // no keyframe yet: keep what there is
	}
	dropped := 0
	for _, g := range d.gop[:drop] {
		dropped += len(g.frame.Data)
	}
	for drop < len(d.gop)-1 && d.gopBytes-dropped > d.sel.opts.MaxReplayBytes {
		dropped += len(d.gop[drop].frame.Data)
		drop++
	}
	d.gopBytes -= dropped
	clear(d.gop[:drop]) // let the dropped frames' data go
	d.gop = d.gop[drop:]
}

// matchOutputs marks the frames whose pictures came out: by CapturedAt
// (earlier frames still unmarked produced no picture, like VP8's hidden
// frames), or in order when the picture carries none.
func (d *decoder) matchOutputs(out []hal.VideoFrame) {
	for _, o := range out {
		next := slices.IndexFunc(d.gop, func(g gopFrame) bool { return !g.out })
		if next < 0 {
			return
		}
		if o.CapturedAt.IsZero() {
			d.gop[next].out = true
			continue
		}
		i := slices.IndexFunc(d.gop[next:], func(g gopFrame) bool { return g.frame.CapturedAt.Equal(o.CapturedAt) })
		if i < 0 {
			continue
		}
		for j := next; j <= next+i; j++ {
			d.gop[j].out = true
		}
	}
}

// fallback replaces hardware session old by a software session and replays
// the frames since the last keyframe, returning the pictures the hardware
// had not returned.
func (d *decoder) fallback(ctx context.Context, old *decSession, reason Reason, cause error) ([]hal.VideoFrame, error) {
	now := d.sel.opts.Clock.Now()
	d.sel.failed(old.id)
	d.hwFailed = true
	d.mu.Lock()
	from := d.path
	d.cur = nil
	d.path = Path{Reason: reason, Detail: cause.Error(), Fallbacks: from.Fallbacks + 1, Since: now}
	d.mu.Unlock()
	d.closeInBackground(old)
	gop := d.gop
	d.gop, d.gopBytes, d.quiet, d.busy = nil, 0, 0, 0
	d.log.Warn("hardware video decoder failed; continuing in software",
		"device", from.Device, "reason", reason, "err", cause, "replay", len(gop))
	if len(gop) > 0 && !gop[0].frame.Keyframe {
		d.log.Warn("replay does not start at a keyframe; pictures may be damaged until the next one", "frames", len(gop))
	}
	s, err := d.reopen(ctx)
	if err != nil {
		return nil, fmt.Errorf("codecsel: decode after %s: %w", reason, err)
	}
	var out []hal.VideoFrame
	var errs []error
	for _, g := range gop {
		o, err := s.dec.Decode(ctx, g.frame)
		if g.out {
			continue // the hardware returned these pictures already
		}
		out = append(out, o...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	d.log.Info("video decoder continues in software", "device", s.id, "frames", len(gop))
	return out, errors.Join(errs...)
}

func (d *decoder) reopen(ctx context.Context) (*decSession, error) {
	o, reason, detail, err := pick(ctx, d.sel, d.codec, 0, 0, !d.hwFailed, func(f hal.VideoDecoderFactory) (hal.VideoDecoder, error) {
		return f.NewVideoDecoder(ctx, d.codec)
	})
	if err != nil {
		return nil, fmt.Errorf("codecsel: reopen decoder: %w", err)
	}
	s := &decSession{dec: o.sess, id: o.info.ID, hw: o.hw, release: o.release}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hwFailed {
		reason, detail = d.path.Reason, d.path.Detail
	}
	d.cur = s
	d.path = pathOf(o, reason, detail, d.path.Fallbacks, d.sel.opts.Clock.Now())
	return s, nil
}

func (d *decoder) closeInBackground(s *decSession) {
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		defer s.release()
		if err := s.dec.Close(); err != nil {
			d.log.Debug("close failed hardware decoder", "device", s.id, "err", err)
		}
	}()
}

// Close implements hal.VideoDecoder. It waits for a running Decode and for
// the closing of hardware sessions that failed, and is idempotent.
func (d *decoder) Close() error {
	d.decMu.Lock()
	defer d.decMu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.mu.Lock()
	s := d.cur
	d.cur = nil
	d.mu.Unlock()
	var err error
	if s != nil {
		if cerr := s.dec.Close(); cerr != nil {
			err = fmt.Errorf("codecsel: close decoder on %s: %w", s.id, cerr)
		}
		s.release()
	}
	d.bg.Wait()
	return err
}
