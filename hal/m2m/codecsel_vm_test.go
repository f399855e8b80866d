//go:build vmguest

package m2m

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/codecsel"
	"github.com/atriumroom/atrium/hal/internal/v4l2"
)

// faultyFD is a real device node that can be made to stop answering, as
// hung hardware does: no buffer ever comes back (VIDIOC_DQBUF says EAGAIN)
// and Poll waits out its timeout (or its context) with nothing ready.
// (vicodec encodes inside VIDIOC_QBUF, so stalling Poll alone would not do.)
type faultyFD struct {
	v4l2.FD
	stall *atomic.Bool
}

func (f faultyFD) Ioctl(req uint32, arg unsafe.Pointer) error {
	if f.stall.Load() && req == v4l2.IoctlDQBuf {
		return unix.EAGAIN
	}
	return f.FD.Ioctl(req, arg)
}

func (f faultyFD) Poll(ctx context.Context, events int16, timeout time.Duration) (int16, error) {
	if !f.stall.Load() {
		return f.FD.Poll(ctx, events, timeout)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-t.C:
		return 0, nil
	}
}

// opener records the nodes sessions open, so a test can break one.
type opener struct {
	mu    sync.Mutex
	fds   []v4l2.FD
	stall atomic.Bool
}

func (o *opener) open(path string) (v4l2.FD, error) {
	fd, err := v4l2.OpenFD(path)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fds = append(o.fds, fd)
	return faultyFD{FD: fd, stall: &o.stall}, nil
}

func (o *opener) last() v4l2.FD {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fds[len(o.fds)-1]
}

// swFWHT is a software "FWHT" codec for the fallback tests: it does not
// compress, it marks each output with its own name, so a test sees which
// path produced what. It lives here because nothing else may pretend to
// be a software FWHT codec.
type swFWHT struct{ opened atomic.Int32 }

func (f *swFWHT) Info() hal.Info {
	return hal.Info{ID: "test:sw-fwht", Kind: hal.KindVideoEncoder, Name: "test software FWHT", Driver: "software"}
}

func (f *swFWHT) Codecs() []hal.CodecCaps {
	return []hal.CodecCaps{{Codec: hal.CodecFWHT, MaxWidth: 4096, MaxHeight: 2160}}
}

func (f *swFWHT) NewVideoEncoder(_ context.Context, cfg hal.VideoEncoderConfig) (hal.VideoEncoder, error) {
	f.opened.Add(1)
	return &swSession{bps: cfg.BitrateBps}, nil
}

func (f *swFWHT) NewVideoDecoder(context.Context, hal.Codec) (hal.VideoDecoder, error) {
	f.opened.Add(1)
	return &swSession{}, nil
}

type swSession struct {
	mu       sync.Mutex
	n        int
	key      bool
	bps      int
	sawKey   bool
	refusals int
}

func (s *swSession) Encode(_ context.Context, f hal.VideoFrame) ([]hal.EncodedFrame, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := s.n == 0 || s.key
	s.n++
	s.key = false
	return []hal.EncodedFrame{{Codec: hal.CodecFWHT, Data: []byte(fmt.Sprintf("sw %d", f.Seq)), Keyframe: key, CapturedAt: f.CapturedAt}}, nil
}

func (s *swSession) Decode(_ context.Context, f hal.EncodedFrame) ([]hal.VideoFrame, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Keyframe {
		s.sawKey = true
	}
	if !s.sawKey {
		s.refusals++
		return nil, errors.New("software decoder: inter frame without a keyframe")
	}
	return []hal.VideoFrame{{Width: 8, Height: 8, Format: hal.PixelI420, Data: []byte("sw"), CapturedAt: f.CapturedAt}}, nil
}

func (s *swSession) ForceKeyframe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = true
}

func (s *swSession) SetBitrate(bps int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bps = bps
	return nil
}

func (s *swSession) Close() error { return nil }

