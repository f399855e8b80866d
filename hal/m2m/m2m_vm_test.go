//go:build vmguest

package m2m

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

func vmLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func vmContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// vicodec finds vicodec's stateful encoder and decoder.
func vicodec(t testing.TB, cfg Config) (*Encoder, *Decoder, []hal.Device) {
	t.Helper()
	if os.Getenv("ATRIUM_VM") != "1" {
		t.Fatal("guest test outside the VM (ATRIUM_VM is not 1)")
	}
	if cfg.Logger == nil {
		cfg.Logger = vmLogger(t)
	}
	devs, err := New(cfg).Enumerate(vmContext(t))
	if err != nil {
		t.Fatalf("Enumerate: %v", err)
	}
	var enc *Encoder
	var dec *Decoder
	for _, d := range devs {
		switch d := d.(type) {
		case *Encoder:
			if strings.Contains(d.Info().ID, "vicodec") {
				enc = d
			}
		case *Decoder:
			if strings.Contains(d.Info().ID, "vicodec") {
				dec = d
			}
		}
	}
	if enc == nil || dec == nil {
		t.Fatalf("vicodec encoder %v, decoder %v: want both", enc, dec)
	}
	return enc, dec, devs
}

func codecsOf(d hal.Device) []hal.CodecCaps {
	switch d := d.(type) {
	case hal.VideoEncoderFactory:
		return d.Codecs()
	case hal.VideoDecoderFactory:
		return d.Codecs()
	}
	return nil
}

