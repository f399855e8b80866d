package rtc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/codecsel"
)

func TestCongestionControlReachesEncoder(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 40*time.Second)
	camSim := newSim(t)
	vp8 := &fakeVideoEncoderFactory{id: "fake:vp8", codecs: []hal.Codec{hal.CodecVP8}, padToBitrate: true}
	cfg := testConfig()
	cfg.MaxVideoBitrate, cfg.StartVideoBitrate, cfg.MinVideoBitrate = 800_000, 300_000, 50_000
	frames := newFrameLog()
	c := newCall(t, cfg, testConfig(),
		Media{Camera: camSim.Camera(), VideoEncoders: []hal.VideoEncoderFactory{vp8}},
		Media{VideoSinks: []VideoSink{frames}})
	send := newTestPeer(t, ctx, c.send, meeting.RoleSend, "publisher")
	recv := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "subscriber")
	connect(t, ctx, send, recv)
	waitFor(t, ctx, "an encoder", func() bool { return vp8.last() != nil })
	enc := vp8.last()
	// Without audio to send, video may also have audio's share.
	if b := enc.cfg.BitrateBps; b < cfg.StartVideoBitrate || b > cfg.StartVideoBitrate+DefaultAudioBitrate {
		t.Errorf("encoder opened at %d bits/s, want about the start bitrate %d", b, cfg.StartVideoBitrate)
	}

	// A clean path: GCC raises its target and the encoder follows.
	waitFor(t, ctx, "a raised bitrate", func() bool {
		bs := enc.setBitrates()
		return len(bs) > 0 && slices.Max(bs) >= cfg.StartVideoBitrate*115/100
	})
	peak := slices.Max(enc.setBitrates())

	// 30% of the sender's RTP lost: GCC's loss controller cuts the target
	// and the encoder follows it down.
	c.net.setLoss(senderIP, 30)
	waitFor(t, ctx, "a cut bitrate", func() bool {
		bs := enc.setBitrates()
		return bs[len(bs)-1] < peak*6/10
	})
	if c.net.dropped.Load() == 0 {
		t.Errorf("the loss filter dropped nothing")
	}
	for _, b := range enc.setBitrates() {
		if b > cfg.MaxVideoBitrate || b < cfg.MinVideoBitrate {
			t.Errorf("SetBitrate(%d) outside %d..%d", b, cfg.MinVideoBitrate, cfg.MaxVideoBitrate)
		}
	}
	st := send.Stats()
	if st.Video.NACKs == 0 {
		t.Errorf("no NACKs under 30%% loss: %+v", st.Video)
	}
	if st.TargetBitrate <= 0 || st.VideoBitrate > peak*6/10 {
		t.Errorf("stats: target %d, video %d (peak %d)", st.TargetBitrate, st.VideoBitrate, peak)
	}
}

func TestICERestartKeepsMediaFlowing(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 30*time.Second)
	camSim := newSim(t)
	frames := newFrameLog()
	c := newCall(t, testConfig(), testConfig(),
		Media{Camera: camSim.Camera(), VideoEncoders: []hal.VideoEncoderFactory{&fakeVideoEncoderFactory{id: "fake:vp8", codecs: []hal.Codec{hal.CodecVP8}}}},
		Media{VideoSinks: []VideoSink{frames}})
	send := newTestPeer(t, ctx, c.send, meeting.RoleSend, "publisher")
	recv := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "subscriber")
	connect(t, ctx, send, recv)
	waitFor(t, ctx, "10 frames", func() bool { return frames.count("video") >= 10 })

	oldSend, oldRecv := iceUfrag(send.pc.LocalDescription().SDP), iceUfrag(recv.pc.LocalDescription().SDP)
	offer, err := send.RestartICE(ctx)
	if err != nil {
		t.Fatalf("RestartICE: %v", err)
	}
	answer, err := recv.Answer(ctx, offer)
	if err != nil {
		t.Fatalf("Answer restart offer: %v", err)
	}
	if err := send.Accept(ctx, answer); err != nil {
		t.Fatalf("Accept restart answer: %v", err)
	}
	if u := iceUfrag(offer); u == "" || u == oldSend {
		t.Errorf("restart offer ufrag %q, before %q", u, oldSend)
	}
	if u := iceUfrag(answer); u == "" || u == oldRecv {
		t.Errorf("restart answer ufrag %q, before %q", u, oldRecv)
	}
	n := frames.count("video")
	waitFor(t, ctx, "20 frames after the restart", func() bool { return frames.count("video") >= n+20 })
	video, _ := frames.kind("video")
	for i := 1; i < len(video); i++ {
		if !video[i].CapturedAt.After(video[i-1].CapturedAt) {
			t.Fatalf("frame %d not after frame %d", i, i-1)
		}
	}
	for _, p := range []*Peer{send, recv} {
		if s := p.pc.ConnectionState(); s != webrtc.PeerConnectionStateConnected {
			t.Errorf("%s: %s after restart", p.opts.Label, s)
		}
	}
}

