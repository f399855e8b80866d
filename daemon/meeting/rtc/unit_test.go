package rtc

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/atriumroom/atrium/hal"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	c := Config{}.withDefaults()
	if c.MaxVideoBitrate != 1_500_000 || c.Width != 1280 || c.Height != 720 || c.FPS != 30 ||
		c.AudioBitrate != 32_000 || c.GatherTimeout != 5*time.Second || c.Logger == nil || c.Now == nil {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	for _, bad := range []Config{
		{MaxVideoBitrate: 5},
		{StartVideoBitrate: 5_000_000},
		{FPS: 1000},
		{Width: 8, Height: 8},
		{AudioBitrate: 1},
		{UDPPortMin: 5000},
		{UDPPortMin: 6000, UDPPortMax: 5000},
	} {
		if _, err := New(bad, Media{}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", bad, err)
		}
	}
}

func TestChooseVideoMode(t *testing.T) {
	m := func(w, h, fps int, f hal.PixelFormat) hal.VideoMode {
		return hal.VideoMode{Width: w, Height: h, FPS: fps, Format: f}
	}
	modes := []hal.VideoMode{
		m(1920, 1080, 30, hal.PixelI420),
		m(1280, 720, 60, hal.PixelYUYV),
		m(1280, 720, 30, hal.PixelNV12),
		m(1280, 720, 30, hal.PixelI420),
		m(1280, 720, 30, hal.PixelMJPG),
		m(640, 360, 30, hal.PixelI420),
	}
	for _, tc := range []struct {
		w, h, fps int
		modes     []hal.VideoMode
		want      hal.VideoMode
	}{
		{1280, 720, 30, modes, m(1280, 720, 30, hal.PixelI420)},
		{1280, 720, 60, modes, m(1280, 720, 60, hal.PixelYUYV)},
		{1280, 720, 15, modes, m(1280, 720, 30, hal.PixelI420)},
		{800, 600, 30, modes, m(640, 360, 30, hal.PixelI420)},
		{320, 240, 30, modes, m(640, 360, 30, hal.PixelI420)}, // none fits: the smallest
		{3840, 2160, 30, modes, m(1920, 1080, 30, hal.PixelI420)},
		{1280, 720, 30, []hal.VideoMode{m(1280, 720, 30, hal.PixelMJPG), m(640, 480, 15, hal.PixelYUYV)}, m(1280, 720, 30, hal.PixelMJPG)},
	} {
		got, err := chooseVideoMode(tc.modes, tc.w, tc.h, tc.fps)
		if err != nil || got != tc.want {
			t.Errorf("caps %dx%d@%d: got %+v (%v), want %+v", tc.w, tc.h, tc.fps, got, err, tc.want)
		}
	}
	if _, err := chooseVideoMode([]hal.VideoMode{m(1280, 720, 30, hal.PixelH264)}, 1280, 720, 30); err == nil {
		t.Errorf("H.264-only camera: no error")
	}
}

func TestChooseAudioFormat(t *testing.T) {
	got, ok := chooseAudioFormat([]hal.AudioFormat{{SampleRate: 44100, Channels: 2}, {SampleRate: 48000, Channels: 2}, {SampleRate: 48000, Channels: 1}})
	if !ok || got != (hal.AudioFormat{SampleRate: 48000, Channels: 2}) {
		t.Errorf("got %+v", got)
	}
	got, ok = chooseAudioFormat([]hal.AudioFormat{{SampleRate: 16000, Channels: 1}})
	if !ok || got.SampleRate != 16000 {
		t.Errorf("got %+v", got)
	}
	if _, ok := chooseAudioFormat(nil); ok {
		t.Errorf("no formats: ok")
	}
}

