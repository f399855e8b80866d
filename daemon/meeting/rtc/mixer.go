package rtc

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// Mixing. Every remote audio track is decoded to the speaker's format and
// the tracks are summed with clipping, rather than only the loudest played:
// in a meeting people talk over each other, and cutting between them is
// worse than the rare clip. The mixer writes to the speaker every 20 ms; a
// small queue per track absorbs network jitter.
const (
	mixStep = 20 * time.Millisecond
	// mixPrebuffer is how much a track queues before it is heard, and again
	// after it ran dry: one packet of jitter absorbed.
	mixPrebuffer = 40 * time.Millisecond
	// mixMaxQueue bounds a track's queue: beyond it the oldest audio is
	// dropped, so a burst after a stall does not become lasting delay.
	mixMaxQueue = 200 * time.Millisecond
)

// SilenceDBov is the level reported for silence (RFC 6464's floor).
const SilenceDBov = -127.0

// dBov is the RMS level of samples relative to full scale, from
// SilenceDBov to 0.
func dBov(samples []int16) float64 {
	if len(samples) == 0 {
		return SilenceDBov
	}
	var sum float64
	for _, s := range samples {
		v := float64(s)
		sum += v * v
	}
	return powerToDBov(sum / float64(len(samples)))
}

// powerToDBov converts a mean square sample value to dBov.
func powerToDBov(meanSquare float64) float64 {
	if meanSquare <= 0 {
		return SilenceDBov
	}
	db := 10 * math.Log10(meanSquare/(32767.0*32767.0))
	return max(db, SilenceDBov)
}

// rfc6464Level is the audio level header extension's value: -dBov, 0..127.
func rfc6464Level(db float64) int {
	return int(math.Round(min(max(-db, 0), 127)))
}

// mixer plays the sum of its inputs on the speaker. It runs only while it
// has inputs: the first add opens the speaker, the last remove closes it,
// so an idle meeting holds no device and no goroutine.
type mixer struct {
	speaker hal.Speaker
	format  hal.AudioFormat
	log     *slog.Logger

	life   sync.Mutex // serialises starting and stopping the loop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // guards inputs
	inputs map[*mixInput]struct{}
}

func newMixer(speaker hal.Speaker, format hal.AudioFormat, log *slog.Logger) *mixer {
	return &mixer{speaker: speaker, format: format, log: log, inputs: map[*mixInput]struct{}{}}
}

func (m *mixer) samples(d time.Duration) int {
	return int(int64(m.format.SampleRate)*int64(d)/int64(time.Second)) * m.format.Channels
}

// add registers an input, starting the loop if it is the first.
func (m *mixer) add() *mixInput {
	m.life.Lock()
	defer m.life.Unlock()
	in := &mixInput{prebuffer: m.samples(mixPrebuffer), maxQueue: m.samples(mixMaxQueue)}
	m.mu.Lock()
	m.inputs[in] = struct{}{}
	first := len(m.inputs) == 1
	m.mu.Unlock()
	if first {
		ctx, cancel := context.WithCancel(context.Background())
		m.cancel = cancel
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.run(ctx)
		}()
	}
	return in
}

// remove unregisters an input, stopping the loop (and closing the
// speaker) if it was the last.
func (m *mixer) remove(in *mixInput) {
	m.life.Lock()
	defer m.life.Unlock()
	m.mu.Lock()
	delete(m.inputs, in)
	last := len(m.inputs) == 0
	m.mu.Unlock()
	if last && m.cancel != nil {
		m.cancel()
		m.wg.Wait()
		m.cancel = nil
	}
}

func (m *mixer) run(ctx context.Context) {
	pb, err := m.speaker.Open(ctx, m.format)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Error("open speaker; remote audio will not be heard", "speaker", m.speaker.Info().ID, "err", err)
		}
		return
	}
	defer func() {
		if err := pb.Close(); err != nil {
			m.log.Debug("close speaker", "err", err)
		}
	}()
	step := m.samples(mixStep)
	acc := make([]int32, step)
	ticker := time.NewTicker(mixStep)
	defer ticker.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		clear(acc)
		m.mu.Lock()
		for in := range m.inputs {
			in.pull(acc)
		}
		m.mu.Unlock()
		out := make([]int16, step) // the device may keep it
		for i, v := range acc {
			out[i] = int16(min(max(v, math.MinInt16), math.MaxInt16))
		}
		if err := pb.Write(ctx, out); err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, hal.ErrUnplugged) || errors.Is(err, hal.ErrClosed) {
				m.log.Error("speaker gone; remote audio will not be heard", "err", err)
				return
			}
			if !warned {
				m.log.Warn("write to speaker", "err", err)
				warned = true
			}
		}
	}
}

// mixInput is one track's queue of decoded samples.
type mixInput struct {
	prebuffer, maxQueue int

	mu     sync.Mutex
	queue  []int16
	primed bool
}

func (in *mixInput) push(pcm []int16) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.queue = append(in.queue, pcm...)
	if over := len(in.queue) - in.maxQueue; over > 0 {
		in.queue = append(in.queue[:0], in.queue[over:]...)
	}
}

// pull adds up to len(acc) queued samples into acc.
func (in *mixInput) pull(acc []int32) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.primed {
		if len(in.queue) < in.prebuffer {
			return
		}
		in.primed = true
	}
	n := min(len(acc), len(in.queue))
	for i, s := range in.queue[:n] {
		acc[i] += int32(s)
	}
	in.queue = append(in.queue[:0], in.queue[n:]...)
	if len(in.queue) == 0 {
		in.primed = false // ran dry: wait for a cushion again
	}
}
