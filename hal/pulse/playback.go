package pulse

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jfreymuth/pulse/proto"

	"github.com/atriumroom/atrium/hal"
)

// channelMap is the pulse channel map for a HAL channel count.
func channelMap(channels int) proto.ChannelMap {
	if channels == 1 {
		return proto.ChannelMap{proto.ChannelMono}
	}
	return proto.ChannelMap{proto.ChannelFrontLeft, proto.ChannelFrontRight}
}

func normVolumes(channels int) proto.ChannelVolumes {
	v := make(proto.ChannelVolumes, channels)
	for i := range v {
		v[i] = uint32(proto.VolumeNorm)
	}
	return v
}

// bytesFor is the size of d of S16LE audio in f, rounded down to whole
// frames and at least one frame.
func bytesFor(f hal.AudioFormat, d time.Duration) uint32 {
	frame := int64(2 * f.Channels)
	n := int64(f.SampleRate) * int64(d) / int64(time.Second) * frame
	return uint32(max(n, frame))
}

// streamState is what a stream's connection handler reports to its reader
// or writer: more room (playback), more data (capture), or the end.
type streamState struct {
	mu   sync.Mutex
	wake chan struct{} // capacity 1: "something changed, look again"
	err  error         // why the server side ended, once it has
}

func newStreamState() streamState { return streamState{wake: make(chan struct{}, 1)} }

func (s *streamState) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// end records why the stream ended, once, and wakes the waiter.
func (s *streamState) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.signal()
}

// playback is an open playback stream. It has a connection of its own.
type playback struct {
	d      *Driver
	t      transport
	format hal.AudioFormat
	sink   string
	index  uint32
	frame  int

	state     streamState
	budget    int // bytes the server asked for and has not been sent; under state.mu
	underruns int // under state.mu

	writeMu   sync.Mutex // one writer at a time
	closeOnce sync.Once
	closed    chan struct{}
}

var _ hal.AudioPlayback = (*playback)(nil)

func openPlayback(ctx context.Context, d *Driver, sink string, f hal.AudioFormat) (*playback, error) {
	p := &playback{d: d, format: f, sink: sink, frame: 2 * f.Channels, state: newStreamState(), closed: make(chan struct{})}
	t, err := d.connect(ctx, p.handle)
	if err != nil {
		return nil, err
	}
	p.t = t
	// The server keeps about Latency queued: it asks for more whenever a
	// quarter of that has played. Prebuffering is left to the server (it
	// starts once the target is nearly full, and again after an underrun).
	req := proto.CreatePlaybackStream{
		SampleSpec:            proto.SampleSpec{Format: proto.FormatInt16LE, Channels: byte(f.Channels), Rate: uint32(f.SampleRate)},
		ChannelMap:            channelMap(f.Channels),
		SinkIndex:             proto.Undefined,
		SinkName:              sink,
		BufferMaxLength:       proto.Undefined,
		BufferTargetLength:    bytesFor(f, d.latency),
		BufferPrebufferLength: proto.Undefined,
		BufferMinimumRequest:  bytesFor(f, d.latency/4),
		ChannelVolumes:        normVolumes(f.Channels),
		// Never moved elsewhere by the server: if the sink goes, the
		// stream ends and the pipeline hears of it (hal.ErrUnplugged).
		NoMove:        true,
		AdjustLatency: true,
		Properties: proto.PropList{
			"media.name":       proto.PropListString(d.client + " playback"),
			"application.name": proto.PropListString(d.client),
		},
	}
	var reply proto.CreatePlaybackStreamReply
	if err := t.request(&req, &reply); err != nil {
		_ = t.close()
		if isNoSuchEntity(err) {
			return nil, fmt.Errorf("create playback stream: %w (%v)", hal.ErrUnplugged, err)
		}
		return nil, fmt.Errorf("create playback stream: %w", err)
	}
	p.index = reply.StreamIndex
	p.state.mu.Lock()
	p.budget += int(reply.Missing)
	p.state.mu.Unlock()
	p.state.signal()
	d.log.Debug("playback stream open", "sink", sink, "rate", f.SampleRate, "channels", f.Channels,
		"tlength", reply.BufferTargetLength, "minreq", reply.BufferMinimumRequest, "sink_latency_us", reply.SinkLatency)
	return p, nil
}