// TestVMProbe: of the guest's video nodes (vivid's cameras and outputs,
// vicodec's three nodes, vim2m), exactly vicodec's stateful encoder and
// decoder are codecs, with the caps vicodec has.
func TestVMProbe(t *testing.T) {
	_, _, devs := vicodec(t, Config{})
	var got []string
	for _, d := range devs {
		i := d.Info()
		got = append(got, fmt.Sprintf("%s %s %q %s %+v", i.ID, i.Kind, i.Name, i.Driver, codecsOf(d)))
	}
	want := []string{
		`v4l2-m2m:platform:vicodec/stateful-encoder video-encoder "vicodec FWHT encoder (kernel test codec)" v4l2-m2m [{Codec:FWHT MaxWidth:4096 MaxHeight:2160 MaxSessions:4 Hardware:true}]`,
		`v4l2-m2m:platform:vicodec/stateful-decoder video-decoder "vicodec FWHT decoder (kernel test codec)" v4l2-m2m [{Codec:FWHT MaxWidth:4096 MaxHeight:2160 MaxSessions:4 Hardware:true}]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("devices:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The check means something only if the nodes that must be left out
	// are there.
	names, _ := filepath.Glob("/sys/class/video4linux/video*/name")
	seen := map[string]bool{}
	for _, n := range names {
		b, _ := os.ReadFile(n)
		seen[strings.TrimSpace(string(b))] = true
	}
	for _, n := range []string{"vim2m", "stateless-decoder", "vivid-000-vid-cap", "vivid-000-vid-out"} {
		if !seen[n] {
			t.Errorf("no %s node in the guest (nodes: %v)", n, seen)
		}
	}
}

// encodeDecode encodes n frames of the test pattern at w×h through vicodec
// with a keyframe every gop frames and one forced at frame force, checks
// the coded stream, decodes it back and returns the PSNRs.
func encodeDecode(t *testing.T, enc *Encoder, dec *Decoder, w, h, n, gop, force int) []float64 {
	t.Helper()
	ctx := vmContext(t)
	e, err := enc.NewVideoEncoder(ctx, hal.VideoEncoderConfig{
		Codec: hal.CodecFWHT, Width: w, Height: h, FPS: 30, BitrateBps: 2_000_000,
		KeyframeInterval: time.Duration(gop) * time.Second / 30,
	})
	if err != nil {
		t.Fatalf("NewVideoEncoder: %v", err)
	}
	defer func() {
		if err := e.Close(); err != nil {
			t.Errorf("encoder Close: %v", err)
		}
	}()
	var inputs []hal.VideoFrame
	var coded []hal.EncodedFrame
	var took time.Duration
	bytes := 0
	for i := range n {
		f := testFrame(w, h, i)
		inputs = append(inputs, f)
		if i == force {
			e.ForceKeyframe()
		}
		start := time.Now()
		out, err := e.Encode(ctx, f)
		took += time.Since(start)
		if err != nil {
			t.Fatalf("Encode frame %d: %v", i, err)
		}
		if len(out) != 1 {
			t.Fatalf("frame %d: %d coded frames, want 1", i, len(out))
		}
		if !out[0].CapturedAt.Equal(f.CapturedAt) || out[0].Codec != hal.CodecFWHT {
			t.Errorf("frame %d: coded frame for %v (%s), want %v", i, out[0].CapturedAt, out[0].Codec, f.CapturedAt)
		}
		wantKey := i%gop == 0 || i == force
		if i > force {
			wantKey = (i-force)%gop == 0
		}
		if out[0].Keyframe != wantKey {
			t.Errorf("frame %d: keyframe %v, want %v", i, out[0].Keyframe, wantKey)
		}
		bytes += len(out[0].Data)
		coded = append(coded, out[0])
	}
	t.Logf("encoded %d frames %dx%d in %v (%v per frame), %d bytes (%d per frame)", n, w, h, took, took/time.Duration(n), bytes, bytes/n)

	d, err := dec.NewVideoDecoder(ctx, hal.CodecFWHT)
	if err != nil {
		t.Fatalf("NewVideoDecoder: %v", err)
	}
	defer func() {
		if err := d.Close(); err != nil {
			t.Errorf("decoder Close: %v", err)
		}
	}()
	var pics []hal.VideoFrame
	took = 0
	for i, c := range coded {
		start := time.Now()
		out, err := d.Decode(ctx, c)
		took += time.Since(start)
		if err != nil {
			t.Fatalf("Decode frame %d: %v", i, err)
		}
		pics = append(pics, out...)
	}
	t.Logf("decoded %d pictures in %v (%v per frame)", len(pics), took, took/time.Duration(n))
	if len(pics) != n {
		t.Fatalf("%d pictures for %d frames", len(pics), n)
	}
	var ps []float64
	for i, p := range pics {
		if p.Width != w || p.Height != h || p.Format != hal.PixelI420 || p.Seq != uint64(i) || !p.CapturedAt.Equal(inputs[i].CapturedAt) {
			t.Errorf("picture %d: %dx%d %s seq %d at %v, want %dx%d I420 seq %d at %v", i, p.Width, p.Height, p.Format, p.Seq, p.CapturedAt, w, h, i, inputs[i].CapturedAt)
			continue
		}
		ps = append(ps, psnr(inputs[i].Data, p.Data))
	}
	return ps
}

func TestVMEncodeDecode(t *testing.T) {
	enc, dec, _ := vicodec(t, Config{})
	for _, sz := range []struct{ w, h, n int }{{1280, 720, 60}, {640, 360, 30}} {
		t.Run(itoa(sz.w)+"x"+itoa(sz.h), func(t *testing.T) {
			ps := encodeDecode(t, enc, dec, sz.w, sz.h, sz.n, 10, 25)
			lo, sum := 1000.0, 0.0
			for _, p := range ps {
				lo = min(lo, p)
				sum += p
			}
			t.Logf("PSNR %dx%d: min %.2f dB, mean %.2f dB over %d pictures", sz.w, sz.h, lo, sum/float64(len(ps)), len(ps))
			// vicodec's FWHT at its default quantiser (QP 20) measured
			// 41-47 dB on this pattern; a conversion or stride error, or a
			// picture swapped with its neighbour, falls below 25 dB.
			if lo < minPSNR {
				t.Errorf("PSNR %.2f dB, want at least %.0f dB", lo, minPSNR)
			}
		})
	}
}

// minPSNR is the lowest PSNR accepted from an FWHT round trip.
const minPSNR = 35.0

func itoa(i int) string { return strconv.Itoa(i) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// psnr compares two I420 pictures of the same size over all three planes,
// in dB; identical pictures give +Inf.
func psnr(a, b []byte) float64 {
	if len(a) != len(b) || len(a) == 0 {
		return 0
	}
	var sum float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		sum += d * d
	}
	if sum == 0 {
		return math.Inf(1)
	}
	mse := sum / float64(len(a))
	return 10 * math.Log10(255*255/mse)
}

// TestVMConcurrentSessions runs more vicodec encoder sessions at once than
// the reported MaxSessions, interleaved, and checks each keeps its own
// stream. vicodec has no session limit of its own (each open is a context,
// limited only by memory), so hal.ErrBusy cannot be provoked here; the
// unit tests cover EBUSY and ENOMEM with a fake device.
func TestVMConcurrentSessions(t *testing.T) {
	enc, _, _ := vicodec(t, Config{Logger: discard()})
	ctx := vmContext(t)
	const sessions = DefaultMaxSessions + 2
	var encs []hal.VideoEncoder
	for range sessions {
		e, err := enc.NewVideoEncoder(ctx, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 640, Height: 360, FPS: 30, KeyframeInterval: 5 * time.Second / 30})
		if err != nil {
			t.Fatalf("session %d: %v", len(encs), err)
		}
		defer e.Close()
		encs = append(encs, e)
	}
	for i := range 6 {
		for s, e := range encs {
			f := testFrame(640, 360, i+100*s)
			out, err := e.Encode(ctx, f)
			if err != nil || len(out) != 1 {
				t.Fatalf("session %d frame %d: %d outputs, %v", s, i, len(out), err)
			}
			if !out[0].CapturedAt.Equal(f.CapturedAt) || out[0].Keyframe != (i%5 == 0) {
				t.Errorf("session %d frame %d: at %v keyframe %v", s, i, out[0].CapturedAt, out[0].Keyframe)
			}
		}
	}
}

// TestVMResolutionChange changes the picture size mid-stream: the encoder
// session restarts vicodec at the new size (the first frame there is a
// keyframe), and the decoder session follows vicodec's source change (the
// dynamic resolution change sequence) without being reopened.
func TestVMResolutionChange(t *testing.T) {
	enc, dec, _ := vicodec(t, Config{})
	ctx := vmContext(t)
	e, err := enc.NewVideoEncoder(ctx, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 640, Height: 360, FPS: 30, KeyframeInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	d, err := dec.NewVideoDecoder(ctx, hal.CodecFWHT)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sizes := [][2]int{{640, 360}, {640, 360}, {640, 360}, {1280, 720}, {1280, 720}, {1280, 720}, {640, 480}, {640, 480}}
	for i, sz := range sizes {
		f := testFrame(sz[0], sz[1], i)
		coded, err := e.Encode(ctx, f)
		if err != nil || len(coded) != 1 {
			t.Fatalf("encode %d (%dx%d): %d frames, %v", i, sz[0], sz[1], len(coded), err)
		}
		if changed := i == 0 || sizes[i-1] != sz; coded[0].Keyframe != changed {
			t.Errorf("frame %d: keyframe %v, want %v", i, coded[0].Keyframe, changed)
		}
		pics, err := d.Decode(ctx, coded[0])
		if err != nil || len(pics) != 1 {
			t.Fatalf("decode %d: %d pictures, %v", i, len(pics), err)
		}
		p := pics[0]
		if p.Width != sz[0] || p.Height != sz[1] || p.Seq != uint64(i) || !p.CapturedAt.Equal(f.CapturedAt) {
			t.Errorf("picture %d: %dx%d seq %d, want %dx%d seq %d", i, p.Width, p.Height, p.Seq, sz[0], sz[1], i)
			continue
		}
		if q := psnr(f.Data, p.Data); q < minPSNR {
			t.Errorf("picture %d: PSNR %.2f dB", i, q)
		}
	}
}
