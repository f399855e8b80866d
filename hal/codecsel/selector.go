package codecsel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// Defaults for Options.
const (
	// DefaultStallFrames is how many hardware calls in a row may return no
	// output before the session counts as stalled. Hardware encoders and
	// decoders used for real-time video hold back 0 to 4 frames, so 10
	// (a third of a second at 30 fps) is well past any pipeline.
	DefaultStallFrames = 10
	// DefaultStallTimeout is how long the hardware may spend in calls
	// without producing output, and so the longest a single call may block,
	// before the session counts as stalled: a second of frozen video is
	// noticed but does not end a call.
	DefaultStallTimeout = time.Second
	// DefaultCooldown is how long new sessions avoid a hardware factory
	// whose session failed at run time.
	DefaultCooldown = 30 * time.Second
	// DefaultMaxReplayBytes bounds the coded frames a decoder keeps since
	// the last keyframe to replay into software: a 3 s GOP at 4 Mbps is
	// 1.5 MB, so this only trips on streams with very rare keyframes.
	DefaultMaxReplayBytes = 16 << 20
)

// Options configure Encoders and Decoders. The zero value uses the
// defaults and the system clock.
type Options struct {
	// Logger receives session openings (debug) and fallbacks (warning);
	// nil discards.
	Logger *slog.Logger
	// Clock times stalls; nil is the system clock.
	Clock Clock
	// StallFrames: 0 means DefaultStallFrames.
	StallFrames int
	// StallTimeout: 0 means DefaultStallTimeout.
	StallTimeout time.Duration
	// Cooldown: 0 means DefaultCooldown, negative disables it.
	Cooldown time.Duration
	// MaxReplayBytes (decoders): 0 means DefaultMaxReplayBytes. When the
	// coded frames since the last keyframe exceed it the oldest are
	// dropped, and a fallback then resumes cleanly only at the next
	// keyframe.
	MaxReplayBytes int
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.StallFrames <= 0 {
		o.StallFrames = DefaultStallFrames
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.Cooldown == 0 {
		o.Cooldown = DefaultCooldown
	}
	if o.MaxReplayBytes <= 0 {
		o.MaxReplayBytes = DefaultMaxReplayBytes
	}
	return o
}

// factory is what encoder and decoder factories have in common.
type factory interface {
	hal.Device
	Codecs() []hal.CodecCaps
}

// selector holds the factories, their open-session counts and cooldowns.
// Counts are kept by device ID, so they survive SetFactories replacing a
// factory value with a new one for the same device.
type selector[F factory] struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	factories []F
	open      map[string]int
	coolUntil map[string]time.Time
}

func newSelector[F factory](factories []F, opts Options) *selector[F] {
	opts = opts.withDefaults()
	return &selector[F]{
		opts:      opts,
		log:       opts.Logger,
		factories: slices.Clone(factories),
		open:      make(map[string]int),
		coolUntil: make(map[string]time.Time),
	}
}

func (s *selector[F]) setFactories(fs []F) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.factories = slices.Clone(fs)
}

func (s *selector[F]) list() []F {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.factories)
}

// sessions reports how many sessions are open on the factory with id.
func (s *selector[F]) sessions(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open[id]
}

// codecs merges the factories' capabilities, one entry per codec: the
// largest size any factory takes, Hardware if any is hardware, and a
// session limit only when every factory has one (their sum).
func (s *selector[F]) codecs() []hal.CodecCaps {
	var out []hal.CodecCaps
	for _, f := range s.list() {
		for _, c := range f.Codecs() {
			i := slices.IndexFunc(out, func(o hal.CodecCaps) bool { return o.Codec == c.Codec })
			if i < 0 {
				out = append(out, c)
				continue
			}
			o := &out[i]
			o.MaxWidth, o.MaxHeight = max(o.MaxWidth, c.MaxWidth), max(o.MaxHeight, c.MaxHeight)
			o.Hardware = o.Hardware || c.Hardware
			if o.MaxSessions == 0 || c.MaxSessions == 0 {
				o.MaxSessions = 0
			} else {
				o.MaxSessions += c.MaxSessions
			}
		}
	}
	slices.SortStableFunc(out, func(a, b hal.CodecCaps) int { return cmp.Compare(a.Codec, b.Codec) })
	return out
}

// acquire takes a session slot on the factory with id, or reports that
// its limit is reached.
func (s *selector[F]) acquire(id string, limit int) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit > 0 && s.open[id] >= limit {
		return nil, false
	}
	s.open[id]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.open[id]--; s.open[id] <= 0 {
				delete(s.open, id)
			}
		})
	}, true
}