// handle runs on the connection's reader. The connection carries only this
// stream, so every stream message is about it.
func (p *playback) handle(msg any) {
	switch m := msg.(type) {
	case *proto.Request:
		p.state.mu.Lock()
		p.budget += int(m.Length)
		p.state.mu.Unlock()
		p.state.signal()
	case *proto.Underflow:
		p.state.mu.Lock()
		p.underruns++
		p.state.mu.Unlock()
	case *proto.PlaybackStreamKilled:
		p.state.end(fmt.Errorf("the server ended the stream (sink %s removed): %w", p.sink, hal.ErrUnplugged))
	case connClosed:
		p.state.end(fmt.Errorf("%w: %w", ErrConnectionLost, hal.ErrUnplugged))
	}
}

func (p *playback) Format() hal.AudioFormat { return p.format }

// Write implements hal.AudioPlayback: it sends samples as fast as the
// server asks for them, so it blocks once about Latency of audio is queued.
func (p *playback) Write(ctx context.Context, samples []int16) error {
	op := "write to " + p.sink
	if len(samples)%p.format.Channels != 0 {
		return fmt.Errorf("%s: %d samples is not a whole number of %d-channel frames", op, len(samples), p.format.Channels)
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	buf := make([]byte, 2*len(samples))
	for i, s := range samples {
		binary.LittleEndian.PutUint16(buf[2*i:], uint16(s))
	}
	for len(buf) > 0 {
		n, err := p.waitBudget(ctx, len(buf))
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if err := p.t.send(p.index, buf[:n]); err != nil {
			select {
			case <-p.closed:
				return fmt.Errorf("%s: %w", op, hal.ErrClosed)
			default:
			}
			return fmt.Errorf("%s: %w: %w", op, ErrConnectionLost, errors.Join(hal.ErrUnplugged, err))
		}
		buf = buf[n:]
	}
	return nil
}

// waitBudget blocks until the server wants at least one frame, and takes
// up to want bytes (whole frames) of what it wants.
func (p *playback) waitBudget(ctx context.Context, want int) (int, error) {
	for {
		select {
		case <-p.closed:
			return 0, hal.ErrClosed
		default:
		}
		p.state.mu.Lock()
		err := p.state.err
		n := min(p.budget, want) / p.frame * p.frame
		if err == nil && n > 0 {
			p.budget -= n
		}
		p.state.mu.Unlock()
		if err != nil {
			return 0, err
		}
		if n > 0 {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-p.closed:
			return 0, hal.ErrClosed
		case <-p.state.wake:
		}
	}
}

// Underruns counts the times the server ran out of audio to play since the
// stream opened.
func (p *playback) Underruns() int {
	p.state.mu.Lock()
	defer p.state.mu.Unlock()
	return p.underruns
}

// Close implements hal.AudioPlayback. What is still queued is dropped. It
// is idempotent and wakes a blocked Write.
func (p *playback) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closed)
		p.state.mu.Lock()
		ended := p.state.err != nil
		p.state.mu.Unlock()
		if !ended {
			if derr := p.t.request(&proto.DeletePlaybackStream{StreamIndex: p.index}, nil); derr != nil {
				p.d.log.Debug("delete playback stream", "sink", p.sink, "err", derr)
			}
		}
		// A Write between its wait and its send fails on the closed
		// connection and reports hal.ErrClosed.
		err = p.t.close()
	})
	if err != nil {
		return fmt.Errorf("close playback on %s: %w", p.sink, err)
	}
	return nil
}
