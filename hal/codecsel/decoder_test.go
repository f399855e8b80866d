package codecsel

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/atriumroom/atrium/hal"
)

func newDecoders(t *testing.T, opts Options, fs ...*fakeFactory) (*Decoders, *fakeClock, *logRecorder) {
	t.Helper()
	clock := newFakeClock()
	logs := &logRecorder{}
	opts.Clock, opts.Logger = clock, slog.New(logs)
	var list []hal.VideoDecoderFactory
	for _, f := range fs {
		f.clock = clock
		list = append(list, f)
	}
	return NewDecoders(list, opts), clock, logs
}

func openDec(t *testing.T, d *Decoders) hal.VideoDecoder {
	t.Helper()
	dec, err := d.NewVideoDecoder(testContext(t), hal.CodecFWHT)
	if err != nil {
		t.Fatalf("NewVideoDecoder: %v", err)
	}
	t.Cleanup(func() {
		if err := dec.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return dec
}

// codedStream feeds coded frames "f<i>", a keyframe every gop frames from
// frame first on, through one reused buffer.
type codedStream struct {
	t          *testing.T
	dec        hal.VideoDecoder
	gop, first int
	next       int
	buf        []byte
	out        []hal.VideoFrame
}

func (s *codedStream) decode(ctx context.Context, n int) []hal.VideoFrame {
	s.t.Helper()
	var got []hal.VideoFrame
	for range n {
		i := s.next
		s.next++
		s.buf = fmt.Appendf(s.buf[:0], "f%d", i)
		key := i >= s.first && (i-s.first)%s.gop == 0
		out, err := s.dec.Decode(ctx, hal.EncodedFrame{Codec: hal.CodecFWHT, Data: s.buf, Keyframe: key, CapturedAt: frameTime(i)})
		if err != nil {
			s.t.Fatalf("decode frame %d: %v", i, err)
		}
		got = append(got, out...)
	}
	s.out = append(s.out, got...)
	return got
}

// check checks that frames from..next-1 each gave exactly one picture,
// decoded from that frame, in order and numbered from 0, and returns the
// session of each picture.
func (s *codedStream) check(from int) []string {
	s.t.Helper()
	var paths []string
	if len(s.out) != s.next-from {
		s.t.Errorf("%d pictures for frames %d..%d", len(s.out), from, s.next-1)
	}
	for k, o := range s.out {
		i := from + k
		name := pathOfData(o.Data)
		paths = append(paths, name)
		if want := fmt.Sprintf("%s:f%d", name, i); string(o.Data) != want || !o.CapturedAt.Equal(frameTime(i)) || o.Seq != uint64(k) {
			s.t.Errorf("picture %d: %q at %v seq %d, want %q at %v seq %d", k, o.Data, o.CapturedAt.Sub(epoch), o.Seq, want, frameTime(i).Sub(epoch), k)
		}
	}
	return paths
}

// TestDecoderSessionLimit: hardware decoders often stop at 3 or 4 streams,
// said in their caps or found at open.
func TestDecoderSessionLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		caps   hal.CodecCaps
		b      behavior
		detail string
	}{
		{"caps say 4", hal.CodecCaps{Codec: hal.CodecFWHT, MaxSessions: 4}, behavior{}, "hw has 4 sessions open"},
		{"busy after 4", hal.CodecCaps{Codec: hal.CodecFWHT}, behavior{busyAfter: 4}, "open hw: device busy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			hw := newFake("hw", true, tc.b, tc.caps)
			sw := newFake("sw", false, behavior{}, hal.CodecCaps{Codec: hal.CodecFWHT})
			d, _, _ := newDecoders(t, Options{}, hw, sw)
			var decs []hal.VideoDecoder
			for range 6 {
				decs = append(decs, openDec(t, d))
			}
			for i, dec := range decs {
				p := pathOfEnc(t, dec)
				if hwWant := i < 4; p.Hardware != hwWant {
					t.Errorf("stream %d: path %+v, hardware want %v", i, p, hwWant)
				}
				if i >= 4 && (p.Reason != ReasonSessionLimit || p.Detail != tc.detail) {
					t.Errorf("stream %d: reason %s %q, want %s %q", i, p.Reason, p.Detail, ReasonSessionLimit, tc.detail)
				}
				// Every stream decodes, whichever path it is on.
				s := &codedStream{t: t, dec: dec, gop: 10}
				s.decode(testContext(t), 3)
				s.check(0)
			}
			if got := d.Sessions("hw"); got != 4 {
				t.Errorf("Sessions(hw) = %d, want 4", got)
			}
			if err := decs[1].Close(); err != nil {
				t.Fatal(err)
			}
			if p := pathOfEnc(t, openDec(t, d)); !p.Hardware {
				t.Errorf("after a hardware stream closed: path %+v, want hardware", p)
			}
		})
	}
}

