// Package m2m drives V4L2 memory-to-memory stateful codecs: encoders and
// decoders that the kernel exposes as /dev/videoN nodes with
// V4L2_CAP_VIDEO_M2M or V4L2_CAP_VIDEO_M2M_MPLANE, such as the H.264, VP8 and
// VP9 blocks of ARM SoCs (Hantro, Venus, MFC, CODA) and the kernel's own
// vicodec test codec. It is pure Go (ioctls through hal/internal/v4l2), so
// it builds without cgo and its tests run inside the QEMU guest.
//
// # Probing
//
// Driver.Enumerate walks /sys/class/video4linux, opens each node and
// classifies it with VIDIOC_QUERYCAP and VIDIOC_ENUM_FMT: a node whose
// CAPTURE queue offers a coded format (H264, VP8, VP9, FWHT) and whose
// OUTPUT queue takes a raw format this package writes is an encoder; a node
// whose OUTPUT queue takes a coded format is a decoder. Raw-to-raw
// converters (vim2m) and stateless decoders (FWHT_STATELESS, H264_SLICE...:
// they need the request API) are not listed. The largest size comes from
// VIDIOC_ENUM_FRAMESIZES on the coded format. V4L2 cannot say how many
// sessions a codec runs at once, so hal.CodecCaps.MaxSessions is
// Config.MaxSessions (DefaultMaxSessions); the real limit shows at open,
// where EBUSY or ENOMEM from the kernel becomes hal.ErrBusy. Every codec is
// reported with Hardware true, vicodec included: it is software inside the
// kernel, but reached through exactly the hardware API, and its name says
// "(kernel test codec)".
//
// # Encoding
//
// A session follows Documentation/userspace-api/media/v4l/dev-encoder.rst:
// coded format on CAPTURE first, raw format on OUTPUT (I420 when the device
// takes it, else NV12, converted here with the device's strides; a crop
// selection when the driver aligns the size), frame interval, the GOP size,
// bitrate mode and bitrate controls when present, MMAP buffers, both queues
// streaming. Encode queues one raw frame and waits for its coded output,
// matched by buffer timestamp, which also carries CapturedAt through.
// ForceKeyframe uses V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME; a device without
// it (vicodec) gets the interface's Reset sequence, a restart of the
// CAPTURE queue, after which the next frame stands alone. Close drains with
// V4L2_ENC_CMD_STOP.
//
// # Decoding
//
// A session follows dev-decoder.rst: coded format on OUTPUT, stream the
// OUTPUT queue, queue coded frames, and on V4L2_EVENT_SOURCE_CHANGE read
// the CAPTURE format, allocate, stream, dequeue pictures (converted to
// I420), and redo the CAPTURE setup at every later source change (dynamic
// resolution change).
//
// # Failure
//
// Every wait for the device is bounded by Config.FrameTimeout (ErrTimeout)
// and by the caller's context, and Close wakes a waiting call; that is what
// lets hal/codecsel abandon a stalled session and continue in software.
package m2m
