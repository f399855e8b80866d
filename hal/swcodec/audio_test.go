package swcodec

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
)

// mic is the simulated microphone driven by a fake clock.
type mic struct {
	clock   *sim.FakeClock
	capture hal.AudioCapture
	format  hal.AudioFormat
}

// openMic opens the simulated microphone playing toneHz. Its beeps come
// once an hour, on the hour, far from epoch, so the signal is a pure tone.
func openMic(t testing.TB, format hal.AudioFormat, toneHz float64) *mic {
	t.Helper()
	clock := sim.NewFakeClock(epoch)
	d, err := sim.New(sim.Config{
		SampleRate: format.SampleRate, Channels: format.Channels,
		ToneHz: toneHz, BeepInterval: time.Hour, Clock: clock,
	})
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	c, err := d.Microphone().Open(context.Background(), format)
	if err != nil {
		t.Fatalf("open microphone: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &mic{clock: clock, capture: c, format: format}
}

// read returns the next frames sample frames and the first one's capture
// time, moving the fake clock on far enough for them to be there.
func (m *mic) read(t testing.TB, frames int) ([]int16, time.Time) {
	t.Helper()
	m.clock.Advance(time.Duration(frames+1) * time.Second / time.Duration(m.format.SampleRate))
	buf := make([]int16, frames*m.format.Channels)
	n, at, err := m.capture.Read(testContext(t), buf)
	if err != nil || n != len(buf) {
		t.Fatalf("read microphone: %d of %d samples, %v", n, len(buf), err)
	}
	return buf, at
}

// channel extracts one channel of interleaved samples.
func channel(pcm []int16, channels, ch int) []float64 {
	out := make([]float64, 0, len(pcm)/channels)
	for i := ch; i < len(pcm); i += channels {
		out = append(out, float64(pcm[i]))
	}
	return out
}

// toneFrequency measures a steady tone's frequency from its rising zero
// crossings, interpolated between samples.
func toneFrequency(x []float64, rate int) float64 {
	first, last, n := -1.0, -1.0, 0
	for i := 1; i < len(x); i++ {
		if x[i-1] < 0 && x[i] >= 0 {
			p := float64(i-1) + -x[i-1]/(x[i]-x[i-1])
			if first < 0 {
				first = p
			}
			last = p
			n++
		}
	}
	if n < 2 {
		return 0
	}
	return float64(n-1) * float64(rate) / (last - first)
}

func rms(x []float64) float64 {
	sum := 0.0
	for _, v := range x {
		sum += v * v
	}
	return math.Sqrt(sum / float64(len(x)))
}

// TestOpusRoundTrip encodes the simulated microphone's tone with Opus,
// decodes it with the libopus binding, and measures what came out.
func TestOpusRoundTrip(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		name   string
		format hal.AudioFormat
		toneHz float64
	}{
		{"mono 48k", hal.AudioFormat{SampleRate: 48000, Channels: 1}, 440},
		{"stereo 48k", hal.AudioFormat{SampleRate: 48000, Channels: 2}, 1234},
		{"mono 16k", hal.AudioFormat{SampleRate: 16000, Channels: 1}, 440},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			m := openMic(t, tc.format, tc.toneHz)
			enc, err := NewAudioEncoders(nil).NewAudioEncoder(ctx, hal.AudioEncoderConfig{Codec: hal.CodecOpus, Format: tc.format, BitrateBps: 64_000})
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			dec, err := NewAudioDecoders(nil).NewAudioDecoder(ctx, hal.CodecOpus, tc.format)
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()

			ch, rate := tc.format.Channels, tc.format.SampleRate
			perPacket := rate / 50
			// Chunks that are not whole packets exercise the buffering.
			chunk := perPacket*3/4 + 1
			var packets []hal.EncodedFrame
			var start time.Time
			for total := 0; total < rate; total += chunk {
				samples, at := m.read(t, chunk)
				if total == 0 {
					start = at
				}
				out, err := enc.Encode(ctx, samples, at)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				packets = append(packets, out...)
			}
			if want := (rate / chunk) * chunk / perPacket; len(packets) < want {
				t.Fatalf("%d packets for %d samples, want %d", len(packets), rate, want)
			}
			var pcm []int16
			for k, p := range packets {
				wantAt := start.Add(time.Duration(k) * OpusFrameDuration)
				if p.Codec != hal.CodecOpus || p.Duration != OpusFrameDuration || !p.Keyframe || len(p.Data) == 0 ||
					p.CapturedAt.Sub(wantAt).Abs() > time.Microsecond {
					t.Errorf("packet %d: Codec %s Duration %v Keyframe %v %d bytes CapturedAt %v; want Opus, 20ms, true, >0, %v",
						k, p.Codec, p.Duration, p.Keyframe, len(p.Data), p.CapturedAt, wantAt)
				}
				out, err := dec.Decode(ctx, p)
				if err != nil {
					t.Fatalf("Decode packet %d: %v", k, err)
				}
				if len(out) != perPacket*ch {
					t.Fatalf("packet %d decoded to %d samples, want %d", k, len(out), perPacket*ch)
				}
				pcm = append(pcm, out...)
			}

			// Skip the codec's start-up (lookahead, pre-skip, the first
			// packets' rate control) before measuring.
			skip := rate / 10
			left := channel(pcm, ch, 0)[skip:]
			t.Logf("decoded %d packets: tone %.2f Hz (sent %.0f Hz), RMS %.0f", len(packets), toneFrequency(left, rate), tc.toneHz, rms(left))
			if f := toneFrequency(left, rate); math.Abs(f-tc.toneHz)/tc.toneHz > 0.02 {
				t.Errorf("decoded tone at %.1f Hz, want %.0f Hz ± 2%%", f, tc.toneHz)
			}
			// The tone is at -12 dBFS: an RMS of 0.25/√2 of full scale.
			want := 0.25 * math.MaxInt16 / math.Sqrt2
			if got := rms(left); got < 0.75*want || got > 1.25*want {
				t.Errorf("decoded tone RMS %.0f, want %.0f ± 25%%", got, want)
			}
			if ch == 2 {
				right := channel(pcm, ch, 1)[skip:]
				if f := toneFrequency(right, rate); math.Abs(f-tc.toneHz)/tc.toneHz > 0.02 {
					t.Errorf("right channel: tone at %.1f Hz, want %.0f Hz", f, tc.toneHz)
				}
				// The simulated microphone plays the right channel at half level.
				if r := rms(right) / rms(left); r < 0.4 || r > 0.6 {
					t.Errorf("right/left level %.2f, want 0.5", r)
				}
			}

			// A lost packet: concealment produces 20 ms by default, or the
			// duration the caller says was lost.
			for _, c := range []struct {
				dur  time.Duration
				want int
			}{{0, perPacket}, {10 * time.Millisecond, perPacket / 2}, {60 * time.Millisecond, 3 * perPacket}} {
				out, err := dec.Decode(ctx, hal.EncodedFrame{Codec: hal.CodecOpus, Duration: c.dur})
				if err != nil || len(out) != c.want*ch {
					t.Errorf("conceal %v: %d samples, %v; want %d", c.dur, len(out), err, c.want*ch)
				}
			}
			if _, err := dec.Decode(ctx, hal.EncodedFrame{Duration: 3 * time.Millisecond}); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("conceal 3ms = %v, want ErrInvalidConfig", err)
			}
			// Decoding resumes after concealment.
			if out, err := dec.Decode(ctx, packets[len(packets)-1]); err != nil || len(out) != perPacket*ch {
				t.Errorf("Decode after concealment: %d samples, %v", len(out), err)
			}
		})
	}
}

