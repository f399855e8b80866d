package alsa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/atriumroom/atrium/hal"
)

// pollInterval bounds each wait in poll, so that Close and a cancelled
// context are noticed within it even when the device delivers nothing. A
// running stream wakes every period (10 ms) anyway.
const pollInterval = 50 * time.Millisecond

// stream is an open, configured PCM substream: non-blocking reads and
// writes (READI/WRITEI) with poll to wait.
type stream struct {
	sys       system
	log       *slog.Logger
	now       func() time.Time
	id        string
	capture   bool
	format    hal.AudioFormat
	subdevice int
	cfg       bufferConfig

	xruns  atomic.Uint64
	closed atomic.Bool
	gone   atomic.Bool

	// ioMu serialises Read or Write calls with each other; it is held for
	// a whole call.
	ioMu sync.Mutex
	// fdMu guards fd: every ioctl and poll holds it for reading, Close for
	// writing, so the descriptor is never closed under a call in progress
	// (and never reused by another open meanwhile).
	fdMu sync.RWMutex
	fd   int
}

// setup sets hardware and software parameters and prepares the stream.
func (s *stream) setup(periodTime time.Duration, periods int) error {
	cfg, err := configure(s.sys, s.fd, s.format, periodTime, periods)
	if err != nil {
		return mapIOErr(err)
	}
	s.cfg = cfg
	// Playback starts once two periods are queued, so a writer that keeps
	// pace from its first write never underruns; capture starts with the
	// first read.
	start := uint64(1)
	if !s.capture {
		start = uint64(min(2*cfg.period, cfg.buffer))
	}
	sw := swParams{
		PeriodStep:     1,
		AvailMin:       uint64(cfg.period),
		StartThreshold: start,
		StopThreshold:  uint64(cfg.buffer),
		Proto:          pcmProtocol,
	}
	if err := s.sys.Ioctl(s.fd, pcmIoctlSWParams, unsafe.Pointer(&sw)); err != nil {
		return fmt.Errorf("sw_params: %w", mapIOErr(err))
	}
	if err := s.sys.Ioctl(s.fd, pcmIoctlPrepare, nil); err != nil {
		return fmt.Errorf("prepare: %w", mapIOErr(err))
	}
	s.log.Debug("alsa: stream open", "rate", s.format.SampleRate, "channels", s.format.Channels,
		"period", cfg.period, "buffer", cfg.buffer)
	return nil
}

// ioctl runs one ioctl unless the stream is closed.
func (s *stream) ioctl(req uintptr, arg unsafe.Pointer) error {
	s.fdMu.RLock()
	defer s.fdMu.RUnlock()
	if s.fd < 0 {
		return hal.ErrClosed
	}
	return s.sys.Ioctl(s.fd, req, arg)
}

// check says why the stream cannot go on, if it cannot.
func (s *stream) check(ctx context.Context) error {
	switch {
	case s.closed.Load():
		return hal.ErrClosed
	case s.gone.Load():
		return hal.ErrUnplugged
	}
	return ctx.Err()
}

// recover handles a failed transfer: it waits (EAGAIN), restarts after an
// xrun (EPIPE) or a suspend (ESTRPIPE), and turns a disconnect into
// hal.ErrUnplugged. A nil return means: try again.
func (s *stream) recover(err error, events int16) error {
	switch {
	case errors.Is(err, unix.EAGAIN):
		return s.wait(events)
	case errors.Is(err, unix.EPIPE):
		n := s.xruns.Add(1)
		what := "underrun"
		if s.capture {
			what = "overrun"
		}
		s.log.Warn("alsa: "+what+"; restarting stream", "xruns", n)
		return s.prepare()
	case errors.Is(err, unix.ESTRPIPE):
		return s.resume()
	case errors.Is(err, unix.EBADFD):
		// The stream is in a state that allows no transfer: disconnected
		// in the instant before the card's calls start failing with
		// ENODEV, or not prepared.
		return s.checkState()
	case errors.Is(err, hal.ErrClosed):
		return err
	case isGone(err):
		s.gone.Store(true)
		return fmt.Errorf("%w: %w", hal.ErrUnplugged, err)
	}
	return err
}

