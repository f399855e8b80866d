package v4l2

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openFIFO opens a named pipe through the real OpenFD, so Poll, Ioctl and
// Close run real syscalls without a V4L2 device, and returns a writer that
// makes it readable.
func openFIFO(t *testing.T) (FD, func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := OpenFD(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(w) })
	return fd, func() { _, _ = unix.Write(w, []byte{1}) }
}

func TestPollTimeoutReadyAndCancel(t *testing.T) {
	fd, write := openFIFO(t)
	defer fd.Close()
	ctx := t.Context()

	start := time.Now()
	rev, err := fd.Poll(ctx, unix.POLLIN, 30*time.Millisecond)
	if err != nil || rev != 0 {
		t.Fatalf("Poll on an idle fifo = %#x, %v; want a timeout (0, nil)", rev, err)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("Poll timed out after %v, before its 30ms", el)
	}

	write()
	rev, err = fd.Poll(ctx, unix.POLLIN, time.Second)
	if err != nil || rev&unix.POLLIN == 0 {
		t.Fatalf("Poll on a readable fifo = %#x, %v", rev, err)
	}

	// Drain, then block forever until the context ends.
	var b [8]byte
	if err := fd.Ioctl(0, nil); !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EINVAL) {
		t.Errorf("ioctl 0 on a fifo: %v", err)
	}
	of := fd.(*osFD)
	_, _ = unix.Read(of.fd, b[:])
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := fd.Poll(cctx, unix.POLLIN, -1)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Poll after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Poll did not return after its context was cancelled")
	}
}

func TestCloseWakesPoll(t *testing.T) {
	fd, _ := openFIFO(t)
	done := make(chan error, 1)
	go func() {
		_, err := fd.Poll(context.Background(), unix.POLLIN, -1)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := fd.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Poll after Close: %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not wake the Poll")
	}
	if err := fd.Ioctl(IoctlQueryCap, unsafe.Pointer(new(Capability))); !errors.Is(err, ErrClosed) {
		t.Errorf("Ioctl after Close: %v, want ErrClosed", err)
	}
	if err := fd.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}

func TestOpenMissingNode(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "video0"))
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, unix.ENOENT) || e.Op != "open" {
		t.Errorf("Open of a missing node: %v", err)
	}
}