// TestOpusConcealOnly checks concealment on a decoder that never saw a
// packet: silence of the right length.
func TestOpusConcealOnly(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	dec, err := NewAudioDecoders(nil).NewAudioDecoder(ctx, hal.CodecOpus, hal.AudioFormat{SampleRate: 48000, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	out, err := dec.Decode(ctx, hal.EncodedFrame{})
	if err != nil || len(out) != 2*960 {
		t.Fatalf("conceal = %d samples, %v; want 1920", len(out), err)
	}
	for _, s := range out {
		if s != 0 {
			t.Fatalf("concealment with nothing to extrapolate gave %d, want silence", s)
		}
	}
}

func TestOpusSetBitrate(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	format := hal.AudioFormat{SampleRate: 48000, Channels: 1}
	m := openMic(t, format, 440)
	enc, err := NewAudioEncoders(nil).NewAudioEncoder(ctx, hal.AudioEncoderConfig{Codec: hal.CodecOpus, Format: format, BitrateBps: 96_000})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	second := func() int {
		bytes := 0
		for range 50 {
			samples, at := m.read(t, 960)
			out, err := enc.Encode(ctx, samples, at)
			if err != nil || len(out) != 1 {
				t.Fatalf("Encode = %d packets, %v; want 1", len(out), err)
			}
			bytes += len(out[0].Data)
		}
		return bytes
	}
	second() // settle
	high := second()
	if err := enc.SetBitrate(12_000); err != nil {
		t.Fatal(err)
	}
	low := second()
	t.Logf("Opus: %d bytes/s at 96 kbps, %d bytes/s at 12 kbps", high, low)
	if low*3 > high {
		t.Errorf("lowering the bitrate 8x took output from %d to %d bytes/s; want at least 3x less", high, low)
	}
	if err := enc.SetBitrate(1000); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetBitrate(1000) = %v, want ErrInvalidConfig", err)
	}
}

func TestAudioInvalidConfig(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	mono := hal.AudioFormat{SampleRate: 48000, Channels: 1}
	for _, tc := range []struct {
		name string
		cfg  hal.AudioEncoderConfig
		want error
	}{
		{"VP8", hal.AudioEncoderConfig{Codec: hal.CodecVP8, Format: mono}, ErrUnsupportedCodec},
		{"44.1 kHz", hal.AudioEncoderConfig{Codec: hal.CodecOpus, Format: hal.AudioFormat{SampleRate: 44100, Channels: 1}}, ErrInvalidConfig},
		{"3 channels", hal.AudioEncoderConfig{Codec: hal.CodecOpus, Format: hal.AudioFormat{SampleRate: 48000, Channels: 3}}, ErrInvalidConfig},
		{"zero format", hal.AudioEncoderConfig{Codec: hal.CodecOpus}, ErrInvalidConfig},
		{"1 kbps", hal.AudioEncoderConfig{Codec: hal.CodecOpus, Format: mono, BitrateBps: 1000}, ErrInvalidConfig},
		{"negative bitrate", hal.AudioEncoderConfig{Codec: hal.CodecOpus, Format: mono, BitrateBps: -1}, ErrInvalidConfig},
	} {
		if enc, err := NewAudioEncoders(nil).NewAudioEncoder(ctx, tc.cfg); !errors.Is(err, tc.want) {
			if enc != nil {
				enc.Close()
			}
			t.Errorf("%s: NewAudioEncoder(%+v) = %v, want %v", tc.name, tc.cfg, err, tc.want)
		}
	}
	for _, tc := range []struct {
		codec  hal.Codec
		format hal.AudioFormat
		want   error
	}{
		{hal.CodecVP8, mono, ErrUnsupportedCodec},
		{hal.CodecOpus, hal.AudioFormat{SampleRate: 22050, Channels: 1}, ErrInvalidConfig},
		{hal.CodecOpus, hal.AudioFormat{SampleRate: 48000, Channels: 0}, ErrInvalidConfig},
	} {
		if dec, err := NewAudioDecoders(nil).NewAudioDecoder(ctx, tc.codec, tc.format); !errors.Is(err, tc.want) {
			if dec != nil {
				dec.Close()
			}
			t.Errorf("NewAudioDecoder(%s, %+v) = %v, want %v", tc.codec, tc.format, err, tc.want)
		}
	}

	// Bitrate 0 means the default.
	stereo := hal.AudioFormat{SampleRate: 48000, Channels: 2}
	enc, err := NewAudioEncoders(nil).NewAudioEncoder(ctx, hal.AudioEncoderConfig{Codec: hal.CodecOpus, Format: stereo})
	if err != nil {
		t.Fatalf("NewAudioEncoder with the default bitrate: %v", err)
	}
	if _, err := enc.Encode(ctx, make([]int16, 3), time.Now()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Encode(3 stereo samples) = %v, want ErrInvalidConfig", err)
	}
	if out, err := enc.Encode(ctx, make([]int16, 2*959), time.Now()); err != nil || len(out) != 0 {
		t.Errorf("Encode(959 frames) = %d packets, %v; want 0 (buffered)", len(out), err)
	}
	if out, err := enc.Encode(ctx, make([]int16, 2), time.Now()); err != nil || len(out) != 1 {
		t.Errorf("Encode(the 960th frame) = %d packets, %v; want 1", len(out), err)
	}
	if err := enc.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := enc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := enc.Encode(ctx, make([]int16, 1920), time.Now()); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Encode after Close = %v, want ErrClosed", err)
	}
	if err := enc.SetBitrate(32_000); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("SetBitrate after Close = %v, want ErrClosed", err)
	}

	dec, err := NewAudioDecoders(nil).NewAudioDecoder(ctx, hal.CodecOpus, mono)
	if err != nil {
		t.Fatal(err)
	}
	// A TOC byte announcing an illegal frame count (code 3 with count 0).
	if _, err := dec.Decode(ctx, hal.EncodedFrame{Codec: hal.CodecOpus, Data: []byte{0x03, 0x00}}); err == nil {
		t.Errorf("Decode(corrupt packet) succeeded")
	}
	if _, err := dec.Decode(ctx, hal.EncodedFrame{Codec: hal.CodecVP8, Data: []byte{1}}); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("Decode(VP8 frame) = %v, want ErrUnsupportedCodec", err)
	}
	if err := dec.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := dec.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := dec.Decode(ctx, hal.EncodedFrame{}); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Decode after Close = %v, want ErrClosed", err)
	}
}
