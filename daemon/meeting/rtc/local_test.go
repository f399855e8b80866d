package rtc

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/hal"
)

// byteLog is a VideoSink that keeps every frame with its bytes, in order.
type byteLog struct {
	mu      sync.Mutex
	infos   []TrackInfo
	frames  []hal.EncodedFrame
	removed []TrackInfo
}

func (l *byteLog) WriteVideo(t TrackInfo, f hal.EncodedFrame) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f.Data = slices.Clone(f.Data)
	l.infos = append(l.infos, t)
	l.frames = append(l.frames, f)
	return nil
}

func (l *byteLog) RemoveTrack(t TrackInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.removed = append(l.removed, t)
}

func (l *byteLog) snapshot() ([]TrackInfo, []hal.EncodedFrame) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.infos), slices.Clone(l.frames)
}

func (l *byteLog) keyframes() int {
	_, frames := l.snapshot()
	n := 0
	for _, f := range frames {
		if f.Keyframe {
			n++
		}
	}
	return n
}

// TestLocalVideoSinks checks the self-view's source: the local sinks get
// the frames the far end receives, byte for byte and in order, from a
// keyframe on, and their keyframe requests reach the encoder, spaced.
func TestLocalVideoSinks(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 30*time.Second)
	camSim := newSim(t)
	vp8 := &fakeVideoEncoderFactory{id: "fake:vp8", codecs: []hal.Codec{hal.CodecVP8}}
	local, remote := &byteLog{}, &byteLog{}
	c := newCall(t, testConfig(), testConfig(),
		Media{Camera: camSim.Camera(), VideoEncoders: []hal.VideoEncoderFactory{vp8}, LocalVideoSinks: []VideoSink{local}},
		Media{VideoSinks: []VideoSink{remote}})
	send := newTestPeer(t, ctx, c.send, meeting.RoleSend, "publisher")
	recv := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "subscriber")
	connect(t, ctx, send, recv)
	waitFor(t, ctx, "20 remote frames", func() bool { _, f := remote.snapshot(); return len(f) >= 20 })

	infos, frames := local.snapshot()
	if len(frames) == 0 {
		t.Fatal("the local sink got no frame")
	}
	info := infos[0]
	if info.PeerLabel != LocalPeerLabel || info.ID != "publisher" || info.Kind != "video" || info.Codec != hal.CodecVP8 || info.StreamID != streamID || info.RequestKeyframe == nil {
		t.Errorf("local track info = %+v", info)
	}
	if !frames[0].Keyframe {
		t.Error("the local sink's first frame is not a keyframe")
	}
	// Every frame the far end got, in order, is one the local sink got
	// (the local sink may have more: frames sent before the far end could
	// decode, and the latest ones still on their way).
	_, got := remote.snapshot()
	start := slices.IndexFunc(frames, func(f hal.EncodedFrame) bool { return bytes.Equal(f.Data, got[0].Data) })
	if start < 0 {
		t.Fatalf("the far end's first frame (%d bytes) is not among the %d local frames", len(got[0].Data), len(frames))
	}
	for i, f := range got {
		if start+i >= len(frames) {
			break
		}
		l := frames[start+i]
		if !bytes.Equal(l.Data, f.Data) || l.Keyframe != f.Keyframe {
			t.Fatalf("remote frame %d (%d bytes, key %t) differs from local frame %d (%d bytes, key %t)",
				i, len(f.Data), f.Keyframe, start+i, len(l.Data), l.Keyframe)
		}
		// abs-capture-time carries it in NTP units: a nanosecond off.
		if d := l.CapturedAt.Sub(f.CapturedAt).Abs(); d > time.Microsecond {
			t.Errorf("frame %d captured at %v locally, %v at the far end", i, l.CapturedAt, f.CapturedAt)
		}
	}
	t.Logf("%d local frames, %d remote; the far end's first was local frame %d", len(frames), len(got), start)

	// A keyframe request from the self-view forces one; a burst of them
	// forces one or two, not ten.
	enc := vp8.last()
	forced, keys := enc.forced.Load(), local.keyframes()
	if err := info.RequestKeyframe(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "a forced keyframe", func() bool { return enc.forced.Load() > forced && local.keyframes() > keys })
	time.Sleep(2 * keyframeMinInterval) // out of the spacing window
	forced = enc.forced.Load()
	for range 10 {
		if err := info.RequestKeyframe(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(keyframeMinInterval + 100*time.Millisecond)
	if n := enc.forced.Load() - forced; n < 1 || n > 2 {
		t.Errorf("10 requests in 100 ms forced %d keyframes, want 1 or 2", n)
	}

	if err := send.Close(); err != nil {
		t.Fatal(err)
	}
	local.mu.Lock()
	removed := slices.Clone(local.removed)
	local.mu.Unlock()
	if len(removed) != 1 || removed[0].PeerLabel != LocalPeerLabel || removed[0].ID != "publisher" {
		t.Errorf("RemoveTrack calls after Close: %+v", removed)
	}
}
