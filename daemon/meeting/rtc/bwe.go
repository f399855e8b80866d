package rtc

import (
	"fmt"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/logging"
	"github.com/pion/rtp"
)

// estimator is GCC's send-side bandwidth estimator with two changes:
//
//   - packets pass straight through (passPacer) rather than through pion's
//     leaky bucket pacer, which looks writers up by SSRC and so drops every
//     RTX retransmission, and whose queue has no bound;
//   - target changes are signalled on a channel that the peer's bitrate
//     loop, an owned goroutine, reads.
type estimator struct {
	*gcc.SendSideBWE
	pacer   *passPacer
	changed chan struct{}
}

func newEstimator(start, minBps, maxBps int, logs logging.LoggerFactory) (*estimator, error) {
	pacer := &passPacer{writers: map[uint32]interceptor.RTPWriter{}}
	bwe, err := gcc.NewSendSideBWE(
		gcc.SendSideBWEInitialBitrate(start),
		gcc.SendSideBWEMinBitrate(minBps),
		gcc.SendSideBWEMaxBitrate(maxBps),
		gcc.SendSideBWEPacer(pacer),
		gcc.WithLoggerFactory(logs),
	)
	if err != nil {
		return nil, fmt.Errorf("create GCC estimator: %w", err)
	}
	e := &estimator{SendSideBWE: bwe, pacer: pacer, changed: make(chan struct{}, 1)}
	// GCC calls this in a goroutine of its own; a non-blocking send lets
	// that goroutine end at once.
	bwe.OnTargetBitrateChange(func(int) {
		select {
		case e.changed <- struct{}{}:
		default:
		}
	})
	return e, nil
}

// AddStream registers the stream with GCC and routes its RTX and FEC
// SSRCs to the same writer, so retransmissions are sent and counted.
func (e *estimator) AddStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	out := e.SendSideBWE.AddStream(info, writer)
	e.pacer.alias(info.SSRCRetransmission, info.SSRC)
	e.pacer.alias(info.SSRCForwardErrorCorrection, info.SSRC)
	return out
}

// passPacer implements gcc.Pacer without pacing. Bursts (keyframes) leave
// at once, as with pion's default (no congestion control) setup.
type passPacer struct {
	mu      sync.RWMutex
	writers map[uint32]interceptor.RTPWriter
}

var _ gcc.Pacer = (*passPacer)(nil)

func (p *passPacer) AddStream(ssrc uint32, w interceptor.RTPWriter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writers[ssrc] = w
}

func (p *passPacer) alias(ssrc, primary uint32) {
	if ssrc == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if w, ok := p.writers[primary]; ok {
		p.writers[ssrc] = w
	}
}

func (p *passPacer) Write(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	p.mu.RLock()
	w, ok := p.writers[h.SSRC]
	p.mu.RUnlock()
	if !ok {
		return 0, fmt.Errorf("%w: %d", gcc.ErrUnknownStream, h.SSRC)
	}
	return w.Write(h, payload, a)
}

func (p *passPacer) SetTargetBitrate(int) {}
func (p *passPacer) Close() error         { return nil }

// videoShare splits a congestion control target: audio keeps its fixed
// bitrate (speech matters more than pixels in a meeting) and video gets the
// rest, not below floor (an encoder asked for less than it can do makes
// garbage, not fewer bits; GCC's own minimum keeps target above floor+audio
// anyway), then capped by the configured ceiling and by every limit the
// remote set (REMB, b=AS/TIAS), which win over the floor.
func videoShare(target, audio, floor, ceiling int, remoteCaps ...int) int {
	v := max(target-audio, floor)
	v = min(v, ceiling)
	for _, c := range remoteCaps {
		if c > 0 {
			v = min(v, c)
		}
	}
	return v
}
