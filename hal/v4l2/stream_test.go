package v4l2

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
	uapi "github.com/atriumroom/atrium/hal/internal/v4l2"
	"golang.org/x/sys/unix"
)

// openTestCamera enumerates sys's one camera.
func openTestCamera(t *testing.T, sys *fakeSystem, clock Clock) (*Driver, *Camera) {
	t.Helper()
	d := newTestDriver(t, sys, clock)
	devs, err := d.Enumerate(testContext(t))
	if err != nil || len(devs) != 1 {
		t.Fatalf("Enumerate = %v, %v", devs, err)
	}
	return d, devs[0].(*Camera)
}

// openVividStream opens the first mode of one fake vivid camera.
func openVividStream(t *testing.T, ctx context.Context) (*fakeSystem, *fakeDev, *Driver, hal.VideoStream) {
	t.Helper()
	sys := newFakeSystem(t)
	dev := yuyvCamera(t, "vivid", "vivid", "platform:vivid-000")
	sys.addNode("video0", "vivid-000-vid-cap", "platform/vivid.0", dev)
	d, cam := openTestCamera(t, sys, nil)
	s, err := cam.Open(ctx, cam.Modes()[0])
	if err != nil {
		t.Fatal(err)
	}
	return sys, dev, d, s
}

// readAsync starts a ReadFrame and returns where its result arrives.
func readAsync(ctx context.Context, s hal.VideoStream, wg *sync.WaitGroup) <-chan frameResult {
	ch := make(chan frameResult, 1)
	wg.Go(func() {
		f, err := s.ReadFrame(ctx)
		ch <- frameResult{f, err}
	})
	return ch
}

type frameResult struct {
	f   hal.VideoFrame
	err error
}

