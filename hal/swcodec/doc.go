// Package swcodec holds Atrium's software codecs: the fallback path that
// exists on every appliance, whatever hardware encoders (V4L2 mem2mem,
// VA-API) the registry also finds.
//
//   - Video encoding: H.264 through libx264 (github.com/pion/mediadevices'
//     binding) and VP8 through libvpx (a small binding of our own, because
//     mediadevices' VP8 encoder feeds libvpx wall-clock timestamps in the
//     wrong unit and its rate control swings; see libvpx.go). Both are tuned
//     for real-time calls: no B-frames, no lookahead, one output frame per
//     input frame. See NewVideoEncoders.
//   - Video decoding: VP8 through libvpx (mediadevices' decoder). There is
//     no software H.264 decoder: mediadevices has none and Atrium does not
//     write one, so when roomd itself must decode a remote stream (for the
//     room display) the meeting negotiates VP8. mediadevices' decoder is
//     hard-wired to VP8, so VP9 is not offered either. See NewVideoDecoders.
//   - Audio: Opus encoding through mediadevices and Opus decoding, with
//     packet-loss concealment, through a small cgo binding to libopus of our
//     own, since mediadevices has no Opus decoder. See NewAudioEncoders and
//     NewAudioDecoders.
//
// # Push, not pull
//
// mediadevices' codecs pull their input from a reader. The HAL pushes: the
// capture loop hands Encode one frame and wants that frame's bytes back.
// Each session therefore wraps its mediadevices codec around a one-slot
// source that Encode fills just before calling the codec's Read, which reads
// the slot on the same goroutine. Nothing in this package starts a
// goroutine; the libraries' own threads (x264's slice threads) are theirs.
//
// # Concurrency
//
// Every session serialises Encode, Decode and Close on a mutex. A video
// encoder's ForceKeyframe and SetBitrate only record the request (they are
// called by RTCP and congestion-control goroutines that must not wait for a
// 30 ms encode); the next Encode applies it before it encodes its frame.
//
// # Building
//
// cgo with libx264-dev, libvpx-dev and libopus-dev (pkg-config names x264,
// vpx, opus); binaries then need libx264, libvpx and libopus at run time.
// No build tag is needed, and -tags dynamic works too; see libopus.go for
// how mediadevices' static libopus and ours share one link.
package swcodec