func iceUfrag(sdp string) string {
	for line := range strings.Lines(sdp) {
		if u, ok := strings.CutPrefix(strings.TrimSpace(line), "a=ice-ufrag:"); ok {
			return u
		}
	}
	return ""
}

func TestRelayOnlyWithoutTURNFails(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 20*time.Second)
	n := newTestNet(t)
	nw := n.nic(t, receiverIP)
	n.start(t)

	f := newTestFactory(t, nw, Config{RelayOnly: true}, Media{})
	p := newTestPeer(t, ctx, f, meeting.RoleReceive, "viewer")
	_, err := p.Offer(ctx)
	if !errors.Is(err, ErrNoCandidates) || !strings.Contains(err.Error(), "no TURN server is configured") {
		t.Errorf("relay-only Offer without TURN: %v", err)
	}

	// A TURN server that never answers: the gather timeout ends the wait.
	f = newTestFactory(t, nw, Config{RelayOnly: true, GatherTimeout: 300 * time.Millisecond, ICEServers: []meeting.ICEServer{
		{URLs: []string{"turn:10.77.0.99:3478?transport=udp"}, Username: "room", Credential: "secret"},
	}}, Media{})
	p = newTestPeer(t, ctx, f, meeting.RoleReceive, "viewer2")
	start := time.Now()
	_, err = p.Offer(ctx)
	if !errors.Is(err, ErrNoCandidates) || !strings.Contains(err.Error(), "no TURN server granted") {
		t.Errorf("relay-only Offer with a dead TURN server: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Offer took %v with a 300ms gather timeout", d)
	}
	// Close waits for pion's TURN client to give up (about 7.5 s): pion's
	// ICE agent gathers without a context it could cancel.
}

func TestEncoderFallback(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failOpen  bool
		failAfter int
	}{
		{"open fails", true, 0},
		{"encode fails", false, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			ctx := testContext(t, 30*time.Second)
			camSim := newSim(t)
			hw := &fakeVideoEncoderFactory{id: "fake:hw", hardware: true, codecs: []hal.Codec{hal.CodecVP8}, failOpen: tc.failOpen, failAfter: tc.failAfter}
			sw := &fakeVideoEncoderFactory{id: "sw:video-encoder", codecs: []hal.Codec{hal.CodecVP8}}
			frames := newFrameLog()
			c := newCall(t, testConfig(), testConfig(),
				Media{Camera: camSim.Camera(), VideoEncoders: []hal.VideoEncoderFactory{hw, sw}},
				Media{VideoSinks: []VideoSink{frames}})
			send := newTestPeer(t, ctx, c.send, meeting.RoleSend, "publisher")
			recv := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "subscriber")
			connect(t, ctx, send, recv)
			waitFor(t, ctx, "20 frames", func() bool { return frames.count("video") >= 20 })
			st := send.Stats()
			if st.Encoder != "sw:video-encoder" || st.EncoderHardware || st.Video.Encoder != "sw:video-encoder" {
				t.Errorf("encoder %q (hardware %v), want the software fallback", st.Encoder, st.EncoderHardware)
			}
			if hw.opened.Load() != 1 {
				t.Errorf("hardware encoder opened %d times, want 1", hw.opened.Load())
			}
			for _, e := range hw.all() {
				if !e.closed.Load() {
					t.Errorf("failed hardware encoder left open")
				}
			}
			if s := send.pc.ConnectionState(); s != webrtc.PeerConnectionStateConnected {
				t.Errorf("call state %s after the fallback", s)
			}
		})
	}
}

