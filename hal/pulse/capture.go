package pulse

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jfreymuth/pulse/proto"

	"github.com/atriumroom/atrium/hal"
)

// captureBuffer is how much captured audio a stream holds for a reader
// that falls behind; older audio is dropped (an overrun) beyond it.
const captureBuffer = 2 * time.Second

// originWindow is how many recent packets date the stream's capture times
// (about half a second at the default latency): enough to find one that
// came on time, few enough to follow the device's clock drifting against
// the system's.
const originWindow = 50

// capture is an open record stream. It has a connection of its own; the
// server pushes audio, which waits in a ring for Read.
type capture struct {
	d       *Driver
	t       transport
	format  hal.AudioFormat
	source  string
	index   uint32
	latency time.Duration // the source's latency when the stream opened

	state streamState
	// Under state.mu:
	ring      []int16     // capacity: captureBuffer of frames
	start     int         // index in ring of the oldest unread sample
	avail     int         // unread samples in ring
	readPos   int64       // frames delivered or dropped since the stream opened
	lastEnd   int64       // frames received since the stream opened
	origins   []time.Time // per recent packet: when frame 0 was captured, by its arrival
	nextOrig  int
	partial   []byte // a packet's trailing bytes short of a whole sample
	overruns  int
	dropped   int64 // frames
	lastWarn  time.Time
	readMu    sync.Mutex
	closeOnce sync.Once
	closed    chan struct{}
}

var _ hal.AudioCapture = (*capture)(nil)

func openCapture(ctx context.Context, d *Driver, source string, f hal.AudioFormat) (*capture, error) {
	frames := int(int64(f.SampleRate) * int64(captureBuffer) / int64(time.Second))
	c := &capture{
		d: d, format: f, source: source,
		state:  newStreamState(),
		ring:   make([]int16, frames*f.Channels),
		closed: make(chan struct{}),
	}
	t, err := d.connect(ctx, c.handle)
	if err != nil {
		return nil, err
	}
	c.t = t
	// The server delivers a packet every Latency/2 and sizes the source's
	// own buffering to match (AdjustLatency).
	req := proto.CreateRecordStream{
		SampleSpec:         proto.SampleSpec{Format: proto.FormatInt16LE, Channels: byte(f.Channels), Rate: uint32(f.SampleRate)},
		ChannelMap:         channelMap(f.Channels),
		SourceIndex:        proto.Undefined,
		SourceName:         source,
		BufferMaxLength:    proto.Undefined,
		BufferFragSize:     bytesFor(f, d.latency/2),
		NoMove:             true,
		AdjustLatency:      true,
		DirectOnInputIndex: proto.Undefined,
		ChannelVolumes:     normVolumes(f.Channels),
		Properties: proto.PropList{
			"media.name":       proto.PropListString(d.client + " capture"),
			"application.name": proto.PropListString(d.client),
		},
	}
	var reply proto.CreateRecordStreamReply
	if err := t.request(&req, &reply); err != nil {
		_ = t.close()
		if isNoSuchEntity(err) {
			return nil, fmt.Errorf("create record stream: %w (%v)", hal.ErrUnplugged, err)
		}
		return nil, fmt.Errorf("create record stream: %w", err)
	}
	c.index = reply.StreamIndex
	c.state.mu.Lock()
	c.latency = time.Duration(reply.SourceLatency) * time.Microsecond
	c.state.mu.Unlock()
	d.log.Debug("record stream open", "source", source, "rate", f.SampleRate, "channels", f.Channels,
		"fragsize", reply.BufferFragSize, "source_latency_us", reply.SourceLatency)
	return c, nil
}

// handle runs on the connection's reader.
func (c *capture) handle(msg any) {
	switch m := msg.(type) {
	case *proto.DataPacket:
		c.push(m.Data, c.d.clock.Now())
	case *proto.RecordStreamKilled:
		c.state.end(fmt.Errorf("the server ended the stream (source %s removed): %w", c.source, hal.ErrUnplugged))
	case connClosed:
		c.state.end(fmt.Errorf("%w: %w", ErrConnectionLost, hal.ErrUnplugged))
	}
}