func (s *selector[F]) cooling(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.coolUntil[id]
	if !ok {
		return false
	}
	if !s.opts.Clock.Now().Before(until) {
		delete(s.coolUntil, id)
		return false
	}
	return true
}

// failed starts the cooldown of the factory with id.
func (s *selector[F]) failed(id string) {
	if s.opts.Cooldown < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.coolUntil[id] = s.opts.Clock.Now().Add(s.opts.Cooldown)
}

// capsFor returns f's capabilities for codec.
func capsFor(f factory, codec hal.Codec) (hal.CodecCaps, bool) {
	for _, c := range f.Codecs() {
		if c.Codec == codec {
			return c, true
		}
	}
	return hal.CodecCaps{}, false
}

// fits reports whether a w×h picture is within caps; 0 means unknown, on
// either side.
func fits(c hal.CodecCaps, w, h int) bool {
	return (c.MaxWidth == 0 || w <= c.MaxWidth) && (c.MaxHeight == 0 || h <= c.MaxHeight)
}

// opened is a session and where it came from.
type opened[S any] struct {
	sess    S
	info    hal.Info
	hw      bool
	release func()
}

// pick opens a session for codec at w×h (0×0: size unknown): on the first
// suitable hardware factory when tryHardware, else, or when none would,
// on the first software factory. It returns the reason the session is
// where it is (for software: why not hardware) and the detail behind it.
func pick[F factory, S any](ctx context.Context, s *selector[F], codec hal.Codec, w, h int, tryHardware bool, open func(F) (S, error)) (opened[S], Reason, string, error) {
	reason, detail := ReasonNoHardware, ""
	var lastErr error
	factories := s.list()
	if tryHardware {
		for _, f := range factories {
			c, ok := capsFor(f, codec)
			if !ok || !c.Hardware || !fits(c, w, h) {
				continue
			}
			info := f.Info()
			if s.cooling(info.ID) {
				reason, detail = ReasonCooldown, info.ID+" failed recently"
				continue
			}
			release, ok := s.acquire(info.ID, c.MaxSessions)
			if !ok {
				reason, detail = ReasonSessionLimit, fmt.Sprintf("%s has %d sessions open", info.ID, c.MaxSessions)
				continue
			}
			sess, err := open(f)
			if err != nil {
				release()
				lastErr = err
				if errors.Is(err, hal.ErrBusy) {
					reason, detail = ReasonSessionLimit, err.Error()
				} else {
					reason, detail = ReasonOpenFailed, err.Error()
				}
				s.log.Warn("hardware codec refused a session", "codec", codec, "device", info.ID, "err", err)
				if ctx.Err() != nil {
					return opened[S]{}, reason, detail, fmt.Errorf("open %s session on %s: %w", codec, info.ID, err)
				}
				continue
			}
			return opened[S]{sess: sess, info: info, hw: true, release: release}, ReasonHardware, "", nil
		}
	}
	for _, f := range factories {
		c, ok := capsFor(f, codec)
		if !ok || c.Hardware || !fits(c, w, h) {
			continue
		}
		sess, err := open(f)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		release, _ := s.acquire(f.Info().ID, 0)
		return opened[S]{sess: sess, info: f.Info(), release: release}, reason, detail, nil
	}
	if lastErr != nil {
		return opened[S]{}, reason, detail, fmt.Errorf("open %s session %dx%d: %w: %w", codec, w, h, ErrNoCodec, lastErr)
	}
	return opened[S]{}, reason, detail, fmt.Errorf("open %s session %dx%d: %w", codec, w, h, ErrNoCodec)
}

// pathOf describes a session opened by pick.
func pathOf[S any](o opened[S], reason Reason, detail string, fallbacks int, now time.Time) Path {
	return Path{
		Device:    o.info.ID,
		Name:      o.info.Name,
		Driver:    o.info.Driver,
		Hardware:  o.hw,
		Reason:    reason,
		Detail:    detail,
		Fallbacks: fallbacks,
		Since:     now,
	}
}

// callResult is what hwCall measured about one hardware call.
type callResult[T any] struct {
	out     T
	took    time.Duration
	stalled bool // the budget ran out and the call's context was cancelled
}

// hwCall runs one hardware call under the stall budget: the call's context
// is cancelled with errStalled when budget runs out.
func hwCall[T any](ctx context.Context, clock Clock, budget time.Duration, call func(context.Context) (T, error)) (callResult[T], error) {
	callCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := clock.AfterFunc(max(budget, 0), func() { cancel(errStalled) })
	start := clock.Now()
	out, err := call(callCtx)
	stop()
	r := callResult[T]{out: out, took: clock.Now().Sub(start), stalled: errors.Is(context.Cause(callCtx), errStalled)}
	return r, err
}
