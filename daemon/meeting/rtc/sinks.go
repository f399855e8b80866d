package rtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/atriumroom/atrium/hal"
)

// LocalPeerLabel is the PeerLabel of the room's own video track, as
// Media.LocalVideoSinks get it: no peer connection takes this label.
const LocalPeerLabel = "local"

// TrackInfo describes a remote track to sinks (or, with PeerLabel
// LocalPeerLabel, the room's own video to Media.LocalVideoSinks).
type TrackInfo struct {
	// ID is the track's ID (its msid), unique within the peer.
	ID string
	// StreamID is the media stream it belongs to: one remote participant's
	// camera and microphone share it.
	StreamID string
	// MID is the mid of the transceiver it arrives on, in the remote
	// offer: what a signaling server that forwards several senders (an
	// SFU) names it by. Empty when unknown.
	MID string
	// PeerLabel is meeting.PeerOptions.Label of the peer it arrived on.
	PeerLabel string
	// Kind is "video" or "audio".
	Kind  string
	Codec hal.Codec
	SSRC  uint32
	// RequestKeyframe asks the sender for a keyframe (RTCP PLI), for a sink
	// whose decoder starts or lost its way (video only). Requests are
	// spaced by at least 500 ms; extra ones are dropped.
	RequestKeyframe func() error `json:"-"`
}

// VideoSink receives the encoded frames of remote video tracks, reassembled
// from RTP and starting with a keyframe (VP8 frames as-is; H.264 in Annex
// B). WriteVideo is called from the track's receive goroutine, so calls for
// different tracks (and peers) are concurrent, and it must not block: a
// slow sink stalls its track. The sink may keep frame.Data. RemoveTrack is
// called once when the track ends (at the latest in Peer.Close).
type VideoSink interface {
	WriteVideo(track TrackInfo, frame hal.EncodedFrame) error
	RemoveTrack(track TrackInfo)
}

// AudioSink receives remote audio tracks' packets (Opus), with the same
// rules as VideoSink.
type AudioSink interface {
	WriteAudio(track TrackInfo, packet hal.EncodedFrame) error
	RemoveTrack(track TrackInfo)
}

// trackKey names a track across peers.
func trackKey(t TrackInfo) string { return t.PeerLabel + "/" + t.ID }

// trackFileName is a safe file name for a track.
func trackFileName(t TrackInfo, ext string) string {
	name := fmt.Sprintf("%s-%s-%d", t.PeerLabel, t.ID, t.SSRC)
	name = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, name)
	return name + ext
}

// IVFRecorder is a VideoSink writing each remote VP8 track to its own .ivf
// file in a directory, from the track's first keyframe on. Other codecs are
// ignored. For tests and diagnostics: it writes synchronously.
type IVFRecorder struct {
	dir string

	mu     sync.Mutex
	tracks map[string]*ivfTrack
	files  []string
	closed bool
}

type ivfTrack struct {
	w      *ivfwriter.IVFWriter
	first  time.Time
	last   uint32
	frames int
}

var _ VideoSink = (*IVFRecorder)(nil)

// NewIVFRecorder creates dir if needed.
func NewIVFRecorder(dir string) (*IVFRecorder, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create IVF recording directory: %w", err)
	}
	return &IVFRecorder{dir: dir, tracks: map[string]*ivfTrack{}}, nil
}

// WriteVideo implements VideoSink.
func (r *IVFRecorder) WriteVideo(track TrackInfo, frame hal.EncodedFrame) error {
	if track.Codec != hal.CodecVP8 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("write to IVF recorder: %w", ErrClosed)
	}
	key := trackKey(track)
	t := r.tracks[key]
	if t == nil {
		// The IVF header carries the picture size, which the first keyframe
		// tells.
		w, h, ok := vp8Size(frame.Data)
		if !ok {
			return nil
		}
		path := filepath.Join(r.dir, trackFileName(track, ".ivf"))
		iw, err := ivfwriter.New(path, ivfwriter.WithCodec("video/VP8"),
			ivfwriter.WithWidthAndHeight(uint16(w), uint16(h)),
			ivfwriter.WithFrameRate(1, videoClockRate), ivfwriter.WithDirectPTS())
		if err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
		t = &ivfTrack{w: iw, first: frame.CapturedAt}
		r.tracks[key] = t
		r.files = append(r.files, path)
	}
	// Timestamps at 90 kHz from capture times, as the sender stamped them.
	ts := uint32(frame.CapturedAt.Sub(t.first) * videoClockRate / time.Second)
	if t.frames > 0 && int32(ts-t.last) <= 0 {
		ts = t.last + 1
	}
	t.last = ts
	// One RTP packet holding the whole frame behind a VP8 payload
	// descriptor with S=1, which is what the writer reassembles from.
	pkt := &rtp.Packet{
		Header:  rtp.Header{Version: 2, Marker: true, Timestamp: ts},
		Payload: append([]byte{0x10}, frame.Data...),
	}
	if err := t.w.WriteRTP(pkt); err != nil {
		return fmt.Errorf("write IVF frame: %w", err)
	}
	t.frames++
	return nil
}

// RemoveTrack implements VideoSink: it finishes the track's file.
func (r *IVFRecorder) RemoveTrack(track TrackInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.tracks[trackKey(track)]; t != nil {
		_ = t.w.Close()
		delete(r.tracks, trackKey(track))
	}
}

// Files lists the files written so far.
func (r *IVFRecorder) Files() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.files)
}