func TestNegotiatesH264(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 30*time.Second)
	camSim := newSim(t)
	h264 := &fakeVideoEncoderFactory{id: "fake:h264", hardware: true, codecs: []hal.Codec{hal.CodecH264}}
	frames := newFrameLog()
	ivf, err := NewIVFRecorder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := newCall(t, testConfig(), testConfig(),
		Media{Camera: camSim.Camera(), VideoEncoders: []hal.VideoEncoderFactory{h264}},
		Media{VideoSinks: []VideoSink{frames, ivf}})
	send := newTestPeer(t, ctx, c.send, meeting.RoleSend, "publisher")
	recv := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "subscriber")
	offer, err := send.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(offer, "VP8") || !strings.Contains(offer, "profile-level-id=42e01f") {
		t.Errorf("offer should list H.264 constrained baseline only:\n%s", offer)
	}
	for _, want := range []string{"nack", "nack pli", "ccm fir", "transport-cc"} {
		if !strings.Contains(offer, "a=rtcp-fb:102 "+want+"\r\n") {
			t.Errorf("offer lacks rtcp-fb %s", want)
		}
	}
	for _, want := range []string{"apt=102", "packetization-mode=1", absCaptureTimeURI, "transport-wide-cc"} {
		if !strings.Contains(offer, want) {
			t.Errorf("offer lacks %s", want)
		}
	}
	if strings.Contains(offer, "goog-remb") {
		t.Errorf("offer has goog-remb")
	}
	answer, err := recv.Answer(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := send.Accept(ctx, answer); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, ctx, send)
	waitFor(t, ctx, "10 frames", func() bool { return frames.count("video") >= 10 })
	video, info := frames.kind("video")
	if info.Codec != hal.CodecH264 || !video[0].Keyframe {
		t.Errorf("track %+v, first keyframe %v", info, video[0].Keyframe)
	}
	if st := send.Stats(); st.Video.Codec != hal.CodecH264 || !st.EncoderHardware {
		t.Errorf("sender video %+v, hardware %v", st.Video, st.EncoderHardware)
	}
	if err := ivf.Close(); err != nil || len(ivf.Files()) != 0 {
		t.Errorf("IVF recorder wrote %v (%v) for H.264", ivf.Files(), err)
	}
}

// TestAnswerMultistreamOffer plays an SFU (Janus multistream) with a plain
// pion peer offering two video sections and one audio section.
func TestAnswerMultistreamOffer(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 30*time.Second)
	frames := newFrameLog()
	n := newTestNet(t)
	sfuNet := n.nic(t, senderIP)
	f := newTestFactory(t, n.nic(t, receiverIP), testConfig(), Media{VideoSinks: []VideoSink{frames}, AudioSinks: []AudioSink{frames}})
	n.start(t)

	se := webrtc.SettingEngine{LoggerFactory: pionLogs{log: testLogger(t)}}
	se.SetNet(sfuNet)
	sfu, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sfu.GracefulClose() })
	var tracks []*webrtc.TrackLocalStaticSample
	for i, kind := range []string{"video", "video", "audio"} {
		c := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
		if kind == "audio" {
			c = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
		}
		tr, err := webrtc.NewTrackLocalStaticSample(c, fmt.Sprintf("%s%d", kind, i), fmt.Sprintf("feed%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sfu.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
		tracks = append(tracks, tr)
	}
	offer, err := sfu.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(sfu)
	if err := sfu.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered

	p := newTestPeer(t, ctx, f, meeting.RoleReceive, "subscriber")
	answer, err := p.Answer(ctx, sfu.LocalDescription().SDP)
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	if got := strings.Count(answer, "a=recvonly"); got != 3 {
		t.Errorf("answer has %d recvonly sections, want 3:\n%s", got, answer)
	}
	if err := sfu.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, ctx, p)

	// Feed the SFU's tracks from a goroutine the test owns.
	feedCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for seq := uint64(0); ; seq++ {
			select {
			case <-feedCtx.Done():
				return
			case <-tick.C:
			}
			pic := hal.VideoFrame{Width: 32, Height: 32, Seq: seq, Data: make([]byte, 32*32*3/2)}
			for _, tr := range tracks[:2] {
				_ = tr.WriteSample(media.Sample{Data: fakeVP8(pic, seq%10 == 0), Duration: 50 * time.Millisecond})
			}
			_ = tracks[2].WriteSample(media.Sample{Data: []byte{fakeOpusTOC, 1, 2, 3}, Duration: 20 * time.Millisecond})
		}
	}()
	t.Cleanup(func() { stop(); wg.Wait() })

	waitFor(t, ctx, "frames on three tracks", func() bool {
		frames.mu.Lock()
		defer frames.mu.Unlock()
		if len(frames.infos) != 3 {
			return false
		}
		for id := range frames.infos {
			if len(frames.frames[id]) < 5 {
				return false
			}
		}
		return true
	})
	frames.mu.Lock()
	var ids []string
	for id, info := range frames.infos {
		ids = append(ids, id+"/"+info.StreamID+"/"+string(info.Codec)+"/mid "+info.MID)
	}
	frames.mu.Unlock()
	slices.Sort(ids)
	// The mids are the SFU's, in the order of its offer.
	want := []string{"audio2/feed2/Opus/mid 2", "video0/feed0/VP8/mid 0", "video1/feed1/VP8/mid 1"}
	if !slices.Equal(ids, want) {
		t.Errorf("tracks %v, want %v", ids, want)
	}
	var stats []string
	for _, ts := range p.Stats().Tracks {
		stats = append(stats, ts.ID+"/mid "+ts.MID)
	}
	if want := []string{"audio2/mid 2", "video0/mid 0", "video1/mid 1"}; !slices.Equal(stats, want) {
		t.Errorf("stats tracks %v, want %v", stats, want)
	}
}

