package rtc

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
)

// Small pictures keep the race detector's cost down; the stamp needs 32
// pixels each way.
const (
	testWidth  = 64
	testHeight = 48
	testFPS    = 15
)

func newSim(t *testing.T) *sim.Driver {
	t.Helper()
	d, err := sim.New(sim.Config{CameraWidth: testWidth, CameraHeight: testHeight, CameraFPS: testFPS, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	return d
}

func testConfig() Config {
	return Config{Width: testWidth, Height: testHeight, FPS: testFPS}
}

// call is a sending and a receiving factory on one virtual network.
type call struct {
	net        *testNet
	send, recv *Factory
}

func newCall(t *testing.T, sendCfg, recvCfg Config, sendMedia, recvMedia Media) *call {
	t.Helper()
	n := newTestNet(t)
	c := &call{net: n}
	c.send = newTestFactory(t, n.nic(t, senderIP), sendCfg, sendMedia)
	c.recv = newTestFactory(t, n.nic(t, receiverIP), recvCfg, recvMedia)
	n.start(t)
	return c
}

func TestMediaFlows(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 30*time.Second)
	camSim, spkSim := newSim(t), newSim(t)
	vp8 := &fakeVideoEncoderFactory{id: "fake:vp8", codecs: []hal.Codec{hal.CodecVP8}}
	frames := newFrameLog()
	dir := t.TempDir()
	ivf, err := NewIVFRecorder(dir)
	if err != nil {
		t.Fatal(err)
	}
	ogg, err := NewOggRecorder(dir)
	if err != nil {
		t.Fatal(err)
	}
	var stampMu sync.Mutex
	var stamps, badStamps int
	decoding := NewDecodingSink([]hal.VideoDecoderFactory{fakeVideoDecoderFactory{id: "fake:dec"}}, nil, func(_ TrackInfo, pic hal.VideoFrame) {
		stampMu.Lock()
		defer stampMu.Unlock()
		_, at, ok := sim.DecodeStamp(pic)
		// The receiver's CapturedAt must be the sender's capture time.
		if !ok || at.Sub(pic.CapturedAt).Abs() > time.Millisecond {
			badStamps++
			return
		}
		stamps++
	})
	t.Cleanup(func() { _ = decoding.Close() })

	c := newCall(t, testConfig(), testConfig(),
		Media{
			Camera:        camSim.Camera(),
			Microphone:    camSim.Microphone(),
			VideoEncoders: []hal.VideoEncoderFactory{vp8},
			AudioEncoders: []hal.AudioEncoderFactory{fakeAudioEncoderFactory{id: "fake:opus"}},
		},
		Media{
			Speaker:       spkSim.Speaker(),
			AudioDecoders: []hal.AudioDecoderFactory{fakeAudioDecoderFactory{id: "fake:opus-dec"}},
			VideoSinks:    []VideoSink{frames, decoding, ivf},
			AudioSinks:    []AudioSink{frames, ogg},
		})
	send := newTestPeer(t, ctx, c.send, meeting.RoleSend, "publisher")
	recv := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "subscriber")
	connect(t, ctx, send, recv)

	waitFor(t, ctx, "30 video frames", func() bool { return frames.count("video") >= 30 })
	video, info := frames.kind("video")
	if info.Codec != hal.CodecVP8 || info.SSRC == 0 || info.PeerLabel != "subscriber" || info.StreamID != streamID {
		t.Errorf("video track info = %+v", info)
	}
	if !video[0].Keyframe {
		t.Errorf("first frame handed to sinks is not a keyframe")
	}
	for i := 1; i < len(video); i++ {
		if !video[i].CapturedAt.After(video[i-1].CapturedAt) {
			t.Fatalf("frame %d CapturedAt %v not after frame %d's %v", i, video[i].CapturedAt, i-1, video[i-1].CapturedAt)
		}
	}
	if lag := time.Since(video[len(video)-1].CapturedAt); lag < 0 || lag > 2*time.Second {
		t.Errorf("last frame captured %v ago", lag)
	}
	stampMu.Lock()
	if stamps < 20 || badStamps > 0 {
		t.Errorf("decoded stamps: %d good, %d bad", stamps, badStamps)
	}
	stampMu.Unlock()

	// A PLI from the receiver (here asked by a sink) reaches the encoder.
	enc := vp8.last()
	forced := enc.forced.Load()
	keys := recv.Stats().Tracks
	var keyframesBefore uint64
	for _, tr := range keys {
		if tr.Kind == "video" {
			keyframesBefore = tr.KeyframesReceived
		}
	}
	time.Sleep(pliInterval) // the receiver's own startup PLI may be recent
	if err := info.RequestKeyframe(); err != nil {
		t.Fatalf("RequestKeyframe: %v", err)
	}
	waitFor(t, ctx, "ForceKeyframe", func() bool { return enc.forced.Load() > forced })
	waitFor(t, ctx, "a new keyframe", func() bool {
		for _, tr := range recv.Stats().Tracks {
			if tr.Kind == "video" && tr.KeyframesReceived > keyframesBefore {
				return true
			}
		}
		return false
	})
	if err := recv.RequestKeyframe("nope"); !errors.Is(err, ErrUnknownTrack) {
		t.Errorf("RequestKeyframe(unknown) = %v, want ErrUnknownTrack", err)
	}

	// Audio: packets to the sinks, a level, and the tone on the speaker.
	waitFor(t, ctx, "audio level", func() bool {
		for _, tr := range recv.Stats().Tracks {
			if tr.Kind == "audio" && tr.AudioLevel > -30 {
				return true
			}
		}
		return false
	})
	if lv := recv.AudioLevels(); len(lv) != 1 || lv[0].DBov < -30 || lv[0].StreamID != streamID || lv[0].MID == "" {
		t.Errorf("AudioLevels = %+v", lv)
	}
	waitFor(t, ctx, "the microphone's tone on the speaker", func() bool {
		st := spkSim.Speaker().Stats()
		return st.Played > time.Second && math.Abs(st.DominantHz-sim.DefaultToneHz) < 10
	})

	// Stats, twice for bit rates: a rate needs a whole window.
	recv.Stats()
	send.Stats()
	time.Sleep(BitrateWindow + 100*time.Millisecond)
	ss, rs := send.Stats(), recv.Stats()
	if ss.Encoder != "fake:vp8" || ss.EncoderHardware || ss.TargetBitrate <= 0 || ss.VideoBitrate <= 0 || ss.BitrateOut <= 0 {
		t.Errorf("sender stats: encoder %q hw %v target %d video %d out %d", ss.Encoder, ss.EncoderHardware, ss.TargetBitrate, ss.VideoBitrate, ss.BitrateOut)
	}
	if ss.Video == nil || ss.Video.Codec != hal.CodecVP8 || ss.Video.FramesSent == 0 || ss.Video.PLIs == 0 || ss.Video.Width != testWidth {
		t.Errorf("sender video stats: %+v", ss.Video)
	}
	if ss.Audio == nil || ss.Audio.Codec != hal.CodecOpus || ss.Audio.FramesSent == 0 || ss.Audio.Level > -3 || ss.Audio.Level < -40 {
		t.Errorf("sender audio stats: %+v", ss.Audio)
	}
	for _, st := range []PeerStats{ss, rs} {
		if st.Candidates == nil || st.Candidates.LocalType != "host" || st.Candidates.RemoteType != "host" || st.Candidates.Protocol != "udp" {
			t.Errorf("%s candidates: %+v", st.Label, st.Candidates)
		}
		if st.State != "connected" || time.Since(st.LastMedia) > 2*time.Second {
			t.Errorf("%s state %s, last media %v", st.Label, st.State, st.LastMedia)
		}
	}
	if _, err := json.Marshal([]PeerStats{ss, rs}); err != nil {
		t.Errorf("stats do not marshal: %v", err)
	}
	if rs.BitrateIn <= 0 || len(rs.Tracks) != 2 {
		t.Errorf("receiver stats: in %d, tracks %+v", rs.BitrateIn, rs.Tracks)
	}
	for _, tr := range rs.Tracks {
		if tr.SSRC == 0 || tr.PacketsReceived == 0 || tr.Frames == 0 || (tr.Codec != hal.CodecVP8 && tr.Codec != hal.CodecOpus) {
			t.Errorf("receiver track stats: %+v", tr)
		}
	}

	// Close: the state channel closes, sinks hear the tracks end, the
	// speaker is released and the recordings are complete.
	if err := recv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range recv.State() {
	}
	if err := send.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	frames.mu.Lock()
	if len(frames.removed) != 2 {
		t.Errorf("sinks saw %d tracks end, want 2", len(frames.removed))
	}
	frames.mu.Unlock()
	if err := ivf.Close(); err != nil {
		t.Errorf("IVF close: %v", err)
	}
	if err := ogg.Close(); err != nil {
		t.Errorf("Ogg close: %v", err)
	}
	for _, files := range [][]string{ivf.Files(), ogg.Files()} {
		if len(files) != 1 {
			t.Fatalf("recordings: %v", files)
		}
		fi, err := os.Stat(files[0])
		if err != nil || fi.Size() < 10_000 {
			t.Errorf("recording %s: %v, %d bytes", files[0], err, fi.Size())
		}
	}
	if !strings.HasSuffix(ivf.Files()[0], ".ivf") || !strings.HasSuffix(ogg.Files()[0], ".ogg") {
		t.Errorf("recording names: %v %v", ivf.Files(), ogg.Files())
	}
}
