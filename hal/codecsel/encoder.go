package codecsel

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// EncodersID is the hal.Info ID of Encoders.
const EncodersID = "codecsel:video-encoder"

// DecodersID is the hal.Info ID of Decoders.
const DecodersID = "codecsel:video-decoder"

// DriverName is the hal.Info Driver of Encoders and Decoders.
const DriverName = "codecsel"

// Encoders is a hal.VideoEncoderFactory that opens each session on
// hardware when it can and on software otherwise, and moves sessions from
// hardware to software when the hardware fails (see the package
// documentation). Its sessions implement PathReporter. It is safe for
// concurrent use.
type Encoders struct {
	sel *selector[hal.VideoEncoderFactory]
}

var _ hal.VideoEncoderFactory = (*Encoders)(nil)

// NewEncoders returns a selector over factories, in order of preference
// within hardware and within software.
func NewEncoders(factories []hal.VideoEncoderFactory, opts Options) *Encoders {
	return &Encoders{sel: newSelector(factories, opts)}
}

// SetFactories replaces the factories (after a hotplug). Open sessions keep
// theirs, and session counts carry over for factories with the same ID.
func (e *Encoders) SetFactories(factories []hal.VideoEncoderFactory) {
	e.sel.setFactories(factories)
}

// Sessions reports how many sessions opened here are running on the
// factory with the given device ID.
func (e *Encoders) Sessions(id string) int { return e.sel.sessions(id) }

// Info implements hal.Device.
func (e *Encoders) Info() hal.Info {
	return hal.Info{ID: EncodersID, Kind: hal.KindVideoEncoder, Name: "Video encoders (hardware first, software fallback)", Driver: DriverName}
}

// Codecs implements hal.VideoEncoderFactory: the union of the factories'
// codecs.
func (e *Encoders) Codecs() []hal.CodecCaps { return e.sel.codecs() }

// NewVideoEncoder implements hal.VideoEncoderFactory. The session it
// returns implements PathReporter.
func (e *Encoders) NewVideoEncoder(ctx context.Context, cfg hal.VideoEncoderConfig) (hal.VideoEncoder, error) {
	s := &encoder{
		sel: e.sel,
		log: e.sel.log.With("codec", cfg.Codec),
		cfg: cfg,
	}
	o, reason, detail, err := pick(ctx, e.sel, cfg.Codec, cfg.Width, cfg.Height, true, func(f hal.VideoEncoderFactory) (hal.VideoEncoder, error) {
		return f.NewVideoEncoder(ctx, cfg)
	})
	if err != nil {
		return nil, fmt.Errorf("codecsel: new encoder: %w", err)
	}
	s.cur = &encSession{enc: o.sess, id: o.info.ID, hw: o.hw, release: o.release}
	s.path = pathOf(o, reason, detail, 0, e.sel.opts.Clock.Now())
	s.log.Debug("opened video encoder", "device", o.info.ID, "hardware", o.hw, "reason", reason, "detail", detail)
	return s, nil
}

// encSession is one underlying encoder session.
type encSession struct {
	enc     hal.VideoEncoder
	id      string
	hw      bool
	release func() // the session slot
}

// pendingFrame is an input the hardware took but has not returned.
type pendingFrame struct {
	n     uint64 // input number, to find the frame again
	frame hal.VideoFrame
	owned bool // frame.Data is a copy, not the caller's buffer
}

// encoder is one session of Encoders.
type encoder struct {
	sel *selector[hal.VideoEncoderFactory]
	log *slog.Logger

	closing atomic.Bool // Close was called: SetBitrate fails fast

	// encMu serialises Encode and Close, and guards the fields below it.
	encMu    sync.Mutex
	cfg      hal.VideoEncoderConfig
	pending  []pendingFrame
	inputs   uint64        // frames given to hardware so far
	quiet    int           // hardware calls in a row without output
	busy     time.Duration // time spent in hardware calls since the last output
	hwFailed bool          // the session has left hardware for good
	closed   bool

	// mu guards the current session and what SetBitrate and ForceKeyframe
	// change, so they never wait for an Encode in progress.
	mu       sync.Mutex
	cur      *encSession // nil after a fallback that could not reopen
	path     Path
	bitrate  int  // the last bitrate a session accepted; 0: cfg's
	keyframe bool // requested while there was no session

	bg sync.WaitGroup // closes of failed hardware sessions
}