func TestCapturePacksRowsAndStampsFrames(t *testing.T) {
	for _, c := range []struct {
		name   string
		fourcc uint32
		format hal.PixelFormat
		mplane bool
	}{
		{"YUYV", uapi.PixFmtYUYV, hal.PixelYUYV, false},
		{"NV12", uapi.PixFmtNV12, hal.PixelNV12, false},
		{"I420", uapi.PixFmtYUV420, hal.PixelI420, false},
		{"YUYV multi-planar", uapi.PixFmtYUYV, hal.PixelYUYV, true},
		{"NV12 multi-planar", uapi.PixFmtNV12, hal.PixelNV12, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkLeaks(t)
			ctx := testContext(t)
			sys := newFakeSystem(t)
			dev := newFakeDev(t, "vivid", "vivid", "platform:vivid-000")
			dev.formats = []fakeFormat{{fourcc: c.fourcc, sizes: []fakeSize{{w: 64, h: 36, fps: []int{30}}}}}
			dev.pad = 24 // bytesperline beyond the row
			if c.mplane {
				dev.mplane = true
				dev.cap.DeviceCaps = uapi.CapVideoCaptureMPlane | uapi.CapStreaming
			}
			mono := 100 * time.Second
			wall := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
			clock := &fakeClock{wall: wall, mono: mono}
			// The driver stamps frames 5 ms before the reader looks.
			dev.stamp = func() uapi.Timeval { return uapi.Timeval{Sec: 99, Usec: 995000} }
			sys.addNode("video0", "vivid-000-vid-cap", "platform/vivid.0", dev)
			_, cam := openTestCamera(t, sys, clock)

			mode := hal.VideoMode{Width: 64, Height: 36, FPS: 30, Format: c.format}
			s, err := cam.Open(ctx, mode)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Mode() != mode {
				t.Errorf("Mode = %+v", s.Mode())
			}
			if dev.interval != (uapi.Fract{Numerator: 1, Denominator: 30}) {
				t.Errorf("S_PARM interval = %+v, want 1/30", dev.interval)
			}
			for range 2 {
				if !dev.produce(0) {
					t.Fatal("fake driver had no queued buffers after STREAMON")
				}
			}
			dev.produce(uapi.BufFlagError) // seq 2, corrupted: dropped
			dev.produce(0)                 // seq 3
			for _, wantSeq := range []uint64{0, 1, 3} {
				f, err := s.ReadFrame(ctx)
				if err != nil {
					t.Fatal(err)
				}
				want := packedFrame(c.fourcc, 64, 36, uint32(wantSeq))
				if f.Seq != wantSeq || f.Width != 64 || f.Height != 36 || f.Format != c.format {
					t.Errorf("frame %d: %dx%d %s seq %d", wantSeq, f.Width, f.Height, f.Format, f.Seq)
				}
				if !bytes.Equal(f.Data, want) {
					t.Errorf("frame %d: %d bytes differ from the %d expected (first bytes %x vs %x)", wantSeq, len(f.Data), len(want), f.Data[:8], want[:8])
				}
				if !f.CapturedAt.Equal(wall.Add(-5 * time.Millisecond)) {
					t.Errorf("CapturedAt = %v, want 5ms before %v", f.CapturedAt, wall)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ReadFrame(ctx); !errors.Is(err, hal.ErrClosed) {
				t.Errorf("ReadFrame after Close: %v, want ErrClosed", err)
			}
			if dev.openCount != 0 || dev.mapped != 0 || dev.owner != nil {
				t.Errorf("after Close: %s", dev)
			}
		})
	}
}

func TestCapturedAtFallsBackToReadTime(t *testing.T) {
	wall := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &stream{clock: &fakeClock{wall: wall, mono: 10 * time.Second}}
	for _, d := range []dequeued{
		{}, // no timestamp
		{flags: uapi.BufFlagTimestampCopy, ts: uapi.Timeval{Sec: 9}},       // not monotonic
		{flags: uapi.BufFlagTimestampMonotonic, ts: uapi.Timeval{Sec: 11}}, // in the future
		{flags: uapi.BufFlagTimestampMonotonic, ts: uapi.Timeval{Sec: 1}},  // too old
	} {
		if got := s.capturedAt(d); !got.Equal(wall) {
			t.Errorf("capturedAt(%+v) = %v, want the read time", d, got)
		}
	}
}

func TestSequenceWraps(t *testing.T) {
	s := &stream{}
	var got []uint64
	for _, raw := range []uint32{0xfffffffe, 0xffffffff, 1} {
		s.advanceSeq(raw)
		got = append(got, s.seq)
	}
	if got[1] != got[0]+1 || got[2] != got[0]+3 {
		t.Errorf("sequence across the wrap: %v", got)
	}

	// Repeats and steps back count as the next frame, never as drops.
	s, got = &stream{}, nil
	for _, raw := range []uint32{0, 0, 1, 4, 2, 3} {
		s.advanceSeq(raw)
		got = append(got, s.seq)
	}
	if want := []uint64{0, 1, 2, 5, 6, 7}; !slices.Equal(got, want) {
		t.Errorf("sequence with a repeat and a step back: %v, want %v", got, want)
	}
}

func TestReadFrameHonoursContextAndClose(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	_, dev, _, s := openVividStream(t, ctx)
	var wg sync.WaitGroup
	defer wg.Wait()

	// A cancelled context ends the wait; the stream stays usable.
	cctx, cancel := context.WithCancel(ctx)
	ch := readAsync(cctx, s, &wg)
	time.Sleep(20 * time.Millisecond)
	cancel()
	if r := <-ch; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("ReadFrame after cancel: %v", r.err)
	}
	dev.produce(0)
	if f, err := s.ReadFrame(ctx); err != nil || f.Seq != 0 {
		t.Fatalf("ReadFrame after a cancelled one: seq %d, %v", f.Seq, err)
	}

	// Close ends a ReadFrame in progress with ErrClosed.
	ch = readAsync(ctx, s, &wg)
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		if !errors.Is(r.err, hal.ErrClosed) {
			t.Errorf("ReadFrame during Close: %v, want ErrClosed", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end ReadFrame")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if dev.openCount != 0 || dev.mapped != 0 {
		t.Errorf("after Close: %s", dev)
	}
}

func TestUnplugWhileStreaming(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	sys, dev, d, s := openVividStream(t, ctx)
	defer s.Close()
	var wg sync.WaitGroup
	defer wg.Wait()

	ch := readAsync(ctx, s, &wg)
	time.Sleep(20 * time.Millisecond)
	dev.mu.Lock()
	dev.gone = true
	dev.cond.Broadcast()
	dev.mu.Unlock()
	select {
	case r := <-ch:
		if !errors.Is(r.err, hal.ErrUnplugged) {
			t.Fatalf("ReadFrame after unplug: %v, want ErrUnplugged", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFrame did not notice the unplug")
	}
	if _, err := s.ReadFrame(ctx); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("second ReadFrame after unplug: %v", err)
	}
	sys.removeNode("video0")
	if devs, err := d.Enumerate(ctx); err != nil || len(devs) != 0 {
		t.Errorf("Enumerate after unplug = %v, %v", ids(devs), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if dev.openCount != 0 || dev.mapped != 0 {
		t.Errorf("after Close: %s", dev)
	}
}

// TestPollErrorWithoutCause: a POLLERR that DQBUF cannot explain is waited
// out, a persistent one ends the read with a message, and a queue in error
// is named by DQBUF's EIO without being taken for an unplug.
func TestPollErrorWithoutCause(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	_, dev, _, s := openVividStream(t, ctx)
	defer s.Close()
	var wg sync.WaitGroup
	defer wg.Wait()

	dev.mu.Lock()
	dev.pollErrs = 3
	dev.mu.Unlock()
	ch := readAsync(ctx, s, &wg)
	waitForCond(t, dev, func() bool { return dev.pollErrs == 0 })
	dev.produce(0)
	if r := <-ch; r.err != nil {
		t.Fatalf("ReadFrame across 3 unexplained POLLERRs: %v", r.err)
	}

	dev.mu.Lock()
	dev.pollErrs = maxSpuriousPollErr + 1
	dev.mu.Unlock()
	_, err := s.ReadFrame(ctx)
	if err == nil || !strings.Contains(err.Error(), "poll keeps reporting 0x8") || errors.Is(err, hal.ErrUnplugged) {
		t.Fatalf("ReadFrame under a persistent POLLERR: %v", err)
	}

	dev.mu.Lock()
	dev.pollErrs, dev.queueErr = 0, true
	dev.mu.Unlock()
	_, err = s.ReadFrame(ctx)
	if err == nil || !strings.Contains(err.Error(), "VIDIOC_DQBUF") || !errors.Is(err, unix.EIO) || errors.Is(err, hal.ErrUnplugged) {
		t.Fatalf("ReadFrame on a queue in error: %v", err)
	}
}

// waitForCond waits until cond, checked under dev's lock, holds.
func waitForCond(t *testing.T, dev *fakeDev, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		dev.mu.Lock()
		ok := cond()
		dev.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOpenErrors(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	sys := newFakeSystem(t)
	dev := yuyvCamera(t, "vivid", "vivid", "platform:vivid-000")
	sys.addNode("video0", "vivid-000-vid-cap", "platform/vivid.0", dev)
	_, cam := openTestCamera(t, sys, nil)

	if _, err := cam.Open(ctx, hal.VideoMode{Width: 1920, Height: 1080, FPS: 30, Format: hal.PixelYUYV}); !errors.Is(err, hal.ErrUnsupportedMode) {
		t.Errorf("Open of a mode not offered: %v", err)
	}
	s, err := cam.Open(ctx, cam.Modes()[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cam.Open(ctx, cam.Modes()[1]); !errors.Is(err, hal.ErrBusy) {
		t.Errorf("second Open: %v, want ErrBusy", err)
	}
	s.Close()

	// Another process streaming from the node.
	other, _ := dev.open()
	rb := &uapi.RequestBuffers{Count: 2, Type: uapi.BufTypeVideoCapture, Memory: uapi.MemoryMMAP}
	dev.fmt = uapi.Format{Type: uapi.BufTypeVideoCapture}
	dev.fmt.Pix().SizeImage = 16
	if err := other.Ioctl(uapi.IoctlReqBufs, unsafePointer(rb)); err != nil {
		t.Fatal(err)
	}
	if _, err := cam.Open(ctx, cam.Modes()[0]); !errors.Is(err, hal.ErrBusy) {
		t.Errorf("Open while another process streams: %v, want ErrBusy", err)
	}
	other.Close()
	if dev.openCount != 0 {
		t.Errorf("a failed Open left the node open: %s", dev)
	}
}
