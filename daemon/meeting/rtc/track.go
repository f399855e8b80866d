package rtc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/atriumroom/atrium/hal"
)

// localTrack is the webrtc.TrackLocal our encoders feed. Unlike pion's
// TrackLocalStaticSample it is not tied to a codec chosen in advance: Bind
// takes the first negotiated codec (the remote's order) that canSend
// accepts. It also derives RTP timestamps from capture times and adds the
// abs-capture-time and audio level header extensions.
type localTrack struct {
	id, streamID string
	kind         webrtc.RTPCodecType
	canSend      func(hal.Codec) bool

	bound     chan struct{} // closed by the first Bind
	boundOnce sync.Once

	mu  sync.Mutex // guards b and seq; held while a frame is written
	b   *trackBinding
	seq uint16

	packets, bytes atomic.Uint64
}

type trackBinding struct {
	id           string // TrackLocalContext.ID, for Unbind
	codec        webrtc.RTPCodecParameters
	halCodec     hal.Codec
	ssrc         uint32
	writer       webrtc.TrackLocalWriter
	payloader    rtp.Payloader
	absCaptureID uint8
	audioLevelID uint8
}

var _ webrtc.TrackLocal = (*localTrack)(nil)

func newLocalTrack(id, streamID string, kind webrtc.RTPCodecType, canSend func(hal.Codec) bool) *localTrack {
	return &localTrack{
		id:       id,
		streamID: streamID,
		kind:     kind,
		canSend:  canSend,
		bound:    make(chan struct{}),
		seq:      uint16(rand.Uint32()), // RFC 3550 section 5.1: random start
	}
}

// Bind implements webrtc.TrackLocal.
func (t *localTrack) Bind(tc webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range tc.CodecParameters() {
		hc := halCodec(c.MimeType)
		if hc == "" || !t.canSend(hc) {
			continue
		}
		b := &trackBinding{
			id:        tc.ID(),
			codec:     c,
			halCodec:  hc,
			ssrc:      uint32(tc.SSRC()),
			writer:    tc.WriteStream(),
			payloader: payloaderFor(hc),
		}
		for _, e := range tc.HeaderExtensions() {
			switch e.URI {
			case absCaptureTimeURI:
				b.absCaptureID = uint8(e.ID)
			case audioLevelURI:
				b.audioLevelID = uint8(e.ID)
			}
		}
		t.mu.Lock()
		t.b = b
		t.mu.Unlock()
		t.boundOnce.Do(func() { close(t.bound) })
		return c, nil
	}
	return webrtc.RTPCodecParameters{}, fmt.Errorf("bind %s track: none of the negotiated codecs can be encoded here: %w", t.kind, webrtc.ErrUnsupportedCodec)
}

// Unbind implements webrtc.TrackLocal.
func (t *localTrack) Unbind(tc webrtc.TrackLocalContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.b != nil && t.b.id == tc.ID() {
		t.b = nil
	}
	return nil
}

func (t *localTrack) ID() string                { return t.id }
func (t *localTrack) RID() string               { return "" }
func (t *localTrack) StreamID() string          { return t.streamID }
func (t *localTrack) Kind() webrtc.RTPCodecType { return t.kind }

// waitBound waits for negotiation to settle the codec.
func (t *localTrack) waitBound(ctx context.Context) (*trackBinding, error) {
	select {
	case <-t.bound:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.b == nil {
		return nil, fmt.Errorf("%s track: %w", t.kind, ErrClosed)
	}
	return t.b, nil
}

func (t *localTrack) binding() *trackBinding {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b
}

// noLevel marks a frame without an audio level.
const noLevel = -1

// writeFrame packetizes one encoded frame. level is the RFC 6464 value
// (0 loudest, 127 silence) or noLevel.
func (t *localTrack) writeFrame(data []byte, ts uint32, capturedAt time.Time, level int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b
	if b == nil {
		return nil // not negotiated (yet); nothing to send on
	}
	payloads := b.payloader.Payload(rtpPayloadMTU, data)
	for i, pl := range payloads {
		h := rtp.Header{
			Version:        2,
			PayloadType:    uint8(b.codec.PayloadType),
			SequenceNumber: t.seq,
			Timestamp:      ts,
			SSRC:           b.ssrc,
			// Video: the marker ends a frame. Audio: it would start a
			// talkspurt, and we send continuously.
			Marker: t.kind == webrtc.RTPCodecTypeVideo && i == len(payloads)-1,
		}
		t.seq++
		// The first packet suffices: receivers read a frame's capture time
		// from the packet that starts it.
		if i == 0 && b.absCaptureID != 0 && !capturedAt.IsZero() {
			if ext, err := rtp.NewAbsCaptureTimeExtension(capturedAt).Marshal(); err == nil {
				_ = h.SetExtension(b.absCaptureID, ext)
			}
		}
		if b.audioLevelID != 0 && level != noLevel {
			al := rtp.AudioLevelExtension{Level: uint8(min(max(level, 0), 127)), Voice: level < 50}
			if ext, err := al.Marshal(); err == nil {
				_ = h.SetExtension(b.audioLevelID, ext)
			}
		}
		if _, err := b.writer.WriteRTP(&h, pl); err != nil {
			return fmt.Errorf("write %s RTP packet: %w", t.kind, err)
		}
		t.packets.Add(1)
		t.bytes.Add(uint64(h.MarshalSize() + len(pl)))
	}
	return nil
}

// rtpClock turns capture times into RTP timestamps: a random base plus the
// time since the first frame at the codec's clock rate, so timestamps follow
// when frames were taken, not when they were encoded or sent.
type rtpClock struct {
	rate    int64
	base    uint32
	first   time.Time
	last    uint32
	started bool
}

func newRTPClock(rate int) *rtpClock {
	return &rtpClock{rate: int64(rate), base: rand.Uint32()}
}

func (c *rtpClock) at(t time.Time) uint32 {
	if !c.started {
		c.started, c.first, c.last = true, t, c.base
		return c.base
	}
	d := t.Sub(c.first)
	ticks := int64(d/time.Second)*c.rate + int64(d%time.Second)*c.rate/int64(time.Second)
	ts := c.base + uint32(ticks)
	// Equal timestamps would merge two frames at the receiver.
	if int32(ts-c.last) <= 0 {
		ts = c.last + 1
	}
	c.last = ts
	return ts
}