func (s *stream) prepare() error {
	if err := s.ioctl(pcmIoctlPrepare, nil); err != nil {
		if isGone(err) {
			s.gone.Store(true)
			return fmt.Errorf("prepare: %w: %w", hal.ErrUnplugged, err)
		}
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

// resume restarts a stream the system suspended: in place if the device
// can, else by preparing it again.
func (s *stream) resume() error {
	err := s.ioctl(pcmIoctlResume, nil)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EAGAIN):
		// Still resuming; the next transfer will tell.
		return s.wait(0)
	}
	s.log.Info("alsa: resuming after suspend by preparing again", "err", err)
	return s.prepare()
}

// wait polls for events for at most pollInterval. It returns nil both when
// the device is ready and when the interval passed; the caller checks its
// context and tries again.
func (s *stream) wait(events int16) error {
	s.fdMu.RLock()
	if s.fd < 0 {
		s.fdMu.RUnlock()
		return hal.ErrClosed
	}
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: events}}
	n, err := s.sys.Poll(fds, int(pollInterval/time.Millisecond))
	s.fdMu.RUnlock()
	if err != nil {
		return fmt.Errorf("poll: %w", err)
	}
	if n == 0 || fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) == 0 {
		return nil
	}
	// An error condition: the state says which. An xrun or a suspend is
	// reported again by the next transfer and handled there.
	return s.checkState()
}

// checkState looks at the stream's state after an error: disconnected means
// unplugged, not prepared means prepare; other states are for the next
// transfer to report.
func (s *stream) checkState() error {
	st, err := s.state()
	if err != nil {
		if isGone(err) {
			s.gone.Store(true)
			return fmt.Errorf("%w: %w", hal.ErrUnplugged, err)
		}
		return fmt.Errorf("sync_ptr: %w", err)
	}
	switch st {
	case stateDisconnected:
		s.gone.Store(true)
		return hal.ErrUnplugged
	case stateOpen, stateSetup:
		return s.prepare()
	}
	return nil
}

// state reads the stream's state without touching its pointers.
func (s *stream) state() (int32, error) {
	sp := syncPtr{Flags: syncPtrAppl | syncPtrAvailMin}
	if err := s.ioctl(pcmIoctlSyncPtr, unsafe.Pointer(&sp)); err != nil {
		return 0, err
	}
	return sp.State, nil
}

// delayFrames is SNDRV_PCM_IOCTL_DELAY: for playback, the frames queued
// ahead of a sample written now; for capture, the frames captured and not
// yet read. Both include the hardware's own delay.
func (s *stream) delayFrames() (int64, error) {
	var d int64
	if err := s.ioctl(pcmIoctlDelay, unsafe.Pointer(&d)); err != nil {
		return 0, err
	}
	return d, nil
}

func (s *stream) frames(n int64) time.Duration {
	return time.Duration(n * int64(time.Second) / int64(s.format.SampleRate))
}

// write implements AudioPlayback.Write.
func (s *stream) write(ctx context.Context, samples []int16) error {
	ch := s.format.Channels
	if len(samples)%ch != 0 {
		return fmt.Errorf("alsa: write %d samples to %s: not whole %d-channel frames", len(samples), s.id, ch)
	}
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	for len(samples) > 0 {
		if err := s.check(ctx); err != nil {
			return fmt.Errorf("alsa: write to %s: %w", s.id, err)
		}
		x := xferi{Buf: unsafe.Pointer(&samples[0]), Frames: uint64(len(samples) / ch)}
		err := s.ioctl(pcmIoctlWriteIFrame, unsafe.Pointer(&x))
		if err == nil {
			samples = samples[int(x.Result)*ch:]
			continue
		}
		if err := s.recover(err, unix.POLLOUT); err != nil {
			return fmt.Errorf("alsa: write to %s: %w", s.id, err)
		}
	}
	return nil
}