func TestVideoShare(t *testing.T) {
	for _, tc := range []struct {
		target, audio, floor, ceiling int
		caps                          []int
		want                          int
	}{
		{1_000_000, 32_000, 100_000, 1_500_000, nil, 968_000},
		{3_000_000, 32_000, 100_000, 1_500_000, nil, 1_500_000},          // configured ceiling
		{1_000_000, 32_000, 100_000, 1_500_000, []int{500_000}, 500_000}, // REMB
		{1_000_000, 32_000, 100_000, 1_500_000, []int{0, 700_000}, 700_000},
		{100_000, 32_000, 100_000, 1_500_000, nil, 100_000},            // floor
		{1_000_000, 32_000, 100_000, 1_500_000, []int{64_000}, 64_000}, // the remote beats the floor
	} {
		if got := videoShare(tc.target, tc.audio, tc.floor, tc.ceiling, tc.caps...); got != tc.want {
			t.Errorf("videoShare(%d, %d, %d, %d, %v) = %d, want %d", tc.target, tc.audio, tc.floor, tc.ceiling, tc.caps, got, tc.want)
		}
	}
}

func TestVideoBandwidthCap(t *testing.T) {
	sdp := "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nb=AS:64\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nb=AS:800\r\n"
	if got := videoBandwidthCap(sdp); got != 800_000 {
		t.Errorf("b=AS: %d", got)
	}
	sdp += "b=TIAS:512000\r\n"
	if got := videoBandwidthCap(sdp); got != 512_000 {
		t.Errorf("b=TIAS: %d", got)
	}
	if got := videoBandwidthCap("v=0\r\nm=video 9 x 96\r\n"); got != 0 {
		t.Errorf("none: %d", got)
	}
}

func TestKeyframeDetection(t *testing.T) {
	pic := hal.VideoFrame{Width: 32, Height: 32, Data: make([]byte, 32*32*3/2)}
	if !isKeyframe(hal.CodecVP8, fakeVP8(pic, true)) || isKeyframe(hal.CodecVP8, fakeVP8(pic, false)) {
		t.Errorf("VP8")
	}
	if w, h, ok := vp8Size(fakeVP8(pic, true)); !ok || w != 32 || h != 32 {
		t.Errorf("vp8Size = %d %d %v", w, h, ok)
	}
	if !isKeyframe(hal.CodecH264, fakeH264(pic, true)) || isKeyframe(hal.CodecH264, fakeH264(pic, false)) {
		t.Errorf("H.264")
	}
	// Three-byte start codes, an AUD first.
	au := []byte{0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x65, 0x88}
	if !isKeyframe(hal.CodecH264, au) {
		t.Errorf("H.264 IDR after AUD")
	}
	var types []byte
	forEachNAL(au, func(nal []byte) bool { types = append(types, nal[0]&0x1f); return true })
	if !slices.Equal(types, []byte{9, 5}) {
		t.Errorf("NAL types %v", types)
	}
	if isKeyframe(hal.CodecVP8, nil) || isKeyframe(hal.CodecH264, []byte{1, 2, 3}) {
		t.Errorf("garbage is a keyframe")
	}
}

func TestOpusDuration(t *testing.T) {
	for _, tc := range []struct {
		pkt  []byte
		want time.Duration
	}{
		{[]byte{fakeOpusTOC}, 20 * time.Millisecond},
		{[]byte{0x78}, 20 * time.Millisecond},       // hybrid FB 20 ms
		{[]byte{0x08}, 20 * time.Millisecond},       // SILK NB 20 ms
		{[]byte{0x18 | 1}, 120 * time.Millisecond},  // SILK 60 ms, two frames
		{[]byte{0xFB, 0x02}, 40 * time.Millisecond}, // CELT 20 ms, code 3, two frames
		{nil, 20 * time.Millisecond},
	} {
		if got := opusDuration(tc.pkt); got != tc.want {
			t.Errorf("opusDuration(%x) = %v, want %v", tc.pkt, got, tc.want)
		}
	}
}

func TestLevels(t *testing.T) {
	if got := dBov(nil); got != SilenceDBov {
		t.Errorf("empty: %v", got)
	}
	if got := dBov(make([]int16, 960)); got != SilenceDBov {
		t.Errorf("silence: %v", got)
	}
	sine := make([]int16, 960)
	for i := range sine {
		sine[i] = int16(32767 * math.Sin(2*math.Pi*float64(i)/48))
	}
	if got := dBov(sine); math.Abs(got-(-3.01)) > 0.05 {
		t.Errorf("full-scale sine: %v dBov, want -3", got)
	}
	if rfc6464Level(-3.01) != 3 || rfc6464Level(0) != 0 || rfc6464Level(-200) != 127 {
		t.Errorf("rfc6464Level")
	}
}

