// Package v4l2 is the HAL's camera driver for Linux: Video4Linux2 capture
// devices (UVC webcams and conference cameras, capture cards, SoC camera
// pipelines that expose a video node, and the kernel's vivid test driver),
// in pure Go on golang.org/x/sys/unix through hal/internal/v4l2. It lists
// cameras with their modes and controls, captures frames, and follows
// hotplug through hal/hotplug.
//
// # Enumeration
//
// Enumerate walks SysfsRoot/class/video4linux (default /sys) for nodes named
// video*, opens each DevRoot/videoN (default /dev) and asks VIDIOC_QUERYCAP.
// A node is a camera when its own capabilities (device_caps, not those of the
// whole device) include video capture, single- or multi-planar, and
// streaming, and it is not a mem2mem node (those are codecs: hal/m2m).
// Metadata, output, touch, VBI, radio and SDR nodes are skipped, and so is
// the second node a UVC camera registers for its metadata. A node that cannot
// be opened is skipped with a warning (udev may not have set its permissions
// yet; its own event brings another enumeration).
//
// # Stable IDs
//
// Info.ID names the camera, not the node (/dev/videoN numbers follow probe
// order), so configuration can pin "the room camera" by it:
//
//   - USB cameras: "v4l2:usb-VVVV:PPPP-SERIAL", from the USB device's
//     idVendor, idProduct and serial in sysfs (spaces and other characters
//     outside [A-Za-z0-9._:-] become '_'). It survives reboots and moving the
//     camera to another port.
//   - USB cameras without a serial number: "v4l2:usb-VVVV:PPPP@PORT", PORT
//     being the USB port path in sysfs ("1-1.2": bus 1, port 1, hub port 2).
//     It survives reboots and replugging into the same port.
//   - Everything else (platform, PCI, virtual devices):
//     "v4l2:DRIVER/BUS_INFO/CARD" from VIDIOC_QUERYCAP, e.g.
//     "v4l2:vivid/platform:vivid-000/vivid" or
//     "v4l2:saa7134/PCI:0000:03:00.0/Some_TV_Card".
//
// When two capture nodes of one enumeration would get the same ID (two
// identical USB cameras reporting the same serial, a USB camera with two
// streaming interfaces, a platform driver with two capture paths), each of
// them gets suffixes until they differ: "@PORT" for USB cameras with a
// serial, then "#ifNN" (the USB interface number) for USB cameras or
// "#NAME" (the node's sysfs name) for others, and as a last resort
// "#videoN", which is not stable. Such IDs change when the second device
// appears or goes away; that cannot be avoided without a unique serial.
//
// Info.Name is the card name ("Logitech Webcam C925e", "vivid").
//
// A Camera handle stays valid across unplug and replug: while the camera is
// gone its Open returns hal.ErrUnplugged, and when a later enumeration finds
// the same ID again the same handle opens the new node.
//
// # Modes
//
// Modes are formats × frame sizes × frame intervals. Formats map to
// hal.PixelFormat: YUYV, NV12 (and NM12, two planes), YU12 (I420; and YM12,
// three planes), MJPG and JPEG (both MJPG), H264; every other format is
// skipped. Frame sizes and intervals are the driver's discrete ones; for
// stepwise and continuous ranges the driver offers the standard sizes
// (StandardSizes) and rates (StandardFrameRates) inside the range. FPS is the
// interval's rate rounded to an integer (30000/1001 is 30); the exact
// interval is what S_PARM asks for. hal.BestMode picks one for a stream.
//
// # Capture and the one copy
//
// Open sets the format (VIDIOC_S_FMT) and interval (S_PARM), maps four
// kernel buffers (MMAP), queues them and starts streaming. ReadFrame polls,
// dequeues one buffer, copies it into a new VideoFrame.Data in the mode's own
// pixel format, and queues the buffer back at once, so the kernel is never
// short of buffers while the consumer encodes. That copy is the only one
// here: the consumer converts to I420 with hal/pixconv when its encoder needs
// it (bench: hal/pixconv's benchmarks at 720p), or passes MJPEG/H.264 and
// NV12 through when it can. The copy also removes the driver's row padding:
// Data is tightly packed (YUYV: width*2 bytes per row; NV12: Y rows, then
// interleaved UV rows, each width bytes; I420: Y, U, V planes with rows of
// width and width/2 bytes), whatever bytesperline the driver chose.
// Compressed formats carry bytesused bytes.
//
// Seq is the kernel's buffer sequence number, which counts from 0 at
// STREAMON, so a gap means a frame the driver dropped (or a corrupted buffer
// this driver dropped). CapturedAt is the buffer's timestamp when the driver
// stamps it from CLOCK_MONOTONIC (every vb2 driver: UVC, vivid): it is mapped
// to wall time by subtracting its age, measured on the monotonic clock, from
// the wall clock's now. A buffer without a monotonic timestamp, or with one
// that is in the future or more than MaxTimestampAge old, gets the time it
// was dequeued.
//
// # Errors
//
// After the device goes away (USB unplug, driver unbind; the kernel answers
// ENODEV, or EIO followed by ENODEV), ReadFrame returns hal.ErrUnplugged and
// keeps returning it; after Close it returns hal.ErrClosed. Open returns
// hal.ErrUnsupportedMode for a mode not in Modes (or one the driver
// adjusts), hal.ErrBusy when the node is already streaming (for this
// process or another), hal.ErrUnplugged while the camera is gone.
// SetControl returns hal.ErrUnknownControl and hal.ErrOutOfRange (also for a
// value off the control's step or a menu index the control does not offer)
// before any ioctl, and hal.ErrBusy for a control the driver has grabbed
// while streaming.
//
// # Controls
//
// The V4L2 controls below map to the HAL's names. Controls the driver marks
// disabled or read-only are not listed (hal.Control has no read-only flag,
// and a control that cannot be set is no use to the room's settings);
// inactive ones are (exposure while auto exposure is on): setting them is
// allowed and takes effect when they become active.
//
//	brightness          V4L2_CID_BRIGHTNESS
//	contrast            V4L2_CID_CONTRAST
//	exposure_auto       V4L2_CID_EXPOSURE_AUTO (menu: 0 auto, 1 manual, 2 shutter priority, 3 aperture priority)
//	exposure            V4L2_CID_EXPOSURE_ABSOLUTE (100 µs units), else V4L2_CID_EXPOSURE
//	white_balance_auto  V4L2_CID_AUTO_WHITE_BALANCE
//	white_balance       V4L2_CID_WHITE_BALANCE_TEMPERATURE (kelvin)
//	focus_auto          V4L2_CID_FOCUS_AUTO
//	focus               V4L2_CID_FOCUS_ABSOLUTE
//	zoom, pan, tilt     V4L2_CID_ZOOM_ABSOLUTE, PAN_ABSOLUTE, TILT_ABSOLUTE
//	zoom_relative, pan_relative, tilt_relative
//	                    V4L2_CID_ZOOM_RELATIVE, PAN_RELATIVE, TILT_RELATIVE;
//	                    when the camera has only the absolute control, a
//	                    relative one is emulated on it: writing n moves by
//	                    n steps of the absolute control, stopping at its ends.
//
// UVC's speed controls (V4L2_CID_PAN_SPEED, TILT_SPEED, ZOOM_CONTINUOUS) are
// not mapped: they move until told to stop, which a "move by n" API cannot
// express safely. Values are read with VIDIOC_G_EXT_CTRLS and written with
// VIDIOC_S_EXT_CTRLS; SetControl reads the value back and logs when the
// driver applied something else than asked.
//
// # Hotplug
//
// Driver implements hal.Watcher with hal/hotplug (netlink uevents of the
// video4linux subsystem, inotify on DevRoot as a fallback). A stream notices
// an unplug by itself: the ioctl after it fails with ENODEV, and for drivers
// that do not wake a waiting poll, ReadFrame checks the device whenever no
// frame has come for a second (or three frame intervals). An open stream
// pins the driver's module, so "modprobe -r" of a camera's driver fails
// while it streams; unbinding the device (USB unplug, or writing to the
// driver's unbind file in sysfs) does not wait.
//
// # Use
//
//	drv := v4l2.New(v4l2.Options{Logger: log})
//	// hand drv to hal.RegistryOptions.Drivers; it is a hal.Watcher too.
//	cam := dev.(hal.Camera)
//	mode, ok := hal.BestMode(cam.Modes(), hal.VideoMode{Width: 1280, Height: 720, FPS: 30, Format: hal.PixelI420})
//	s, err := cam.Open(ctx, mode)
//	f, err := s.ReadFrame(ctx) // then pixconv.ToI420(f) if the encoder needs I420
package v4l2
