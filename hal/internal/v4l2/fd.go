package v4l2

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FD is the OS seam: the four things V4L2 does to an open device node. The
// real one is returned by OpenFD; tests use a fake that interprets the
// requests (switching on the Ioctl* numbers and casting arg to the matching
// struct of this package).
type FD interface {
	// Ioctl issues request req with arg pointing at the struct the request
	// number encodes. It returns the errno as a unix.Errno.
	Ioctl(req uint32, arg unsafe.Pointer) error
	// Mmap maps length bytes at offset (a buffer's mmap offset), shared and
	// read-write.
	Mmap(offset int64, length int) ([]byte, error)
	// Munmap undoes Mmap.
	Munmap(b []byte) error
	// Poll waits until the device is ready for one of events (unix.POLLIN,
	// POLLOUT, POLLPRI), timeout passes (it then returns 0, nil; a negative
	// timeout waits forever), ctx is done (ctx.Err()), or the FD is closed
	// (ErrClosed). It returns the poll revents, which may include
	// unix.POLLERR or POLLHUP.
	Poll(ctx context.Context, events int16, timeout time.Duration) (revents int16, err error)
	// Close closes the node. It wakes Polls in progress, waits for them and
	// for ioctls in progress to return, and then closes the descriptor, so a
	// descriptor number is never used after the kernel could reuse it.
	Close() error
}

// Opener opens a device node as an FD; OpenFD is the real one.
type Opener func(path string) (FD, error)

// ErrClosed is returned by FD operations after Close.
var ErrClosed = errors.New("v4l2: device closed")

// OpenFD opens path read-write and non-blocking (so DQBUF returns EAGAIN
// instead of sleeping in the kernel, where no context can reach it).
func OpenFD(path string) (FD, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &Error{Op: "open", Path: path, Err: err}
	}
	return &osFD{fd: fd, wakers: make(map[int]struct{})}, nil
}

// osFD is the real FD.
type osFD struct {
	// mu is held shared by every operation on fd and exclusively by Close,
	// after it has woken the pollers.
	mu     sync.RWMutex
	fd     int
	closed atomic.Bool

	// wakers are the eventfds of Polls in progress; Close writes to each.
	wmu    sync.Mutex
	wakers map[int]struct{}
}

func (f *osFD) Ioctl(req uint32, arg unsafe.Pointer) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed.Load() {
		return ErrClosed
	}
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(f.fd), uintptr(req), uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return errno
		}
	}
}

func (f *osFD) Mmap(offset int64, length int) ([]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed.Load() {
		return nil, ErrClosed
	}
	return unix.Mmap(f.fd, offset, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func (f *osFD) Munmap(b []byte) error { return unix.Munmap(b) }

func (f *osFD) Poll(ctx context.Context, events int16, timeout time.Duration) (int16, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed.Load() {
		return 0, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// Each Poll has its own eventfd, written when ctx is done or the FD
	// closes, so that one poller's wakeup is never consumed by another.
	// Two extra syscalls per frame cost nothing next to a frame.
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return 0, fmt.Errorf("eventfd: %w", err)
	}
	defer unix.Close(wake)
	f.wmu.Lock()
	f.wakers[wake] = struct{}{}
	f.wmu.Unlock()
	defer func() {
		f.wmu.Lock()
		delete(f.wakers, wake)
		f.wmu.Unlock()
	}()
	if f.closed.Load() { // Close may have run its wakeups before we registered
		return 0, ErrClosed
	}
	stop := context.AfterFunc(ctx, func() { signal(wake) })
	defer stop()

	deadline := time.Time{}
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		ms := -1
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return 0, nil
			}
			// Round up, so a sub-millisecond remainder does not spin.
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		fds := []unix.PollFd{{Fd: int32(f.fd), Events: events}, {Fd: int32(wake), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("poll: %w", err)
		}
		if fds[1].Revents != 0 {
			if f.closed.Load() {
				return 0, ErrClosed
			}
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		if n > 0 && fds[0].Revents != 0 {
			return fds[0].Revents, nil
		}
	}
}

// signal makes an eventfd readable.
func signal(efd int) {
	var one [8]byte
	one[0] = 1 // eventfd counters are host-endian; amd64 and arm64 are little-endian
	_, _ = unix.Write(efd, one[:])
}

func (f *osFD) Close() error {
	if f.closed.Swap(true) {
		return ErrClosed
	}
	f.wmu.Lock()
	for w := range f.wakers {
		signal(w)
	}
	f.wmu.Unlock()
	f.mu.Lock() // every operation in progress has returned
	defer f.mu.Unlock()
	return unix.Close(f.fd)
}