// read implements AudioCapture.Read: it fills every whole frame that fits
// in buf.
func (s *stream) read(ctx context.Context, buf []int16) (int, time.Time, error) {
	ch := s.format.Channels
	frames := len(buf) / ch
	if frames == 0 {
		return 0, time.Time{}, fmt.Errorf("alsa: read from %s: buffer of %d samples holds no %d-channel frame", s.id, len(buf), ch)
	}
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	got := 0
	var first time.Time
	for got < frames {
		if err := s.check(ctx); err != nil {
			return 0, time.Time{}, fmt.Errorf("alsa: read from %s: %w", s.id, err)
		}
		x := xferi{Buf: unsafe.Pointer(&buf[got*ch]), Frames: uint64(frames - got)}
		err := s.ioctl(pcmIoctlReadIFrames, unsafe.Pointer(&x))
		if err == nil {
			if got == 0 && x.Result > 0 {
				first = s.firstCaptured(x.Result)
			}
			got += int(x.Result)
			continue
		}
		if errors.Is(err, unix.EPIPE) && got > 0 {
			// What was read no longer joins what follows the gap:
			// start over so the buffer is contiguous and its
			// timestamp true.
			got = 0
		}
		if err := s.recover(err, unix.POLLIN); err != nil {
			return 0, time.Time{}, fmt.Errorf("alsa: read from %s: %w", s.id, err)
		}
	}
	return got * ch, first, nil
}

// firstCaptured dates the first of n frames just read: they and the frames
// still waiting were all captured before now.
func (s *stream) firstCaptured(n int64) time.Time {
	now := s.now()
	waiting, err := s.delayFrames()
	if err != nil || waiting < 0 {
		waiting = 0
	}
	return now.Add(-s.frames(n + waiting))
}

// close drops pending frames and closes the device. It waits for a Read or
// Write in progress to notice, within pollInterval.
func (s *stream) close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.fdMu.Lock()
	defer s.fdMu.Unlock()
	if !s.gone.Load() {
		_ = s.sys.Ioctl(s.fd, pcmIoctlDrop, nil)
	}
	err := s.sys.Close(s.fd)
	s.fd = -1
	if err != nil {
		return fmt.Errorf("alsa: close %s: %w", s.id, err)
	}
	return nil
}

// closeFD closes a stream that failed to set up.
func (s *stream) closeFD() {
	s.closed.Store(true)
	_ = s.sys.Close(s.fd)
	s.fd = -1
}

// Playback is an open playback stream. It implements hal.AudioPlayback.
type Playback struct{ s *stream }

// Format implements hal.AudioPlayback.
func (p *Playback) Format() hal.AudioFormat { return p.s.format }

// Write implements hal.AudioPlayback: it queues whole frames, waiting while
// the device buffer is full. After an underrun it restarts the stream and
// counts it (Xruns).
func (p *Playback) Write(ctx context.Context, samples []int16) error { return p.s.write(ctx, samples) }

// Close implements hal.AudioPlayback. Frames not yet played are dropped.
func (p *Playback) Close() error { return p.s.close() }

// Xruns counts underruns since the stream opened.
func (p *Playback) Xruns() uint64 { return p.s.xruns.Load() }

// Subdevice is the substream the kernel gave the stream.
func (p *Playback) Subdevice() int { return p.s.subdevice }

// Buffer returns the period and buffer sizes the device settled on, in
// frames.
func (p *Playback) Buffer() (period, buffer int) { return p.s.cfg.period, p.s.cfg.buffer }

// Delay returns how long a sample written now waits before it is played:
// what an echo canceller needs to line up the far end with the microphone.
func (p *Playback) Delay() (time.Duration, error) {
	n, err := p.s.delayFrames()
	if err != nil {
		return 0, fmt.Errorf("alsa: delay of %s: %w", p.s.id, err)
	}
	return p.s.frames(n), nil
}

// Capture is an open capture stream. It implements hal.AudioCapture.
type Capture struct{ s *stream }

// Format implements hal.AudioCapture.
func (c *Capture) Format() hal.AudioFormat { return c.s.format }

// Read implements hal.AudioCapture: it fills every whole frame that fits in
// buf and dates the first from the device's delay. After an overrun it
// restarts the stream, counts it (Xruns) and discards a partly filled
// buffer, so the samples returned are always contiguous.
func (c *Capture) Read(ctx context.Context, buf []int16) (int, time.Time, error) {
	return c.s.read(ctx, buf)
}

// Close implements hal.AudioCapture.
func (c *Capture) Close() error { return c.s.close() }

// Xruns counts overruns since the stream opened.
func (c *Capture) Xruns() uint64 { return c.s.xruns.Load() }

// Subdevice is the substream the kernel gave the stream.
func (c *Capture) Subdevice() int { return c.s.subdevice }

// Buffer returns the period and buffer sizes the device settled on, in
// frames.
func (c *Capture) Buffer() (period, buffer int) { return c.s.cfg.period, c.s.cfg.buffer }
