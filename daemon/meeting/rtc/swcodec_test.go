package rtc

import (
	"math"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
	"github.com/atriumroom/atrium/hal/swcodec"
)

// TestSoftwareCodecs runs the real path: the simulated camera and
// microphone, libvpx and libopus through hal/swcodec, RTP over the virtual
// network, and back: the camera's stamp read from decoded pictures and the
// microphone's tone heard on the simulated speaker.
func TestSoftwareCodecs(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 40*time.Second)
	log := testLogger(t)
	camSim, err := sim.New(sim.Config{CameraWidth: 320, CameraHeight: 180, CameraFPS: testFPS, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	spkSim := newSim(t)
	dir := t.TempDir()
	ivf, err := NewIVFRecorder(dir)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var good, bad int
	var lastSeq uint64
	decoding := NewDecodingSink([]hal.VideoDecoderFactory{swcodec.NewVideoDecoders(log)}, log, func(_ TrackInfo, pic hal.VideoFrame) {
		mu.Lock()
		defer mu.Unlock()
		seq, at, ok := sim.DecodeStamp(pic)
		if !ok || at.Sub(pic.CapturedAt).Abs() > time.Millisecond || (good > 0 && seq <= lastSeq) {
			bad++
			return
		}
		good, lastSeq = good+1, seq
	})
	t.Cleanup(func() { _ = decoding.Close() })

	cfg := Config{Width: 320, Height: 180, FPS: testFPS}
	c := newCall(t, cfg, cfg,
		Media{
			Camera:        camSim.Camera(),
			Microphone:    camSim.Microphone(),
			VideoEncoders: []hal.VideoEncoderFactory{swcodec.NewVideoEncoders(log)},
			AudioEncoders: []hal.AudioEncoderFactory{swcodec.NewAudioEncoders(log)},
		},
		Media{
			Speaker:       spkSim.Speaker(),
			AudioDecoders: []hal.AudioDecoderFactory{swcodec.NewAudioDecoders(log)},
			VideoSinks:    []VideoSink{decoding, ivf},
		})
	send := newTestPeer(t, ctx, c.send, meeting.RoleSend, "publisher")
	recv := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "subscriber")
	connect(t, ctx, send, recv)

	waitFor(t, ctx, "20 stamped pictures", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return good >= 20
	})
	mu.Lock()
	if bad > 0 {
		t.Errorf("%d pictures without a readable, matching stamp (%d good)", bad, good)
	}
	mu.Unlock()
	waitFor(t, ctx, "the tone on the speaker", func() bool {
		st := spkSim.Speaker().Stats()
		return st.Played > time.Second && math.Abs(st.DominantHz-sim.DefaultToneHz) < 10
	})
	st := send.Stats()
	if st.Encoder != swcodec.VideoEncoderID || st.Video.Codec != hal.CodecVP8 || st.Audio.Encoder != swcodec.AudioEncoderID {
		t.Errorf("sender: encoder %q, video %+v, audio %+v", st.Encoder, st.Video, st.Audio)
	}
	if err := recv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ivf.Close(); err != nil {
		t.Fatal(err)
	}
	if files := ivf.Files(); len(files) != 1 {
		t.Errorf("IVF files %v", files)
	} else if fi, err := os.Stat(files[0]); err != nil || fi.Size() < 5_000 {
		t.Errorf("IVF file: %v %v", fi, err)
	}
}
