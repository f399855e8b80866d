package pulse

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jfreymuth/pulse/proto"

	"github.com/atriumroom/atrium/hal"
)

// testClock is a clock a test sets.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

var epoch = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

func pcm(samples ...int16) []byte {
	b := make([]byte, 2*len(samples))
	for i, s := range samples {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	return b
}

func ramp(n int, from int16) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = from + int16(i)
	}
	return out
}

func openSpeaker(t *testing.T, s *fakeServer, name string, f hal.AudioFormat) *playback {
	t.Helper()
	d := newTestDriver(t, s, Options{})
	sp := &Speaker{d.newDevice(sinkNode(s.sink(name)))}
	p, err := sp.Open(testContext(t), f)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p.(*playback)
}

func TestPlaybackFollowsServerRequests(t *testing.T) {
	s := room()
	s.playMissing = 960 // 10 ms of 48 kHz mono
	f := hal.AudioFormat{SampleRate: 48000, Channels: 1}
	p := openSpeaker(t, s, ECSinkName, f)

	req := s.lastPlayback
	if req.Format != proto.FormatInt16LE || req.Rate != 48000 || req.Channels != 1 || req.SinkName != ECSinkName {
		t.Errorf("stream spec %+v on %q", req.SampleSpec, req.SinkName)
	}
	if req.BufferTargetLength != 1920 || req.BufferMinimumRequest != 480 || !req.NoMove || !req.AdjustLatency {
		t.Errorf("buffer attributes: tlength %d minreq %d, NoMove %v AdjustLatency %v; want 1920 (20 ms), 480, true, true",
			req.BufferTargetLength, req.BufferMinimumRequest, req.NoMove, req.AdjustLatency)
	}

	samples := ramp(960, 100) // 20 ms: twice what the server asked for
	done := make(chan error, 1)
	go func() { done <- p.Write(testContext(t), samples) }()
	s.waitFor(t, "the first 10 ms", func() bool { return len(s.sentLocked()) == 960 })
	select {
	case err := <-done:
		t.Fatalf("Write returned (%v) before the server asked for the rest", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.emit(&proto.Request{StreamIndex: 8, Length: 960})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := s.sentBytes(), pcm(samples...); string(got) != string(want) {
		t.Errorf("sent %d bytes, not the samples in order", len(got))
	}

	s.emit(&proto.Underflow{StreamIndex: 8})
	if p.Underruns() != 1 {
		t.Errorf("Underruns = %d, want 1", p.Underruns())
	}
}

func TestPlaybackWholeFrames(t *testing.T) {
	s := room()
	s.playMissing = 6 // one and a half stereo frames
	p := openSpeaker(t, s, "scratch", hal.AudioFormat{SampleRate: 48000, Channels: 2})
	if err := p.Write(t.Context(), []int16{1, 2, 3}); err == nil {
		t.Error("a write of half a frame succeeded")
	}
	done := make(chan error, 1)
	go func() { done <- p.Write(testContext(t), []int16{1, 2, 3, 4}) }()
	s.waitFor(t, "one frame", func() bool { return len(s.sentLocked()) == 4 })
	// Two bytes of budget left: not a frame, so the writer waits.
	select {
	case err := <-done:
		t.Fatalf("Write returned (%v) with half a frame of room", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.emit(&proto.Request{Length: 2})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := s.sentBytes(); string(got) != string(pcm(1, 2, 3, 4)) {
		t.Errorf("sent %v", got)
	}
}

func TestPlaybackEnds(t *testing.T) {
	f := hal.AudioFormat{SampleRate: 48000, Channels: 1}
	for _, c := range []struct {
		name string
		end  func(s *fakeServer, p *playback)
		want []error
	}{
		{"sink removed", func(s *fakeServer, p *playback) { s.emit(&proto.PlaybackStreamKilled{}) }, []error{hal.ErrUnplugged}},
		{"server gone", func(s *fakeServer, p *playback) { s.drop() }, []error{hal.ErrUnplugged, ErrConnectionLost}},
		{"closed", func(s *fakeServer, p *playback) { _ = p.Close() }, []error{hal.ErrClosed}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := room()
			p := openSpeaker(t, s, "scratch", f)
			done := make(chan error, 1)
			go func() { done <- p.Write(testContext(t), ramp(10, 0)) }()
			time.Sleep(20 * time.Millisecond) // let Write block (it must, with no budget)
			c.end(s, p)
			err := <-done
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Errorf("Write: %v, want %v", err, w)
				}
			}
			// And so does the next one.
			if err := p.Write(t.Context(), ramp(10, 0)); !errors.Is(err, c.want[0]) {
				t.Errorf("next Write: %v, want %v", err, c.want[0])
			}
			if err := p.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestPlaybackContext(t *testing.T) {
	s := room()
	p := openSpeaker(t, s, "scratch", hal.AudioFormat{SampleRate: 48000, Channels: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := p.Write(ctx, ramp(10, 0)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Write: %v, want DeadlineExceeded", err)
	}
}

func TestOpenOnMissingNode(t *testing.T) {
	s := room()
	d := newTestDriver(t, s, Options{})
	devs, err := d.Enumerate(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.sinks, s.sources = nil, nil
	s.mu.Unlock()
	f := hal.AudioFormat{SampleRate: 48000, Channels: 1}
	if _, err := devs[0].(hal.Speaker).Open(t.Context(), f); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("speaker Open: %v, want ErrUnplugged", err)
	}
	if _, err := devs[4].(hal.Microphone).Open(t.Context(), f); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("microphone Open: %v, want ErrUnplugged", err)
	}
	if n := len(s.open()); n != 0 {
		t.Errorf("%d connections left open", n)
	}
}

func openMic(t *testing.T, s *fakeServer, clock Clock, f hal.AudioFormat) *capture {
	t.Helper()
	d := newTestDriver(t, s, Options{Clock: clock})
	m := &Microphone{d.newDevice(sourceNode(s.source(ECSourceName)))}
	c, err := m.Open(testContext(t), f)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*capture)
}

func TestCaptureDeliversWithTimes(t *testing.T) {
	s := room()
	clock := &testClock{now: epoch}
	f := hal.AudioFormat{SampleRate: 48000, Channels: 1}
	c := openMic(t, s, clock, f)

	req := s.lastRecord
	if req.Format != proto.FormatInt16LE || req.Rate != 48000 || req.SourceName != ECSourceName || req.BufferFragSize != 960 || !req.NoMove || !req.AdjustLatency {
		t.Errorf("record request %+v", req)
	}

	// Two 10 ms packets, arriving 10 ms apart; the second is split in the
	// middle of a sample.
	clock.set(epoch.Add(10 * time.Millisecond))
	s.emit(&proto.DataPacket{Data: pcm(ramp(480, 0)...)})
	second := pcm(ramp(480, 480)...)
	clock.set(epoch.Add(20 * time.Millisecond))
	s.emit(&proto.DataPacket{Data: second[:301]})
	s.emit(&proto.DataPacket{Data: second[301:]})

	buf := make([]int16, 960)
	n, at, err := c.Read(testContext(t), buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != 960 {
		t.Fatalf("read %d samples, want 960", n)
	}
	for i, v := range buf {
		if v != int16(i) {
			t.Fatalf("sample %d = %d, want %d", i, v, i)
		}
	}
	// The first packet's last sample arrived at +10 ms: frame 0 was
	// captured at 0, less the source's latency the server reported (5 ms).
	if want := epoch.Add(-5 * time.Millisecond); !at.Equal(want) {
		t.Errorf("capture time %v, want %v", at.Sub(epoch), want.Sub(epoch))
	}

	// A packet held up on the way does not move the times: the next read
	// starts 20 ms after the first.
	clock.set(epoch.Add(80 * time.Millisecond))
	s.emit(&proto.DataPacket{Data: pcm(ramp(480, 0)...)})
	n, at, err = c.Read(testContext(t), buf[:480])
	if err != nil || n != 480 {
		t.Fatalf("read %d, %v", n, err)
	}
	if want := epoch.Add(15 * time.Millisecond); !at.Equal(want) {
		t.Errorf("capture time after a late packet %v, want %v", at.Sub(epoch), want.Sub(epoch))
	}
}

func TestCaptureStereoAndPartialReads(t *testing.T) {
	s := room()
	clock := &testClock{now: epoch}
	c := openMic(t, s, clock, hal.AudioFormat{SampleRate: 48000, Channels: 2})
	if _, _, err := c.Read(t.Context(), make([]int16, 1)); err == nil {
		t.Error("a read into less than a frame succeeded")
	}
	done := make(chan []int16, 1)
	go func() {
		buf := make([]int16, 7) // three frames fit
		n, _, err := c.Read(testContext(t), buf)
		if err != nil {
			t.Error(err)
		}
		done <- buf[:n]
	}()
	s.emit(&proto.DataPacket{Data: pcm(1, 2, 3, 4)})
	select {
	case got := <-done:
		t.Fatalf("Read returned %v with two of three frames", got)
	case <-time.After(50 * time.Millisecond):
	}
	s.emit(&proto.DataPacket{Data: pcm(5, 6, 7, 8)})
	if got := <-done; len(got) != 6 || got[0] != 1 || got[5] != 6 {
		t.Errorf("read %v, want 1..6", got)
	}
}

func TestCaptureOverrun(t *testing.T) {
	s := room()
	clock := &testClock{now: epoch}
	c := openMic(t, s, clock, hal.AudioFormat{SampleRate: 8000, Channels: 1})
	// 2.5 s at 8 kHz in 100 ms packets, read by nobody: the oldest half
	// second goes.
	for i := range 25 {
		clock.set(epoch.Add(time.Duration(i+1) * 100 * time.Millisecond))
		s.emit(&proto.DataPacket{Data: pcm(ramp(800, int16(i*800))...)})
	}
	if c.Overruns() != 1 {
		t.Errorf("Overruns = %d, want 1 (one warning a second)", c.Overruns())
	}
	buf := make([]int16, 800)
	_, at, err := c.Read(testContext(t), buf)
	if err != nil {
		t.Fatal(err)
	}
	if buf[0] != 4000 {
		t.Errorf("first sample after the overrun %d, want 4000 (0.5 s in)", buf[0])
	}
	if want := epoch.Add(500*time.Millisecond - 5*time.Millisecond); !at.Equal(want) {
		t.Errorf("its capture time %v, want %v", at.Sub(epoch), want.Sub(epoch))
	}
}

func TestCaptureEnds(t *testing.T) {
	f := hal.AudioFormat{SampleRate: 48000, Channels: 1}
	for _, c := range []struct {
		name string
		end  func(s *fakeServer, c *capture)
		want []error
	}{
		{"source removed", func(s *fakeServer, c *capture) { s.emit(&proto.RecordStreamKilled{}) }, []error{hal.ErrUnplugged}},
		{"server gone", func(s *fakeServer, c *capture) { s.drop() }, []error{hal.ErrUnplugged, ErrConnectionLost}},
		{"closed", func(s *fakeServer, c *capture) { _ = c.Close() }, []error{hal.ErrClosed}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := room()
			capt := openMic(t, s, &testClock{now: epoch}, f)
			s.emit(&proto.DataPacket{Data: pcm(1, 2)})
			done := make(chan error, 1)
			go func() {
				_, _, err := capt.Read(testContext(t), make([]int16, 4))
				done <- err
			}()
			time.Sleep(20 * time.Millisecond)
			c.end(s, capt)
			err := <-done
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Errorf("Read: %v, want %v", err, w)
				}
			}
			if c.want[0] != hal.ErrClosed {
				// What came before the end is still delivered.
				buf := make([]int16, 2)
				if n, _, err := capt.Read(t.Context(), buf); err != nil || n != 2 || buf[1] != 2 {
					t.Errorf("reading what was left: %d %v %v", n, buf, err)
				}
			}
			if _, _, err := capt.Read(t.Context(), make([]int16, 4)); !errors.Is(err, c.want[0]) {
				t.Errorf("next Read: %v, want %v", err, c.want[0])
			}
		})
	}
}
