package rtc

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
)

// simFinder finds the simulated camera again once it is present.
type simFinder struct{ d *sim.Driver }

func (f simFinder) FindCamera(lost hal.Info) (hal.Camera, bool) {
	devs, err := f.d.Enumerate(context.Background())
	if err != nil {
		return nil, false
	}
	for _, d := range devs {
		if c, ok := d.(hal.Camera); ok && c.Info().ID == lost.ID {
			return c, true
		}
	}
	return nil, false
}

// pictureLog classifies what the receiver decodes: live camera pictures
// (they carry the simulator's stamp) or the camera-unavailable card.
type pictureLog struct {
	card []byte
	mu   sync.Mutex
	seq  []string // "live" or "card", in arrival order
}

func (l *pictureLog) add(pic hal.VideoFrame) {
	kind := "other"
	if _, _, ok := sim.DecodeStamp(pic); ok {
		kind = "live"
	} else if bytes.Equal(pic.Data, l.card) {
		kind = "card"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq = append(l.seq, kind)
}

// since counts kinds from index i on.
func (l *pictureLog) since(i int) (n int, counts map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	counts = map[string]int{}
	for _, k := range l.seq[min(i, len(l.seq)):] {
		counts[k]++
	}
	return len(l.seq), counts
}

func TestCameraUnplugSendsCardThenResumes(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 30*time.Second)
	camSim := newSim(t)
	pics := &pictureLog{card: placeholderFrame(testWidth, testHeight, cardUnavailable).Data}
	decoding := NewDecodingSink([]hal.VideoDecoderFactory{fakeVideoDecoderFactory{id: "fake:dec"}}, nil,
		func(_ TrackInfo, pic hal.VideoFrame) { pics.add(pic) })
	t.Cleanup(func() { _ = decoding.Close() })
	frames := newFrameLog()
	c := newCall(t, testConfig(), testConfig(),
		Media{
			Camera:        camSim.Camera(),
			Cameras:       simFinder{camSim},
			VideoEncoders: []hal.VideoEncoderFactory{&fakeVideoEncoderFactory{id: "fake:vp8", codecs: []hal.Codec{hal.CodecVP8}}},
		},
		Media{VideoSinks: []VideoSink{frames, decoding}})
	send := newTestPeer(t, ctx, c.send, meeting.RoleSend, "publisher")
	recv := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "subscriber")
	connect(t, ctx, send, recv)

	waitFor(t, ctx, "live video", func() bool { _, k := pics.since(0); return k["live"] >= 10 })

	if err := camSim.SetPresent(hal.KindCamera, false); err != nil {
		t.Fatal(err)
	}
	mark, _ := pics.since(0)
	waitFor(t, ctx, "the camera-unavailable card", func() bool { _, k := pics.since(mark); return k["card"] >= 3 })
	if v := send.Stats().Video; v == nil || !v.SourceLost || v.Source != sim.CameraID {
		t.Errorf("video stats while unplugged = %+v, want source %s lost", v, sim.CameraID)
	}
	if s := send.pc.ConnectionState().String(); s != "connected" {
		t.Errorf("call state %s while the camera is unplugged", s)
	}

	mark, _ = pics.since(0)
	keysBefore := send.Stats().Video.KeyframesSent
	back := time.Now()
	if err := camSim.SetPresent(hal.KindCamera, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "live video again", func() bool { _, k := pics.since(mark); return k["live"] >= 5 })
	if d := time.Since(back); d > 3*time.Second {
		t.Errorf("live video came back %v after the camera, want within 3 s", d)
	}
	v := send.Stats().Video
	if v.SourceLost || v.Source != sim.CameraID {
		t.Errorf("video stats after replug = source %q lost %v", v.Source, v.SourceLost)
	}
	if v.KeyframesSent <= keysBefore {
		t.Errorf("no keyframe sent when live video resumed (%d before, %d after)", keysBefore, v.KeyframesSent)
	}
	if _, k := pics.since(0); k["other"] > 0 {
		t.Errorf("%d decoded pictures were neither live nor the card", k["other"])
	}
}

