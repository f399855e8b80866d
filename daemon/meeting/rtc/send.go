package rtc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/atriumroom/atrium/hal"
)

// keyframeMinInterval coalesces keyframe requests: an SFU forwards the
// PLIs of every subscriber, and a keyframe per PLI would flood the link.
const keyframeMinInterval = 250 * time.Millisecond

// audioChunk is the Opus frame length we capture and encode.
const audioChunk = 20 * time.Millisecond

// encoderCaps returns f's capabilities for codec at w×h, if it has them.
func encoderCaps(caps []hal.CodecCaps, codec hal.Codec, w, h int) (hal.CodecCaps, bool) {
	for _, c := range caps {
		if c.Codec == codec && (c.MaxWidth == 0 || w <= c.MaxWidth) && (c.MaxHeight == 0 || h <= c.MaxHeight) {
			return c, true
		}
	}
	return hal.CodecCaps{}, false
}

// sendableVideoCodecs lists the codecs this package can send that some
// factory encodes, in the factories' order: the first (hardware) factory's
// codecs are offered first. Within one factory VP8 goes before H.264,
// because every Atrium receiver decodes VP8 (the kiosk's WebCodecs out of
// the box, the software decoder), while H.264 needs extra plugins there.
func sendableVideoCodecs(factories []hal.VideoEncoderFactory) []hal.Codec {
	var out []hal.Codec
	for _, f := range factories {
		for _, c := range []hal.Codec{hal.CodecVP8, hal.CodecH264} {
			if _, ok := encoderCaps(f.Codecs(), c, 0, 0); ok && !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// chooseVideoMode picks the camera mode for the configured caps; see
// hal.BestMode. Frames in other formats than I420 are converted (toI420).
func chooseVideoMode(modes []hal.VideoMode, w, h, fps int) (hal.VideoMode, error) {
	m, ok := hal.BestMode(modes, hal.VideoMode{Width: w, Height: h, FPS: fps, Format: hal.PixelI420})
	if !ok {
		return hal.VideoMode{}, fmt.Errorf("%w: the camera offers no raw (I420, NV12, YUYV, MJPG) mode among %v", ErrNoEncoder, modes)
	}
	return m, nil
}

// chooseAudioFormat prefers 48 kHz (Opus's native rate, so nothing
// resamples) in the device's own order of channel counts.
func chooseAudioFormat(formats []hal.AudioFormat) (hal.AudioFormat, bool) {
	for _, f := range formats {
		if f.SampleRate == opusClockRate && f.Channels > 0 {
			return f, true
		}
	}
	for _, f := range formats {
		if f.SampleRate > 0 && f.Channels > 0 {
			return f, true
		}
	}
	return hal.AudioFormat{}, false
}

// sendCounters are what a sender reports in stats.
type sendCounters struct {
	framesCaptured, framesEncoded, framesSent, framesDropped, keyframes atomic.Uint64
	plis, firs, nacks                                                   atomic.Uint64
	report                                                              atomic.Pointer[rtcp.ReceptionReport]
	remb                                                                atomic.Int64
}

// onRTCP records what the remote said about our stream ssrc and reports
// whether it asked for a keyframe.
func (c *sendCounters) onRTCP(pkts []rtcp.Packet, ssrc uint32) (keyframe bool) {
	for _, pkt := range pkts {
		switch p := pkt.(type) {
		case *rtcp.PictureLossIndication:
			c.plis.Add(1)
			keyframe = true
		case *rtcp.FullIntraRequest:
			c.firs.Add(1)
			keyframe = true
		case *rtcp.TransportLayerNack:
			for _, n := range p.Nacks {
				c.nacks.Add(uint64(len(n.PacketList())))
			}
		case *rtcp.ReceiverEstimatedMaximumBitrate:
			c.remb.Store(int64(p.Bitrate))
		case *rtcp.ReceiverReport:
			for i := range p.Reports {
				if p.Reports[i].SSRC == ssrc {
					r := p.Reports[i]
					c.report.Store(&r)
				}
			}
		}
	}
	return keyframe
}

// videoSender captures, encodes and sends the camera on one peer.
type videoSender struct {
	p        *Peer
	track    *localTrack
	sender   *webrtc.RTPSender
	camera   hal.Camera
	cameras  CameraFinder
	encoders []hal.VideoEncoderFactory

	sendCounters
	keyframeWanted atomic.Bool
	bitrate        atomic.Int64 // what the encoder is (or will be) set to

	mu      sync.Mutex // guards the fields below; held while calling enc
	enc     hal.VideoEncoder
	encInfo hal.Info
	encHW   bool
	mode    hal.VideoMode
	stopped string // why video stopped, if it did
	// source is the camera being sent; sourceLost is set while it is gone
	// and the card is sent instead.
	source     hal.Info
	sourceLost bool
}

// readRTCP reads the sender's RTCP until the peer closes. Reading is what
// feeds pion's interceptors (NACK responder, GCC, stats), so it runs even
// before media starts.
func (s *videoSender) readRTCP(context.Context) {
	for {
		pkts, _, err := s.sender.ReadRTCP()
		if err != nil {
			return
		}
		s.p.touchMedia()
		b := s.track.binding()
		if b == nil {
			continue
		}
		if s.onRTCP(pkts, b.ssrc) {
			s.keyframeWanted.Store(true)
		}
		if s.remb.Load() > 0 {
			s.p.kickBitrate()
		}
	}
}

// setBitrate applies a new video bitrate. Changes under 5% are ignored:
// GCC moves in small steps many times a second, and reconfiguring an
// encoder is not free.
func (s *videoSender) setBitrate(bps int) {
	old := int(s.bitrate.Load())
	if old != 0 && abs(bps-old)*20 < old {
		return
	}
	s.bitrate.Store(int64(bps))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.enc != nil {
		if err := s.enc.SetBitrate(bps); err != nil {
			s.p.log.Debug("set video encoder bitrate", "encoder", s.encInfo.ID, "bps", bps, "err", err)
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func (s *videoSender) stop(err error) {
	s.p.log.Error("video stopped; the call goes on without it", "err", err)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = err.Error()
}

// cameraRetry is how often a lost camera is looked for again: with the
// registry's hotplug debounce it keeps "video back within 3 s of the camera
// coming back" with room to spare.
const cameraRetry = 250 * time.Millisecond

// run is the capture loop: camera → encoder → track, until ctx ends. When
// the camera goes away mid-call the loop sends the "camera unavailable" card
// through the same encoder and track, and switches back to live video as
// soon as a camera can be opened again.
func (s *videoSender) run(ctx context.Context) {
	b, err := s.track.waitBound(ctx)
	if err != nil {
		return
	}
	local := s.localSinks(b.halCodec)
	defer local.remove()
	cfg := s.p.f.cfg
	mode, err := chooseVideoMode(s.camera.Modes(), cfg.Width, cfg.Height, cfg.FPS)
	if err != nil {
		s.stop(fmt.Errorf("choose camera mode: %w", err))
		return
	}
	s.mu.Lock()
	s.mode, s.source = mode, s.camera.Info()
	s.mu.Unlock()
	next := 0
	if _, err := s.openEncoder(ctx, b.halCodec, mode, &next); err != nil {
		if ctx.Err() == nil {
			s.stop(err)
		}
		return
	}
	defer s.closeEncoder()

	stream, err := s.camera.Open(ctx, mode)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		s.cameraLost(fmt.Errorf("open camera %s: %w", s.camera.Info().ID, err))
		stream = nil
	}
	defer func() {
		if stream != nil {
			if err := stream.Close(); err != nil {
				s.p.log.Debug("close camera stream", "err", err)
			}
		}
	}()

	clock := newRTPClock(videoClockRate)
	var (
		lastSeq              uint64
		haveSeq              bool
		lastKept, lastForced time.Time
		lastLook             time.Time
		card                 hal.VideoFrame
		cardText             string
		tick                 *time.Ticker
	)
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	for {
		var frame hal.VideoFrame
		off := s.p.f.cameraOff.Load()
		if off && stream != nil {
			// Switched off: close the camera so its light goes out.
			if err := stream.Close(); err != nil {
				s.p.log.Debug("close camera stream", "err", err)
			}
			stream, haveSeq = nil, false
			lastLook = time.Time{}
		}
		if stream != nil {
			frame, err = stream.ReadFrame(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.cameraLost(fmt.Errorf("read camera frame: %w", err))
				if err := stream.Close(); err != nil {
					s.p.log.Debug("close lost camera stream", "err", err)
				}
				stream, haveSeq = nil, false
				continue
			}
			s.framesCaptured.Add(1)
			if haveSeq && frame.Seq > lastSeq+1 {
				s.framesDropped.Add(frame.Seq - lastSeq - 1)
			}
			lastSeq, haveSeq = frame.Seq, true
			if frame.CapturedAt.IsZero() {
				frame.CapturedAt = s.p.now()
			}
			// Faster cameras are decimated to the configured rate; the 10%
			// slack keeps jitter in capture times from dropping wanted frames.
			if mode.FPS > cfg.FPS && !lastKept.IsZero() &&
				frame.CapturedAt.Sub(lastKept) < time.Second/time.Duration(cfg.FPS)*9/10 {
				continue
			}
			lastKept = frame.CapturedAt
			if frame, err = toI420(frame); err != nil {
				s.p.log.Debug("convert camera frame", "err", err)
				continue
			}
		} else {
			if tick == nil {
				tick = time.NewTicker(time.Second / placeholderFPS)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if now := s.p.now(); !off && now.Sub(lastLook) >= cameraRetry {
				lastLook = now
				if st, m, ok := s.reopenCamera(ctx, mode); ok {
					tick.Stop()
					tick, stream = nil, st
					if m.Width != mode.Width || m.Height != mode.Height {
						// A different camera (or mode): the encoder
						// follows the new size from a keyframe.
						s.closeEncoder()
						next = 0
						if _, err := s.openEncoder(ctx, b.halCodec, m, &next); err != nil {
							if ctx.Err() == nil {
								s.stop(err)
							}
							return
						}
						card = hal.VideoFrame{}
					}
					mode = m
					s.keyframeWanted.Store(true)
					lastForced = time.Time{}
					continue
				}
			}
			text := cardUnavailable
			if off {
				text = cardOff
			}
			if card.Width != mode.Width || card.Height != mode.Height || cardText != text {
				card, cardText = placeholderFrame(mode.Width, mode.Height, text), text
			}
			frame = card
			frame.CapturedAt = s.p.now()
		}

		enc := s.encoder()
		if now := s.p.now(); s.keyframeWanted.Load() && now.Sub(lastForced) >= keyframeMinInterval {
			s.keyframeWanted.Store(false)
			lastForced = now
			enc.ForceKeyframe()
		}
		out, err := enc.Encode(ctx, frame)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.p.log.Warn("video encoder failed; falling back to the next one", "encoder", s.encoderID(), "err", err)
			s.closeEncoder()
			next++
			if _, err = s.openEncoder(ctx, b.halCodec, mode, &next); err != nil {
				if ctx.Err() == nil {
					s.stop(err)
				}
				return
			}
			continue
		}
		s.framesEncoded.Add(1)
		for _, ef := range out {
			if len(ef.Data) == 0 {
				continue
			}
			at := ef.CapturedAt
			if at.IsZero() {
				at = frame.CapturedAt
			}
			// The self-view shows the frame whether or not it could be sent.
			local.write(ef, at)
			if err := s.track.writeFrame(ef.Data, clock.at(at), at, noLevel); err != nil {
				s.p.log.Debug("send video frame", "err", err)
				continue
			}
			s.framesSent.Add(1)
			if ef.Keyframe {
				s.keyframes.Add(1)
			}
		}
	}
}

// localVideo hands a sender's encoded frames to Media.LocalVideoSinks.
// It is used by the capture loop only.
type localVideo struct {
	s     *videoSender
	info  TrackInfo
	sinks []VideoSink
	// started: a keyframe went out, so the sinks may get deltas.
	started bool
}

// localSinks describes the sender's video to the local sinks. Their
// keyframe requests go to the encoder like the far end's PLIs, and so are
// spaced by keyframeMinInterval.
func (s *videoSender) localSinks(codec hal.Codec) *localVideo {
	l := &localVideo{s: s, sinks: s.p.f.media.LocalVideoSinks}
	l.info = TrackInfo{
		ID:        s.p.opts.Label,
		StreamID:  streamID,
		PeerLabel: LocalPeerLabel,
		Kind:      webrtc.RTPCodecTypeVideo.String(),
		Codec:     codec,
		RequestKeyframe: func() error {
			s.keyframeWanted.Store(true)
			return nil
		},
	}
	if b := s.track.binding(); b != nil {
		l.info.SSRC = b.ssrc
	}
	return l
}

func (l *localVideo) write(ef hal.EncodedFrame, at time.Time) {
	if len(l.sinks) == 0 {
		return
	}
	if !l.started && !ef.Keyframe {
		return
	}
	l.started = true
	ef.CapturedAt = at
	for _, sink := range l.sinks {
		if err := sink.WriteVideo(l.info, ef); err != nil {
			l.s.p.log.Debug("local video sink", "err", err)
		}
	}
}

// remove tells the sinks the room's video ended, if they saw it start.
func (l *localVideo) remove() {
	if !l.started {
		return
	}
	for _, sink := range l.sinks {
		sink.RemoveTrack(l.info)
	}
}

// cameraLost records that live video stopped and the card is showing.
func (s *videoSender) cameraLost(err error) {
	s.mu.Lock()
	s.sourceLost = true
	id := s.source.ID
	s.mu.Unlock()
	s.p.log.Warn("camera lost; sending the camera-unavailable card until it is back", "camera", id, "err", err)
}

// reopenCamera asks the finder for a camera (without one, it tries the
// first camera again) and opens it in the mode closest to the configured
// one. Any failure just means "not yet".
func (s *videoSender) reopenCamera(ctx context.Context, prev hal.VideoMode) (hal.VideoStream, hal.VideoMode, bool) {
	s.mu.Lock()
	lost := s.source
	s.mu.Unlock()
	cam := s.camera
	if s.cameras != nil {
		var ok bool
		if cam, ok = s.cameras.FindCamera(lost); !ok {
			return nil, prev, false
		}
	}
	cfg := s.p.f.cfg
	mode, err := chooseVideoMode(cam.Modes(), cfg.Width, cfg.Height, cfg.FPS)
	if err != nil {
		return nil, prev, false
	}
	st, err := cam.Open(ctx, mode)
	if err != nil {
		s.p.log.Debug("camera not back yet", "camera", cam.Info().ID, "err", err)
		return nil, prev, false
	}
	s.mu.Lock()
	s.source, s.sourceLost, s.mode = cam.Info(), false, mode
	s.mu.Unlock()
	s.p.log.Info("camera back; live video resumes", "camera", cam.Info().ID,
		"width", mode.Width, "height", mode.Height, "fps", mode.FPS)
	return st, mode, true
}

func (s *videoSender) encoder() hal.VideoEncoder {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enc
}

// openEncoder opens the first factory from *next on that can encode codec
// at mode's size, and leaves *next at its index.
func (s *videoSender) openEncoder(ctx context.Context, codec hal.Codec, mode hal.VideoMode, next *int) (hal.VideoEncoder, error) {
	var errs []error
	for i := *next; i < len(s.encoders); i++ {
		f := s.encoders[i]
		caps, ok := encoderCaps(f.Codecs(), codec, mode.Width, mode.Height)
		if !ok {
			continue
		}
		info := f.Info()
		enc, err := f.NewVideoEncoder(ctx, hal.VideoEncoderConfig{
			Codec:      codec,
			Width:      mode.Width,
			Height:     mode.Height,
			FPS:        min(mode.FPS, s.p.f.cfg.FPS),
			BitrateBps: int(s.bitrate.Load()),
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			s.p.log.Warn("video encoder did not open; trying the next one", "encoder", info.ID, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", info.ID, err))
			continue
		}
		*next = i
		s.mu.Lock()
		s.enc, s.encInfo, s.encHW = enc, info, caps.Hardware
		s.mu.Unlock()
		s.p.log.Info("video encoder", "encoder", info.ID, "hardware", caps.Hardware, "codec", codec,
			"width", mode.Width, "height", mode.Height, "fps", min(mode.FPS, s.p.f.cfg.FPS), "bps", s.bitrate.Load())
		return enc, nil
	}
	err := fmt.Errorf("%w for %s at %dx%d", ErrNoEncoder, codec, mode.Width, mode.Height)
	if len(errs) > 0 {
		err = fmt.Errorf("%w: %w", err, errors.Join(errs...))
	}
	return nil, err
}

func (s *videoSender) closeEncoder() {
	s.mu.Lock()
	enc := s.enc
	s.enc = nil
	s.mu.Unlock()
	if enc != nil {
		if err := enc.Close(); err != nil {
			s.p.log.Debug("close video encoder", "err", err)
		}
	}
}

func (s *videoSender) encoderID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.encInfo.ID
}

// audioSender captures, encodes and sends the microphone on one peer.
type audioSender struct {
	p        *Peer
	track    *localTrack
	sender   *webrtc.RTPSender
	mic      hal.Microphone
	encoders []hal.AudioEncoderFactory

	sendCounters
	level atomic.Int64 // last captured chunk, RFC 6464 units (-dBov)

	mu      sync.Mutex
	encInfo hal.Info
	format  hal.AudioFormat
	stopped string
}

func (s *audioSender) readRTCP(context.Context) {
	for {
		pkts, _, err := s.sender.ReadRTCP()
		if err != nil {
			return
		}
		s.p.touchMedia()
		if b := s.track.binding(); b != nil {
			s.onRTCP(pkts, b.ssrc)
		}
	}
}

func (s *audioSender) stop(err error) {
	s.p.log.Error("audio stopped; the call goes on without it", "err", err)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = err.Error()
}

// openEncoder opens the first Opus encoder from *next on.
func (s *audioSender) openEncoder(ctx context.Context, format hal.AudioFormat, next *int) (hal.AudioEncoder, error) {
	var errs []error
	for i := *next; i < len(s.encoders); i++ {
		f := s.encoders[i]
		if _, ok := encoderCaps(f.Codecs(), hal.CodecOpus, 0, 0); !ok {
			continue
		}
		enc, err := f.NewAudioEncoder(ctx, hal.AudioEncoderConfig{Codec: hal.CodecOpus, Format: format, BitrateBps: s.p.f.cfg.AudioBitrate})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			s.p.log.Warn("audio encoder did not open; trying the next one", "encoder", f.Info().ID, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", f.Info().ID, err))
			continue
		}
		*next = i
		s.mu.Lock()
		s.encInfo = f.Info()
		s.mu.Unlock()
		return enc, nil
	}
	err := fmt.Errorf("%w for Opus at %d Hz, %d channels", ErrNoEncoder, format.SampleRate, format.Channels)
	if len(errs) > 0 {
		err = fmt.Errorf("%w: %w", err, errors.Join(errs...))
	}
	return nil, err
}

// run is the capture loop: microphone → 20 ms chunks → Opus → track.
func (s *audioSender) run(ctx context.Context) {
	if _, err := s.track.waitBound(ctx); err != nil {
		return
	}
	format, ok := chooseAudioFormat(s.mic.Formats())
	if !ok {
		s.stop(fmt.Errorf("microphone %s offers no format", s.mic.Info().ID))
		return
	}
	capture, err := s.mic.Open(ctx, format)
	if err != nil {
		if ctx.Err() == nil {
			s.stop(fmt.Errorf("open microphone %s: %w", s.mic.Info().ID, err))
		}
		return
	}
	defer func() {
		if err := capture.Close(); err != nil {
			s.p.log.Debug("close microphone", "err", err)
		}
	}()
	s.mu.Lock()
	s.format = format
	s.mu.Unlock()

	next := 0
	enc, err := s.openEncoder(ctx, format, &next)
	if err != nil {
		if ctx.Err() == nil {
			s.stop(err)
		}
		return
	}
	defer func() { closeAudioEncoder(s, enc) }()

	chunk := format.SampleRate * int(audioChunk/time.Millisecond) / 1000 * format.Channels
	buf := make([]int16, chunk)
	fill := 0
	var chunkAt time.Time
	ts := newRTPClock(opusClockRate).base
	for {
		n, at, err := capture.Read(ctx, buf[fill:])
		if err != nil {
			if ctx.Err() == nil {
				s.stop(fmt.Errorf("read microphone: %w", err))
			}
			return
		}
		if fill == 0 {
			chunkAt = at
		}
		if fill += n; fill < chunk {
			continue
		}
		fill = 0
		s.framesCaptured.Add(1)
		if s.p.f.micMuted.Load() {
			clear(buf) // silence: the far end hears nothing, the stream goes on
		}
		level := rfc6464Level(dBov(buf))
		s.level.Store(int64(level))
		// Encoders may keep the slice; buf is reused.
		out, err := enc.Encode(ctx, slices.Clone(buf), chunkAt)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.p.log.Warn("audio encoder failed; falling back to the next one", "encoder", s.encInfo.ID, "err", err)
			closeAudioEncoder(s, enc)
			next++
			if enc, err = s.openEncoder(ctx, format, &next); err != nil {
				enc = nil
				if ctx.Err() == nil {
					s.stop(err)
				}
				return
			}
			continue
		}
		s.framesEncoded.Add(1)
		for _, ef := range out {
			if len(ef.Data) == 0 {
				continue
			}
			at := ef.CapturedAt
			if at.IsZero() {
				at = chunkAt
			}
			if err := s.track.writeFrame(ef.Data, ts, at, level); err != nil {
				s.p.log.Debug("send audio packet", "err", err)
			} else {
				s.framesSent.Add(1)
			}
			// Opus timestamps count 48 kHz samples whatever the input rate.
			d := ef.Duration
			if d <= 0 {
				d = opusDuration(ef.Data)
			}
			ts += uint32(d * opusClockRate / time.Second)
		}
	}
}

func closeAudioEncoder(s *audioSender, enc hal.AudioEncoder) {
	if enc == nil {
		return
	}
	if err := enc.Close(); err != nil {
		s.p.log.Debug("close audio encoder", "err", err)
	}
}

// opusDuration reads an Opus packet's duration from its TOC byte (RFC 6716
// section 3.1), defaulting to 20 ms.
func opusDuration(pkt []byte) time.Duration {
	if len(pkt) == 0 {
		return audioChunk
	}
	toc := pkt[0]
	config := toc >> 3
	var frame time.Duration
	switch {
	case config < 12: // SILK
		frame = []time.Duration{10, 20, 40, 60}[config%4] * time.Millisecond
	case config < 16: // hybrid
		frame = []time.Duration{10, 20}[config%2] * time.Millisecond
	default: // CELT
		frame = []time.Duration{2500, 5000, 10000, 20000}[config%4] * time.Microsecond
	}
	frames := 1
	switch toc & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(pkt) < 2 {
			return audioChunk
		}
		frames = int(pkt[1] & 0x3f)
	}
	return frame * time.Duration(frames)
}