var (
	_ hal.VideoEncoder = (*encoder)(nil)
	_ PathReporter     = (*encoder)(nil)
)

// CodecPath implements PathReporter.
func (e *encoder) CodecPath() Path {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.path
}

func (e *encoder) current() *encSession {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cur
}

// Encode implements hal.VideoEncoder. On hardware, an error or a stall
// moves the session to software, and the frames the hardware had not
// returned, this one included, are encoded there: the caller gets their
// output from this call, starting with a keyframe, and no error unless
// software fails too. An error because ctx is done is returned as is.
func (e *encoder) Encode(ctx context.Context, frame hal.VideoFrame) ([]hal.EncodedFrame, error) {
	e.encMu.Lock()
	defer e.encMu.Unlock()
	if e.closed {
		return nil, fmt.Errorf("codecsel: encode: %w", hal.ErrClosed)
	}
	s := e.current()
	if s == nil {
		var err error
		if s, err = e.reopen(ctx, frame.Width, frame.Height); err != nil {
			return nil, err
		}
	}
	if !s.hw {
		return s.enc.Encode(ctx, frame)
	}
	return e.encodeHardware(ctx, s, frame)
}

func (e *encoder) encodeHardware(ctx context.Context, s *encSession, frame hal.VideoFrame) ([]hal.EncodedFrame, error) {
	n := e.inputs
	e.inputs++
	e.pending = append(e.pending, pendingFrame{n: n, frame: frame})
	opts := e.sel.opts
	r, err := hwCall(ctx, opts.Clock, opts.StallTimeout-e.busy, func(ctx context.Context) ([]hal.EncodedFrame, error) {
		return s.enc.Encode(ctx, frame)
	})
	out := r.out
	e.busy += r.took
	e.matchOutputs(out)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up, which says nothing about the hardware.
			// The frame counts as not given.
			e.pending = slices.DeleteFunc(e.pending, func(p pendingFrame) bool { return p.n == n })
			return out, err
		}
		reason := ReasonError
		if r.stalled {
			reason = ReasonStall
			err = fmt.Errorf("call blocked past the stall timeout of %v: %w", opts.StallTimeout, err)
		}
		more, ferr := e.fallback(ctx, s, reason, err)
		return append(out, more...), ferr
	}
	if len(out) > 0 {
		e.quiet, e.busy = 0, 0
	} else {
		e.quiet++
	}
	switch {
	case e.quiet >= opts.StallFrames:
		more, ferr := e.fallback(ctx, s, ReasonStall, fmt.Errorf("no output for %d frames", e.quiet))
		return append(out, more...), ferr
	case e.busy >= opts.StallTimeout:
		more, ferr := e.fallback(ctx, s, ReasonStall, fmt.Errorf("no output after %v in the encoder", e.busy))
		return append(out, more...), ferr
	}
	// The caller may reuse its buffer once Encode returns; what may have
	// to be encoded again must be kept.
	for i := range e.pending {
		if p := &e.pending[i]; !p.owned {
			p.frame.Data = slices.Clone(p.frame.Data)
			p.owned = true
		}
	}
	return out, nil
}

// matchOutputs removes from pending the inputs out answers: by CapturedAt
// (an encoder that skipped frames answers the earlier ones with a later
// one), or in order when the output carries none.
func (e *encoder) matchOutputs(out []hal.EncodedFrame) {
	for _, o := range out {
		if len(e.pending) == 0 {
			return
		}
		if o.CapturedAt.IsZero() {
			e.pending = e.pending[1:]
			continue
		}
		i := slices.IndexFunc(e.pending, func(p pendingFrame) bool { return p.frame.CapturedAt.Equal(o.CapturedAt) })
		if i >= 0 {
			e.pending = e.pending[i+1:]
		}
		// No match: a second packet for an input already answered.
	}
}