func TestPlaceholderCard(t *testing.T) {
	for _, sz := range [][2]int{{1280, 720}, {64, 48}, {2, 2}} {
		f := placeholderFrame(sz[0], sz[1], cardUnavailable)
		if f.Width != sz[0] || f.Height != sz[1] || f.Format != hal.PixelI420 || len(f.Data) != sz[0]*sz[1]*3/2 {
			t.Errorf("%dx%d: frame %dx%d %s with %d bytes", sz[0], sz[1], f.Width, f.Height, f.Format, len(f.Data))
		}
	}
	// The text must actually be drawn: bright pixels on the dark ground.
	f := placeholderFrame(1280, 720, cardOff)
	bright := 0
	for _, y := range f.Data[:1280*720] {
		if y > 200 {
			bright++
		}
	}
	if bright < 5000 {
		t.Errorf("only %d bright pixels on the card", bright)
	}
}

// TestMuteAndCameraOff: the room's privacy switches. Muted, the far end
// hears silence; camera off, it sees the camera-off card; both come back.
func TestMuteAndCameraOff(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 30*time.Second)
	camSim := newSim(t)
	pics := &pictureLog{card: placeholderFrame(testWidth, testHeight, cardOff).Data}
	decoding := NewDecodingSink([]hal.VideoDecoderFactory{fakeVideoDecoderFactory{id: "fake:dec"}}, nil,
		func(_ TrackInfo, pic hal.VideoFrame) { pics.add(pic) })
	t.Cleanup(func() { _ = decoding.Close() })
	c := newCall(t, testConfig(), testConfig(),
		Media{
			Camera:        camSim.Camera(),
			Microphone:    camSim.Microphone(),
			VideoEncoders: []hal.VideoEncoderFactory{&fakeVideoEncoderFactory{id: "fake:vp8", codecs: []hal.Codec{hal.CodecVP8}}},
			AudioEncoders: []hal.AudioEncoderFactory{fakeAudioEncoderFactory{id: "fake:opus"}},
		},
		Media{
			VideoSinks:    []VideoSink{decoding},
			AudioDecoders: []hal.AudioDecoderFactory{fakeAudioDecoderFactory{id: "fake:opus-dec"}},
		})
	send := newTestPeer(t, ctx, c.send, meeting.RoleSend, "publisher")
	recv := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "subscriber")
	connect(t, ctx, send, recv)
	remoteLevel := func() float64 {
		for _, tr := range recv.Stats().Tracks {
			if tr.Kind == "audio" {
				return tr.AudioLevel
			}
		}
		return SilenceDBov
	}
	waitFor(t, ctx, "live video and audible tone", func() bool {
		_, k := pics.since(0)
		return k["live"] >= 5 && remoteLevel() > -40
	})

	c.send.SetMicrophoneMuted(true)
	c.send.SetCameraOff(true)
	mark, _ := pics.since(0)
	waitFor(t, ctx, "silence and the camera-off card", func() bool {
		_, k := pics.since(mark)
		return k["card"] >= 3 && remoteLevel() <= SilenceDBov+1
	})
	if st := send.Stats(); !st.Video.Muted || !st.Audio.Muted || st.Video.SourceLost {
		t.Errorf("stats while muted: video %+v audio %+v", st.Video, st.Audio)
	}

	c.send.SetMicrophoneMuted(false)
	c.send.SetCameraOff(false)
	mark, _ = pics.since(0)
	waitFor(t, ctx, "live video and the tone again", func() bool {
		_, k := pics.since(mark)
		return k["live"] >= 5 && remoteLevel() > -40
	})
	if st := send.Stats(); st.Video.Muted || st.Audio.Muted {
		t.Errorf("stats after unmuting: video muted %v, audio muted %v", st.Video.Muted, st.Audio.Muted)
	}
}