// push appends a packet that arrived at at.
func (c *capture) push(data []byte, at time.Time) {
	c.state.mu.Lock()
	if len(c.partial) > 0 {
		data = append(c.partial, data...)
		c.partial = nil
	}
	if len(data)%2 == 1 {
		c.partial = append(c.partial, data[len(data)-1])
		data = data[:len(data)-1]
	}
	ch := c.format.Channels
	n := len(data) / 2
	size := len(c.ring)
	for i := range n {
		s := int16(binary.LittleEndian.Uint16(data[2*i:]))
		if c.avail == size {
			// Full: the oldest frame goes.
			c.start = (c.start + ch) % size
			c.avail -= ch
			c.readPos++
			c.dropped++
		}
		c.ring[(c.start+c.avail)%size] = s
		c.avail++
	}
	// lastEnd counts whole frames; a packet that splits a frame is
	// counted when the frame completes.
	c.lastEnd = c.readPos + int64(c.avail/ch)
	// The packet's last frame was captured no later than it arrived: that
	// dates frame 0. A packet held up on the way (the server or this
	// process not scheduled) dates it too late; the earliest of the recent
	// packets' dates is the one least held up.
	origin := at.Add(-time.Duration(c.lastEnd * int64(time.Second) / int64(c.format.SampleRate)))
	if len(c.origins) < originWindow {
		c.origins = append(c.origins, origin)
	} else {
		c.origins[c.nextOrig] = origin
		c.nextOrig = (c.nextOrig + 1) % originWindow
	}
	var dropped int64
	if c.dropped > 0 && at.Sub(c.lastWarn) >= time.Second {
		dropped, c.dropped = c.dropped, 0
		c.overruns++
		c.lastWarn = at
	}
	c.state.mu.Unlock()
	if dropped > 0 {
		c.d.log.Warn("capture overrun: the reader fell behind; dropped audio", "source", c.source,
			"dropped", time.Duration(dropped*int64(time.Second)/int64(c.format.SampleRate)))
	}
	c.state.signal()
}

func (c *capture) Format() hal.AudioFormat { return c.format }

// Read implements hal.AudioCapture: it blocks until len(buf) of whole
// frames have been captured (at most captureBuffer's worth) and returns
// them with the capture time of the first, estimated from the arrival
// times of recent packets (the earliest-arriving, relative to its frames)
// less the source's latency as the server reported it when the stream
// opened. Audio the server drops shifts the times after it until the
// packets before the drop have left the window.
func (c *capture) Read(ctx context.Context, buf []int16) (int, time.Time, error) {
	op := "read from " + c.source
	ch := c.format.Channels
	want := min(len(buf)/ch*ch, len(c.ring))
	if want == 0 {
		return 0, time.Time{}, fmt.Errorf("%s: buffer of %d samples holds no %d-channel frame", op, len(buf), ch)
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		select {
		case <-c.closed:
			return 0, time.Time{}, fmt.Errorf("%s: %w", op, hal.ErrClosed)
		default:
		}
		c.state.mu.Lock()
		if c.avail-c.avail%ch >= want {
			size := len(c.ring)
			for i := range want {
				buf[i] = c.ring[(c.start+i)%size]
			}
			c.start = (c.start + want) % size
			c.avail -= want
			first := c.readPos
			c.readPos += int64(want / ch)
			at := slices.MinFunc(c.origins, time.Time.Compare).
				Add(time.Duration(first*int64(time.Second)/int64(c.format.SampleRate)) - c.latency)
			c.state.mu.Unlock()
			return want, at, nil
		}
		err := c.state.err
		c.state.mu.Unlock()
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("%s: %w", op, err)
		}
		select {
		case <-ctx.Done():
			return 0, time.Time{}, fmt.Errorf("%s: %w", op, ctx.Err())
		case <-c.closed:
			return 0, time.Time{}, fmt.Errorf("%s: %w", op, hal.ErrClosed)
		case <-c.state.wake:
		}
	}
}

// Overruns counts the times the reader fell behind by more than
// captureBuffer and audio was dropped (at most one per second).
func (c *capture) Overruns() int {
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	return c.overruns
}

// Close implements hal.AudioCapture; it is idempotent and wakes a blocked
// Read.
func (c *capture) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		c.state.mu.Lock()
		ended := c.state.err != nil
		c.state.mu.Unlock()
		if !ended {
			if derr := c.t.request(&proto.DeleteRecordStream{StreamIndex: c.index}, nil); derr != nil {
				c.d.log.Debug("delete record stream", "source", c.source, "err", derr)
			}
		}
		err = c.t.close()
	})
	if err != nil {
		return fmt.Errorf("close capture on %s: %w", c.source, err)
	}
	return nil
}