func TestRTPClock(t *testing.T) {
	c := newRTPClock(90000)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := c.at(t0)
	if b := c.at(t0.Add(time.Second)); b-a != 90000 {
		t.Errorf("one second = %d ticks", b-a)
	}
	// A repeated capture time must not repeat a timestamp.
	b := c.at(t0.Add(time.Second))
	if d := c.at(t0.Add(time.Second)); d == b || int32(d-b) < 0 {
		t.Errorf("timestamps not increasing: %d then %d", b, d)
	}
	if e := c.at(t0.Add(time.Hour)); e-a != 3600*90000 {
		t.Errorf("an hour = %d ticks", e-a)
	}
}

func TestPassPacerRoutesRTX(t *testing.T) {
	p := &passPacer{writers: map[uint32]interceptor.RTPWriter{}}
	var got []uint32
	p.AddStream(1, interceptor.RTPWriterFunc(func(h *rtp.Header, _ []byte, _ interceptor.Attributes) (int, error) {
		got = append(got, h.SSRC)
		return 0, nil
	}))
	p.alias(2, 1)
	p.alias(0, 1)
	for _, ssrc := range []uint32{1, 2} {
		if _, err := p.Write(&rtp.Header{SSRC: ssrc}, nil, nil); err != nil {
			t.Errorf("write SSRC %d: %v", ssrc, err)
		}
	}
	if _, err := p.Write(&rtp.Header{SSRC: 3}, nil, nil); err == nil {
		t.Errorf("unknown SSRC accepted")
	}
	if !slices.Equal(got, []uint32{1, 2}) {
		t.Errorf("written %v", got)
	}
}

func TestNTPTime(t *testing.T) {
	want := time.Date(2026, 3, 14, 15, 9, 26, 535_897_932, time.UTC)
	ext := rtp.NewAbsCaptureTimeExtension(want)
	if got := ntpTime(ext.Timestamp); got.Sub(want).Abs() > time.Microsecond {
		t.Errorf("ntpTime = %v, want %v", got, want)
	}
}

func TestMixerSumsAndClips(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 10*time.Second)
	spk := &fakeSpeaker{format: hal.AudioFormat{SampleRate: 48000, Channels: 1}}
	m := newMixer(spk, spk.format, testLogger(t))
	a, b := m.add(), m.add()
	m.add()
	waitFor(t, ctx, "speaker open", spk.isOpen)
	spk.mu.Lock()
	if spk.opens != 1 {
		t.Errorf("speaker opened %d times for three inputs", spk.opens)
	}
	spk.mu.Unlock()
	loud := make([]int16, 4800) // 100 ms
	quiet := make([]int16, 4800)
	for i := range loud {
		loud[i], quiet[i] = 20000, 1000
	}
	a.push(loud)
	b.push(loud)
	waitFor(t, ctx, "clipped samples", func() bool { return slices.Contains(spk.samples(), math.MaxInt16) })
	if slices.ContainsFunc(spk.samples(), func(s int16) bool { return s != 0 && s != math.MaxInt16 }) {
		t.Errorf("unexpected sample values")
	}
	a.push(quiet)
	b.push(quiet)
	waitFor(t, ctx, "a summed sample", func() bool { return slices.Contains(spk.samples(), 2000) })

	// The queue is bounded: a burst of 1 s keeps only the last 200 ms.
	a.push(make([]int16, 48000))
	a.mu.Lock()
	if n := len(a.queue); n != 9600 {
		t.Errorf("queue %d samples, want 9600", n)
	}
	a.mu.Unlock()

	m.mu.Lock()
	inputs := slices.Collect(func(yield func(*mixInput) bool) {
		for in := range m.inputs {
			if !yield(in) {
				return
			}
		}
	})
	m.mu.Unlock()
	for _, in := range inputs {
		m.remove(in)
	}
	if spk.isOpen() {
		t.Errorf("speaker still open after the last input left")
	}
	// And it opens again for the next track.
	c := m.add()
	waitFor(t, ctx, "speaker reopened", spk.isOpen)
	m.remove(c)
}