// fallback replaces hardware session old by a software session and encodes
// the pending frames there.
func (e *encoder) fallback(ctx context.Context, old *encSession, reason Reason, cause error) ([]hal.EncodedFrame, error) {
	now := e.sel.opts.Clock.Now()
	e.sel.failed(old.id)
	e.hwFailed = true
	e.mu.Lock()
	from := e.path
	e.cur = nil
	e.path = Path{Reason: reason, Detail: cause.Error(), Fallbacks: from.Fallbacks + 1, Since: now}
	e.mu.Unlock()
	e.closeInBackground(old)
	e.log.Warn("hardware video encoder failed; continuing in software",
		"device", from.Device, "reason", reason, "err", cause, "replay", len(e.pending))
	pending := e.pending
	e.pending, e.quiet, e.busy = nil, 0, 0
	w, h := e.cfg.Width, e.cfg.Height
	if len(pending) > 0 {
		w, h = pending[0].frame.Width, pending[0].frame.Height
	}
	s, err := e.reopen(ctx, w, h)
	if err != nil {
		return nil, fmt.Errorf("codecsel: encode after %s: %w", reason, err)
	}
	// A new session starts with a keyframe anyway; asking costs nothing
	// and makes it so for encoders that would not.
	s.enc.ForceKeyframe()
	var out []hal.EncodedFrame
	for _, p := range pending {
		o, err := s.enc.Encode(ctx, p.frame)
		out = append(out, o...)
		if err != nil {
			return out, err
		}
	}
	e.log.Info("video encoder continues in software", "device", s.id, "frames", len(pending))
	return out, nil
}

// reopen opens a session after a fallback, or after an earlier reopen
// failed: software only once the session has left hardware.
func (e *encoder) reopen(ctx context.Context, w, h int) (*encSession, error) {
	cfg := e.cfg
	cfg.Width, cfg.Height = w, h
	e.mu.Lock()
	if e.bitrate > 0 {
		cfg.BitrateBps = e.bitrate
	}
	e.mu.Unlock()
	o, reason, detail, err := pick(ctx, e.sel, cfg.Codec, w, h, !e.hwFailed, func(f hal.VideoEncoderFactory) (hal.VideoEncoder, error) {
		return f.NewVideoEncoder(ctx, cfg)
	})
	if err != nil {
		return nil, fmt.Errorf("codecsel: reopen encoder: %w", err)
	}
	s := &encSession{enc: o.sess, id: o.info.ID, hw: o.hw, release: o.release}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hwFailed {
		// Keep the failure as the reason: it is why this is software.
		reason, detail = e.path.Reason, e.path.Detail
	}
	e.cur = s
	e.path = pathOf(o, reason, detail, e.path.Fallbacks, e.sel.opts.Clock.Now())
	if e.keyframe {
		s.enc.ForceKeyframe()
		e.keyframe = false
	}
	return s, nil
}

func (e *encoder) closeInBackground(s *encSession) {
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		defer s.release()
		if err := s.enc.Close(); err != nil {
			e.log.Debug("close failed hardware encoder", "device", s.id, "err", err)
		}
	}()
}

// ForceKeyframe implements hal.VideoEncoder.
func (e *encoder) ForceKeyframe() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		e.keyframe = true
		return
	}
	e.cur.enc.ForceKeyframe()
}

// SetBitrate implements hal.VideoEncoder. The bitrate carries over to a
// software session after a fallback.
func (e *encoder) SetBitrate(bps int) error {
	if e.closing.Load() {
		return fmt.Errorf("codecsel: set bitrate: %w", hal.ErrClosed)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur != nil {
		if err := e.cur.enc.SetBitrate(bps); err != nil {
			return err
		}
	}
	// With no session the next one opens at this rate, and validates it.
	e.bitrate = bps
	return nil
}

// Close implements hal.VideoEncoder. It waits for a running Encode and for
// the closing of hardware sessions that failed, and is idempotent.
func (e *encoder) Close() error {
	e.closing.Store(true)
	e.encMu.Lock()
	defer e.encMu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.mu.Lock()
	s := e.cur
	e.cur = nil
	e.mu.Unlock()
	var err error
	if s != nil {
		if cerr := s.enc.Close(); cerr != nil {
			err = fmt.Errorf("codecsel: close encoder on %s: %w", s.id, cerr)
		}
		s.release()
	}
	e.bg.Wait()
	return err
}