func TestStateReportsMediaAndFailure(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 30*time.Second)
	camSim := newSim(t)
	cfg := testConfig()
	cfg.SettingEngine = func(se *webrtc.SettingEngine) {
		se.SetICETimeouts(500*time.Millisecond, 1500*time.Millisecond, 100*time.Millisecond)
	}
	c := newCall(t, cfg, cfg,
		Media{Camera: camSim.Camera(), VideoEncoders: []hal.VideoEncoderFactory{&fakeVideoEncoderFactory{id: "fake:vp8", codecs: []hal.Codec{hal.CodecVP8}}}},
		Media{})
	send := newTestPeer(t, ctx, c.send, meeting.RoleSend, "publisher")
	recv := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "subscriber")
	connect(t, ctx, send, recv)

	// While connected, states keep coming with LastMedia advancing, on
	// both sides (RTP in, RTCP back).
	for _, p := range []*Peer{send, recv} {
		var first time.Time
		for advanced := false; !advanced; {
			select {
			case st := <-p.State():
				if !st.Connected || st.LastMedia.IsZero() {
					continue
				}
				if first.IsZero() {
					first = st.LastMedia
				} else if st.LastMedia.After(first) {
					advanced = true
				}
			case <-ctx.Done():
				t.Fatalf("%s: LastMedia did not advance", p.opts.Label)
			}
		}
	}

	// Cut the network: ICE fails, and says so.
	c.net.partitioned.Store(true)
	for {
		select {
		case st := <-recv.State():
			if !st.Failed {
				continue
			}
			if st.Connected || !strings.Contains(st.Reason, "ICE failed") {
				t.Errorf("failed state %+v", st)
			}
			if time.Since(st.LastMedia) < time.Second {
				t.Errorf("media still arriving at failure: %v", st.LastMedia)
			}
			return
		case <-ctx.Done():
			t.Fatalf("no failure reported: %v", ctx.Err())
		}
	}
}

// TestReceiverOffers is the WHEP direction: the receiving side offers, the
// sending side answers.
func TestReceiverOffers(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 30*time.Second)
	camSim := newSim(t)
	frames := newFrameLog()
	c := newCall(t, testConfig(), testConfig(),
		Media{
			Camera:        camSim.Camera(),
			Microphone:    camSim.Microphone(),
			VideoEncoders: []hal.VideoEncoderFactory{&fakeVideoEncoderFactory{id: "fake:vp8", codecs: []hal.Codec{hal.CodecVP8, hal.CodecH264}}},
			AudioEncoders: []hal.AudioEncoderFactory{fakeAudioEncoderFactory{id: "fake:opus"}},
		},
		Media{VideoSinks: []VideoSink{frames}, AudioSinks: []AudioSink{frames}})
	send := newTestPeer(t, ctx, c.send, meeting.RoleSend, "publisher")
	recv := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "viewer")
	connect(t, ctx, recv, send)
	waitFor(t, ctx, "video and audio", func() bool { return frames.count("video") >= 10 && frames.count("audio") >= 10 })
	// The viewer's offer lists VP8 first; the answer keeps that order.
	if _, info := frames.kind("video"); info.Codec != hal.CodecVP8 {
		t.Errorf("video codec %s, want VP8", info.Codec)
	}
}