// TestVMCodecselEncoderFallback runs a 720p stream through codecsel with
// vicodec as the hardware, breaks the vicodec session mid-stream, and
// checks that the stream goes on in software from a keyframe with no frame
// lost. Two faults: the session's file descriptor closed behind its back
// (every ioctl then fails), and a device that stops answering (poll never
// ready), which only the stall timeout catches.
func TestVMCodecselEncoderFallback(t *testing.T) {
	for _, fault := range []string{"closed fd", "stall"} {
		t.Run(fault, func(t *testing.T) {
			o := &opener{}
			enc, _, _ := vicodec(t, Config{Open: o.open})
			sw := &swFWHT{}
			// The stall budget sits between what a 720p frame takes under
			// emulation on a loaded host (up to a few hundred ms) and the
			// encoder's own 2 s frame timeout, so the stall is caught as one.
			sel := codecsel.NewEncoders([]hal.VideoEncoderFactory{sw, enc}, codecsel.Options{Logger: vmLogger(t), StallTimeout: 1500 * time.Millisecond})
			ctx := vmContext(t)
			e, err := sel.NewVideoEncoder(ctx, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 1280, Height: 720, FPS: 30, BitrateBps: 1_000_000, KeyframeInterval: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			p := e.(codecsel.PathReporter).CodecPath()
			if !p.Hardware || p.Device != enc.Info().ID {
				t.Fatalf("path %+v, want vicodec", p)
			}
			if err := e.SetBitrate(700_000); err != nil {
				t.Fatal(err)
			}
			var out []hal.EncodedFrame
			const n, breakAt = 20, 8
			for i := range n {
				if i == breakAt {
					switch fault {
					case "closed fd":
						if err := o.last().Close(); err != nil {
							t.Fatal(err)
						}
					case "stall":
						o.stall.Store(true)
					}
				}
				f := testFrame(1280, 720, i)
				start := time.Now()
				got, err := e.Encode(ctx, f)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if i == breakAt {
					t.Logf("frame %d, the one that met the fault, took %v", i, time.Since(start))
				}
				if len(got) != 1 || !got[0].CapturedAt.Equal(f.CapturedAt) {
					t.Fatalf("frame %d: %d outputs %+v, want exactly its own", i, len(got), got)
				}
				out = append(out, got...)
			}
			for i, c := range out {
				fromSW := string(c.Data) == fmt.Sprintf("sw %d", i)
				if fromSW != (i >= breakAt) {
					t.Errorf("frame %d from software: %v, want %v", i, fromSW, i >= breakAt)
				}
				if !fromSW && !isKeyframe(hal.CodecFWHT, c.Data) == c.Keyframe {
					t.Errorf("frame %d: Keyframe %v disagrees with the FWHT header", i, c.Keyframe)
				}
			}
			if !out[breakAt].Keyframe {
				t.Error("first software frame is not a keyframe")
			}
			p = e.(codecsel.PathReporter).CodecPath()
			want := codecsel.ReasonError
			if fault == "stall" {
				want = codecsel.ReasonStall
			}
			if p.Hardware || p.Device != "test:sw-fwht" || p.Reason != want || p.Fallbacks != 1 {
				t.Errorf("path after the fault: %+v, want software for %s", p, want)
			}
			t.Logf("path: %+v", p)
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if n := sel.Sessions(enc.Info().ID); n != 0 {
				t.Errorf("%d vicodec sessions still counted after Close", n)
			}
		})
	}
}

// TestVMCodecselDecoderFallback decodes a vicodec stream through codecsel,
// closes the vicodec decoder's descriptor mid-GOP, and checks that every
// frame still gives exactly one picture: the software decoder is fed again
// from the last keyframe, and only the pictures vicodec had not returned
// come out of it.
func TestVMCodecselDecoderFallback(t *testing.T) {
	o := &opener{}
	enc, dec, _ := vicodec(t, Config{Open: o.open})
	ctx := vmContext(t)
	e, err := enc.NewVideoEncoder(ctx, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 640, Height: 360, FPS: 30, KeyframeInterval: 10 * time.Second / 30})
	if err != nil {
		t.Fatal(err)
	}
	var coded []hal.EncodedFrame
	for i := range 24 {
		out, err := e.Encode(ctx, testFrame(640, 360, i))
		if err != nil || len(out) != 1 {
			t.Fatalf("encode %d: %d frames, %v", i, len(out), err)
		}
		coded = append(coded, out[0])
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	sw := &swFWHT{}
	sel := codecsel.NewDecoders([]hal.VideoDecoderFactory{sw, dec}, codecsel.Options{Logger: vmLogger(t)})
	d, err := sel.NewVideoDecoder(ctx, hal.CodecFWHT)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const breakAt = 14 // keyframes at 0, 10, 20
	var pics []hal.VideoFrame
	for i, c := range coded {
		if i == breakAt {
			if err := o.last().Close(); err != nil {
				t.Fatal(err)
			}
		}
		out, err := d.Decode(ctx, c)
		if err != nil {
			t.Fatalf("decode %d: %v", i, err)
		}
		pics = append(pics, out...)
	}
	if len(pics) != len(coded) {
		t.Fatalf("%d pictures for %d frames", len(pics), len(coded))
	}
	for i, p := range pics {
		fromSW := string(p.Data) == "sw"
		if !p.CapturedAt.Equal(coded[i].CapturedAt) || p.Seq != uint64(i) || fromSW != (i >= breakAt) {
			t.Errorf("picture %d: at %v seq %d software %v", i, p.CapturedAt, p.Seq, fromSW)
		}
	}
	if p := d.(codecsel.PathReporter).CodecPath(); p.Hardware || p.Reason != codecsel.ReasonError {
		t.Errorf("path %+v, want software after an error", p)
	}
}