// Close finishes every file.
func (r *IVFRecorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	var errs []error
	for k, t := range r.tracks {
		errs = append(errs, t.w.Close())
		delete(r.tracks, k)
	}
	return errors.Join(errs...)
}

// OggRecorder is an AudioSink writing each remote Opus track to its own
// .ogg file in a directory. For tests and diagnostics: it writes
// synchronously.
type OggRecorder struct {
	dir string

	mu     sync.Mutex
	tracks map[string]*oggwriter.OggWriter
	files  []string
	closed bool
}

var _ AudioSink = (*OggRecorder)(nil)

// NewOggRecorder creates dir if needed.
func NewOggRecorder(dir string) (*OggRecorder, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create Ogg recording directory: %w", err)
	}
	return &OggRecorder{dir: dir, tracks: map[string]*oggwriter.OggWriter{}}, nil
}

// WriteAudio implements AudioSink.
func (r *OggRecorder) WriteAudio(track TrackInfo, packet hal.EncodedFrame) error {
	if track.Codec != hal.CodecOpus {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("write to Ogg recorder: %w", ErrClosed)
	}
	key := trackKey(track)
	w := r.tracks[key]
	if w == nil {
		path := filepath.Join(r.dir, trackFileName(track, ".ogg"))
		var err error
		// Opus in WebRTC is always signalled as 48 kHz stereo.
		if w, err = oggwriter.New(path, opusClockRate, 2); err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
		r.tracks[key] = w
		r.files = append(r.files, path)
	}
	if err := w.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2}, Payload: packet.Data}); err != nil {
		return fmt.Errorf("write Ogg page: %w", err)
	}
	return nil
}

// RemoveTrack implements AudioSink: it finishes the track's file.
func (r *OggRecorder) RemoveTrack(track TrackInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w := r.tracks[trackKey(track)]; w != nil {
		_ = w.Close()
		delete(r.tracks, trackKey(track))
	}
}

// Files lists the files written so far.
func (r *OggRecorder) Files() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.files)
}

// Close finishes every file.
func (r *OggRecorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	var errs []error
	for k, w := range r.tracks {
		errs = append(errs, w.Close())
		delete(r.tracks, k)
	}
	return errors.Join(errs...)
}

// DecodingSink is a VideoSink that decodes remote video with the HAL's
// decoder factories and hands each picture to a callback (tests read the
// simulated camera's stamp from them). It decodes in the caller's
// goroutine, so it suits small pictures and tests, not a 1080p UI.
type DecodingSink struct {
	factories []hal.VideoDecoderFactory
	onFrame   func(TrackInfo, hal.VideoFrame)
	log       *slog.Logger
	ctx       context.Context
	cancel    context.CancelFunc

	mu       sync.Mutex
	decoders map[string]hal.VideoDecoder
	closed   bool
}

var _ VideoSink = (*DecodingSink)(nil)

// NewDecodingSink returns a sink calling onFrame with every decoded
// picture. logger may be nil.
func NewDecodingSink(factories []hal.VideoDecoderFactory, logger *slog.Logger, onFrame func(TrackInfo, hal.VideoFrame)) *DecodingSink {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &DecodingSink{factories: factories, onFrame: onFrame, log: logger, ctx: ctx, cancel: cancel, decoders: map[string]hal.VideoDecoder{}}
}

// WriteVideo implements VideoSink.
func (d *DecodingSink) WriteVideo(track TrackInfo, frame hal.EncodedFrame) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("write to decoding sink: %w", ErrClosed)
	}
	key := trackKey(track)
	dec := d.decoders[key]
	if dec == nil {
		var err error
		if dec, err = d.open(track.Codec); err != nil {
			return err
		}
		d.decoders[key] = dec
	}
	pics, err := dec.Decode(d.ctx, frame)
	if err != nil {
		// A decoder that lost its references recovers at the next keyframe.
		if track.RequestKeyframe != nil {
			_ = track.RequestKeyframe()
		}
		return fmt.Errorf("decode %s frame of track %s: %w", track.Codec, track.ID, err)
	}
	for _, pic := range pics {
		d.onFrame(track, pic)
	}
	return nil
}

func (d *DecodingSink) open(codec hal.Codec) (hal.VideoDecoder, error) {
	var errs []error
	for _, f := range d.factories {
		if !slices.ContainsFunc(f.Codecs(), func(c hal.CodecCaps) bool { return c.Codec == codec }) {
			continue
		}
		dec, err := f.NewVideoDecoder(d.ctx, codec)
		if err == nil {
			d.log.Info("video decoder", "decoder", f.Info().ID, "codec", codec)
			return dec, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", f.Info().ID, err))
	}
	err := fmt.Errorf("%w for %s", ErrNoDecoder, codec)
	if len(errs) > 0 {
		err = fmt.Errorf("%w: %w", err, errors.Join(errs...))
	}
	return nil, err
}

// RemoveTrack implements VideoSink: it closes the track's decoder.
func (d *DecodingSink) RemoveTrack(track TrackInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dec := d.decoders[trackKey(track)]; dec != nil {
		if err := dec.Close(); err != nil {
			d.log.Debug("close video decoder", "err", err)
		}
		delete(d.decoders, trackKey(track))
	}
}

// Close closes every decoder.
func (d *DecodingSink) Close() error {
	d.cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	var errs []error
	for k, dec := range d.decoders {
		errs = append(errs, dec.Close())
		delete(d.decoders, k)
	}
	return errors.Join(errs...)
}
