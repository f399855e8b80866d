package alsa

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// system is every contact the driver has with the OS: device nodes, their
// ioctls and poll, and the sysfs files that identify USB devices. Tests
// replace it with a fake card (fake_test.go).
type system interface {
	Open(path string, flags int) (fd int, err error)
	Close(fd int) error
	// Ioctl returns the call's errno as a unix.Errno, or nil.
	Ioctl(fd int, req uintptr, arg unsafe.Pointer) error
	Poll(fds []unix.PollFd, timeoutMs int) (int, error)

	ReadDir(dir string) ([]string, error)
	ReadFile(path string) ([]byte, error)
	EvalSymlinks(path string) (string, error)

	// LockThread pins the calling goroutine to its OS thread until the
	// returned function runs. ALSA keys a control device's preferred
	// subdevice to the thread that opened it, so the control open, the
	// preference and the PCM open must happen on one thread.
	LockThread() (unlock func())
}

// osSystem is the real system.
type osSystem struct{}

func (osSystem) Open(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func (osSystem) Close(fd int) error { return unix.Close(fd) }

func (osSystem) Ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
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

func (osSystem) Poll(fds []unix.PollFd, timeoutMs int) (int, error) {
	n, err := unix.Poll(fds, timeoutMs)
	if errors.Is(err, unix.EINTR) {
		return 0, nil
	}
	return n, err
}

func (osSystem) ReadDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

func (osSystem) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

func (osSystem) EvalSymlinks(path string) (string, error) { return filepath.EvalSymlinks(path) }

func (osSystem) LockThread() func() {
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}