// TestCloseBeforeConnecting closes peers at every early stage: nothing may
// be left running, and a closed peer refuses signaling.
func TestCloseBeforeConnecting(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 20*time.Second)
	camSim := newSim(t)
	n := newTestNet(t)
	f := newTestFactory(t, n.nic(t, senderIP), testConfig(), Media{
		Camera:        camSim.Camera(),
		Microphone:    camSim.Microphone(),
		Speaker:       camSim.Speaker(),
		VideoEncoders: []hal.VideoEncoderFactory{&fakeVideoEncoderFactory{id: "fake:vp8", codecs: []hal.Codec{hal.CodecVP8}}},
		AudioEncoders: []hal.AudioEncoderFactory{fakeAudioEncoderFactory{id: "fake:opus"}},
		AudioDecoders: []hal.AudioDecoderFactory{fakeAudioDecoderFactory{id: "fake:opus-dec"}},
	})
	n.start(t)

	for _, role := range []meeting.PeerRole{meeting.RoleSend, meeting.RoleReceive} {
		p, err := f.NewPeer(ctx, meeting.PeerOptions{Role: role, Label: "early"})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close fresh peer: %v", err)
		}
		p, err = f.NewPeer(ctx, meeting.PeerOptions{Role: role, Label: "offered"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Offer(ctx); err != nil {
			t.Fatalf("Offer: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close offered peer: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, ok := <-p.State(); ok {
			// A state may be buffered; the channel must close after it.
			for range p.State() {
			}
		}
		if _, err := p.Offer(ctx); !errors.Is(err, ErrClosed) {
			t.Errorf("Offer after Close: %v", err)
		}
		if err := p.Accept(ctx, "v=0"); !errors.Is(err, ErrClosed) {
			t.Errorf("Accept after Close: %v", err)
		}
	}
	if _, err := f.NewPeer(ctx, meeting.PeerOptions{Role: meeting.PeerRole(7)}); err == nil {
		t.Errorf("unknown role accepted")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.NewPeer(cancelled, meeting.PeerOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("NewPeer with a cancelled context: %v", err)
	}
}

// TestHardwareEncoderFailsMidCall is the daemon's arrangement: one codecsel
// factory over a hardware and a software encoder. The hardware one fails
// after a few frames; the call goes on in software, and the statistics say
// so and why.
func TestHardwareEncoderFailsMidCall(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 30*time.Second)
	camSim := newSim(t)
	hw := &fakeVideoEncoderFactory{id: "fake:hw", hardware: true, codecs: []hal.Codec{hal.CodecVP8}, failAfter: 10}
	sw := &fakeVideoEncoderFactory{id: "sw:video-encoder", codecs: []hal.Codec{hal.CodecVP8}}
	sel := codecsel.NewEncoders([]hal.VideoEncoderFactory{hw, sw}, codecsel.Options{Logger: testLogger(t)})
	frames := newFrameLog()
	c := newCall(t, testConfig(), testConfig(),
		Media{Camera: camSim.Camera(), VideoEncoders: []hal.VideoEncoderFactory{sel}},
		Media{VideoSinks: []VideoSink{frames}})
	send := newTestPeer(t, ctx, c.send, meeting.RoleSend, "publisher")
	recv := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "subscriber")
	connect(t, ctx, send, recv)

	waitFor(t, ctx, "hardware frames", func() bool { return frames.count("video") >= 5 })
	waitFor(t, ctx, "30 frames, most after the failure", func() bool { return frames.count("video") >= 30 })
	v := send.Stats().Video
	if v.Encoder != "sw:video-encoder" || v.Hardware || v.Path != string(codecsel.ReasonError) || v.Fallbacks != 1 {
		t.Errorf("video after the hardware failure: encoder %q hardware %v path %q fallbacks %d; want the software encoder, hardware-error, 1",
			v.Encoder, v.Hardware, v.Path, v.Fallbacks)
	}
	if hw.opened.Load() != 1 || sw.opened.Load() != 1 {
		t.Errorf("opened hardware %d, software %d times; want once each", hw.opened.Load(), sw.opened.Load())
	}
	if s := send.pc.ConnectionState(); s != webrtc.PeerConnectionStateConnected {
		t.Errorf("call state %s after the fallback", s)
	}
	video, _ := frames.kind("video")
	for i := 1; i < len(video); i++ {
		if !video[i].CapturedAt.After(video[i-1].CapturedAt) {
			t.Fatalf("frame %d captured at %v, not after frame %d", i, video[i].CapturedAt, i-1)
		}
	}
}
