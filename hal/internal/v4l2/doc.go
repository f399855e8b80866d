// Package v4l2 is a thin, pure-Go (no cgo) binding of the Linux V4L2 uapi
// (linux/videodev2.h): ioctl request numbers, the structs they exchange, and a
// Device that wraps an open /dev/videoN with one method per ioctl.
//
// It is shared by the camera driver (hal/v4l2) and the mem2mem codec driver
// (hal/m2m). It makes no policy: it does not pick formats, own buffers or
// start goroutines. Everything it does to the OS goes through FD, so the
// layers above are unit-tested with a fake FD that answers ioctls the way a
// driver would (the structs here are what the fake reads and writes).
//
// # Layout
//
// The structs mirror the kernel's byte for byte on 64-bit Linux (amd64 and
// arm64 share the layout: both have a 16-byte struct timeval and 8-byte
// pointers); layout_test.go pins every size, and the ioctl numbers, which
// encode the sizes, against the values the kernel headers give. A 32-bit
// build fails to compile (see the check in types.go) rather than passing
// wrongly sized structs to the kernel.
//
// C unions are represented by the member Atrium uses, or by a raw byte array
// with accessors. Structs that carry a pointer to user memory (the plane array
// of a multi-planar buffer, the control array of VIDIOC_S_EXT_CTRLS) use a
// typed Go pointer field, so the garbage collector keeps the pointed-to memory
// alive while the kernel reads it; payload pointers inside a control value
// (string and compound controls) are not supported.
//
// # Errors
//
// Every Device method returns *Error, which names the ioctl and the device
// node and wraps the errno, so callers test errors.Is(err, unix.EINVAL) and
// friends, or Gone(err) for "the device went away".
package v4l2