func TestDecoderFallback(t *testing.T) {
	for _, tc := range []struct {
		name   string
		b      behavior
		reason Reason
	}{
		{"error", behavior{failAfter: 12}, ReasonError},
		{"error at keyframe", behavior{failAfter: 10}, ReasonError},
		{"error pipelined", behavior{failAfter: 12, delay: 2}, ReasonError},
		{"quiet", behavior{quietAfter: 13}, ReasonStall},
		{"quiet pipelined", behavior{quietAfter: 13, delay: 1}, ReasonStall},
		{"blocked", behavior{blockAfter: 12}, ReasonStall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			hw := newFake("hw", true, tc.b, hal.CodecCaps{Codec: hal.CodecFWHT})
			sw := newFake("sw", false, behavior{}, hal.CodecCaps{Codec: hal.CodecFWHT})
			d, clock, logs := newDecoders(t, Options{StallFrames: 3}, hw, sw)
			dec := openDec(t, d)
			ctx := testContext(t)
			s := &codedStream{t: t, dec: dec, gop: 5}
			if tc.b.blockAfter > 0 {
				s.decode(ctx, tc.b.blockAfter)
				done := make(chan struct{})
				go func() {
					defer close(done)
					s.decode(ctx, 1)
				}()
				clock.waitTimers(ctx, t, 1)
				clock.Advance(DefaultStallTimeout)
				<-done
			}
			s.decode(ctx, 25-s.next)
			paths := s.check(0)
			k := slices.Index(paths, "sw#1")
			if k < 0 || slices.ContainsFunc(paths[:k], func(p string) bool { return p != "hw#1" }) || slices.ContainsFunc(paths[k:], func(p string) bool { return p != "sw#1" }) {
				t.Errorf("picture paths %v, want hw#1 then sw#1", paths)
			}
			if p := pathOfEnc(t, dec); p.Hardware || p.Device != "sw" || p.Reason != tc.reason || p.Fallbacks != 1 {
				t.Errorf("path = %+v, want software for %s", p, tc.reason)
			}
			if _, ok := logs.find("WARN", "decoder failed; continuing in software", "reason="+string(tc.reason)); !ok {
				t.Errorf("no fallback warning: %q", logs.msgs)
			}
			if _, ok := logs.find("does not start at a keyframe"); ok {
				t.Error("replay did not start at a keyframe")
			}
		})
	}
}

// TestDecoderWaitsForKeyframe: a stream joined between keyframes gives no
// pictures until one comes, which is not a stall.
func TestDecoderWaitsForKeyframe(t *testing.T) {
	checkLeaks(t)
	hw := newFake("hw", true, behavior{skipBeforeKey: true}, hal.CodecCaps{Codec: hal.CodecFWHT})
	sw := newFake("sw", false, behavior{}, hal.CodecCaps{Codec: hal.CodecFWHT})
	d, _, _ := newDecoders(t, Options{StallFrames: 3}, hw, sw)
	dec := openDec(t, d)
	ctx := testContext(t)
	s := &codedStream{t: t, dec: dec, gop: 30, first: 20}
	if out := s.decode(ctx, 20); len(out) != 0 {
		t.Fatalf("%d pictures before the first keyframe", len(out))
	}
	s.out = nil
	s.decode(ctx, 10)
	for _, p := range s.check(20) {
		if p != "hw#1" {
			t.Fatalf("picture from %s, want hw#1", p)
		}
	}
	if p := pathOfEnc(t, dec); !p.Hardware {
		t.Errorf("path = %+v, want hardware", p)
	}
}

// TestDecoderReplayLimit: with the replay buffer too small for the GOP, the
// software decoder starts mid-GOP, which is logged; the pictures it cannot
// decode are reported as errors and later ones come out.
func TestDecoderReplayLimit(t *testing.T) {
	checkLeaks(t)
	hw := newFake("hw", true, behavior{failAfter: 8}, hal.CodecCaps{Codec: hal.CodecFWHT})
	sw := newFake("sw", false, behavior{}, hal.CodecCaps{Codec: hal.CodecFWHT})
	d, _, logs := newDecoders(t, Options{MaxReplayBytes: 6}, hw, sw)
	dec := openDec(t, d)
	ctx := testContext(t)
	s := &codedStream{t: t, dec: dec, gop: 10}
	s.decode(ctx, 8)
	_, err := dec.Decode(ctx, hal.EncodedFrame{Data: []byte("f8"), CapturedAt: frameTime(8)})
	if err == nil {
		t.Error("software decoder started mid-GOP without an error")
	}
	if _, ok := logs.find("does not start at a keyframe", "frames=3"); !ok {
		t.Errorf("no warning about the replay: %q", logs.msgs)
	}
	out, err := dec.Decode(ctx, hal.EncodedFrame{Data: []byte("f10"), Keyframe: true, CapturedAt: frameTime(10)})
	if err != nil || len(out) != 1 || string(out[0].Data) != "sw#1:f10" || out[0].Seq != 8 {
		t.Errorf("keyframe after the fallback: %+v, %v; want sw#1:f10 with Seq 8", out, err)
	}
}

func TestDecoderCloseWaitsForFailedSession(t *testing.T) {
	checkLeaks(t)
	hw := newFake("hw", true, behavior{failAfter: 1}, hal.CodecCaps{Codec: hal.CodecFWHT})
	sw := newFake("sw", false, behavior{}, hal.CodecCaps{Codec: hal.CodecFWHT})
	d, _, _ := newDecoders(t, Options{}, hw, sw)
	dec, err := d.NewVideoDecoder(testContext(t), hal.CodecFWHT)
	if err != nil {
		t.Fatal(err)
	}
	s := &codedStream{t: t, dec: dec, gop: 5}
	s.decode(testContext(t), 4)
	s.check(0)
	if err := dec.Close(); err != nil {
		t.Fatal(err)
	}
	if hw.openSessions()+sw.openSessions() != 0 || d.Sessions("hw")+d.Sessions("sw") != 0 {
		t.Errorf("after Close: fake sessions %d+%d, counted %d+%d", hw.openSessions(), sw.openSessions(), d.Sessions("hw"), d.Sessions("sw"))
	}
	if _, err := dec.Decode(testContext(t), hal.EncodedFrame{}); err == nil {
		t.Error("Decode after Close succeeded")
	}
}