func TestSendableVideoCodecsOrder(t *testing.T) {
	hwH264 := &fakeVideoEncoderFactory{id: "hw", hardware: true, codecs: []hal.Codec{hal.CodecH264}}
	sw := &fakeVideoEncoderFactory{id: "sw", codecs: []hal.Codec{hal.CodecH264, hal.CodecVP9, hal.CodecVP8}}
	if got := sendableVideoCodecs([]hal.VideoEncoderFactory{hwH264, sw}); !slices.Equal(got, []hal.Codec{hal.CodecH264, hal.CodecVP8}) {
		t.Errorf("hardware H.264 first: %v", got)
	}
	if got := sendableVideoCodecs([]hal.VideoEncoderFactory{sw}); !slices.Equal(got, []hal.Codec{hal.CodecVP8, hal.CodecH264}) {
		t.Errorf("software only: %v", got)
	}
	if got := sendableVideoCodecs(nil); len(got) != 0 {
		t.Errorf("none: %v", got)
	}
}

func TestAssemblerWithholdsAfterLossNotPadding(t *testing.T) {
	pay := &codecs.VP8Payloader{EnablePictureID: true}
	seq, ts := uint16(65530), uint32(1000) // across the sequence number wrap
	frame := func(key bool) []*rtp.Packet {
		data := fakeVP8(hal.VideoFrame{Width: 32, Height: 32, Data: make([]byte, 3000)}, key)
		var out []*rtp.Packet
		pls := pay.Payload(rtpPayloadMTU, data)
		for i, pl := range pls {
			out = append(out, &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts, Marker: i == len(pls)-1}, Payload: pl})
			seq++
		}
		ts += 6000
		return out
	}
	padding := func() []*rtp.Packet {
		p := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts - 6000, Padding: true}}
		seq++
		return []*rtp.Packet{p}
	}
	a := newAssembler(hal.CodecVP8, videoClockRate)
	var emitted []bool // keyframe flags
	withheld := 0
	push := func(pkts ...[]*rtp.Packet) {
		for _, ps := range pkts {
			for _, p := range ps {
				a.push(p, func(_ *media.Sample, key bool) { emitted = append(emitted, key) }, func() { withheld++ })
			}
		}
	}

	push(frame(false), frame(true), frame(false), padding(), frame(false), padding(), padding(), frame(false), frame(false))
	// The delta frame before the first keyframe is withheld; the last frame
	// waits for the packet after it.
	if withheld != 1 || !slices.Equal(emitted, []bool{true, false, false, false}) {
		t.Fatalf("clean stream: emitted %v, withheld %d", emitted, withheld)
	}

	lossy := frame(false)
	push(lossy[:1], lossy[2:])
	for range 20 {
		push(frame(false))
	}
	push(frame(true), frame(false), frame(false))
	if withheld < 10 {
		t.Errorf("after a loss: %d frames withheld, want the deltas until the keyframe", withheld)
	}
	// The delta that was waiting before the loss, then nothing until the
	// keyframe, then the delta after it (the last one waits).
	if !slices.Equal(emitted[4:], []bool{false, true, false}) {
		t.Errorf("after a loss: emitted %v", emitted[4:])
	}
}

// Janus matches a PLI to the stream it is about by the receiver report
// before it (see pliPacket).
func TestPLIPacket(t *testing.T) {
	pkts := pliPacket(1234)
	if len(pkts) != 2 {
		t.Fatalf("%d packets, want a receiver report and a PLI", len(pkts))
	}
	rr, ok := pkts[0].(*rtcp.ReceiverReport)
	if !ok || len(rr.Reports) != 1 || rr.Reports[0].SSRC != 1234 {
		t.Errorf("first packet = %+v, want a receiver report on SSRC 1234", pkts[0])
	}
	pli, ok := pkts[1].(*rtcp.PictureLossIndication)
	if !ok || pli.MediaSSRC != 1234 || pli.SenderSSRC != rr.SSRC {
		t.Errorf("second packet = %+v, want a PLI for 1234 from %d", pkts[1], rr.SSRC)
	}
	if _, err := rtcp.Marshal(pkts); err != nil {
		t.Errorf("marshal: %v", err)
	}
}
