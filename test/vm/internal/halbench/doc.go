// Package halbench measures the HAL's capture-to-encoder pipeline at 720p
// on real devices, one path after the other in the same run, so that the
// encoder paths can be compared with each other: software x264 and libvpx
// VP8 (hal/swcodec), which take I420 in Go memory, and V4L2 mem2mem
// encoders (hal/m2m; vicodec's FWHT in the VM), into whose buffers the
// frame is written directly. Each encoder is measured twice: fed from the
// camera's YUYV mode, converted to I420 by hal/pixconv (the copying path),
// and fed from the camera's I420 mode (NV12 when the camera has no I420)
// with no conversion.
//
// The program cmd/halbench (cgo, for it links the software codecs) does the
// work with Run and prints one line per path in Go's benchmark format,
// which benchstat reads, then comment lines (starting with #) with each
// path's ratios to x264's. The guest tests in halbench_vm_test.go, run
// inside the QEMU guest by test/vm (see vm-programs.txt), start it against
// vivid and vicodec: BenchmarkHALBench relays its lines (make bench appends
// them to bench/results/hal.txt), TestPipelineProgram runs it for a few
// frames and checks every path's numbers.
//
// # Metrics
//
// Each path captures Options.Warmup frames that are not counted (the first
// is a keyframe, and the encoder allocates), then Options.Frames measured
// ones, one at a time as roomd's capture loop does: read, convert, encode.
// Per frame, averaged:
//
//	ns/op                 conversion plus encode time: the path's work per frame
//	ms-latency/frame      from the frame's capture timestamp to the encoder
//	                      returning it: ms-wait/frame plus the work
//	ms-wait/frame         from the capture timestamp to ReadFrame returning:
//	                      the driver's delivery and, when the path is slower
//	                      than the camera, the frames queued ahead of it
//	ms-convert/frame      the pixel format conversion (0 without one)
//	ms-encode/frame       the encoder's Encode call; for mem2mem it includes
//	                      writing the frame into the device's buffer
//	cpu-ms/frame          the process's CPU time (getrusage: every thread, the
//	                      encoder libraries' included, and the Go runtime's
//	                      garbage collector; nothing else runs in the program),
//	                      in user space and in the kernel on its behalf
//	sys-cpu-ms/frame      the kernel's part of it: copying frames out of the
//	                      capture buffers and, for vicodec, the encoding itself
//	                      (v4l2-mem2mem runs an idle device's job inside the
//	                      VIDIOC_QBUF that queues the frame; a hardware encoder
//	                      does that work in its own block, off the CPU)
//	machine-cpu-ms/frame  the whole machine's busy time (/proc/stat, all CPUs,
//	                      10 ms ticks): the process's, plus the kernel's own
//	                      threads (vivid drawing frames) and anything else
//	bytes/frame           coded bytes
//	B/op, allocs/op       Go heap allocations (not the C libraries')
//
// The latency means what it says only while the path keeps up with the
// camera; when it does not, the frames queue in the capture buffers and the
// wait grows to the length of that queue. QEMU's emulation encodes no path
// at 720p in real time, so the guest benchmark runs vivid at 5 fps (the
// encoders are still set up for 30 fps, a call's bits per frame); at its
// highest rate, 12.5 fps at 720p, every path would queue.
//
// In the VM every time is that of QEMU's CPU emulation: compare paths with
// each other, within one run, not with the host's numbers.
package halbench
