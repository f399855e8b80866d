package swcodec

import "github.com/atriumroom/atrium/hal"

// vp8Codec is libvpx's VP8 encoder through our own binding (libvpx.go),
// with the settings libwebrtc uses for real-time VP8: CBR with a 1 s
// rate-control buffer, no lag, the real-time deadline, error resilience
// (each frame decodable after the loss of earlier ones' probability
// updates), undershoot 100 % and overshoot 15 % so that congestion shows as
// smaller frames rather than bursts, keyframes capped at 9 average frames.
// The quantizer range is libvpx's full 2..63 rather than libwebrtc's
// 2..56: a fallback encoder should meet a low congestion-control target
// before it protects quality.
func vp8Codec() videoCodec {
	return videoCodec{
		caps:       hal.CodecCaps{Codec: hal.CodecVP8, MaxWidth: MaxVideoWidth, MaxHeight: MaxVideoHeight},
		open:       openVP8,
		isKeyframe: vp8IsKeyframe,
	}
}

// vp8IsKeyframe reads the frame tag (RFC 6386 section 9.1): bit 0 of the
// first byte is 0 for a key frame, whose tag is followed by the start code
// 9d 01 2a.
func vp8IsKeyframe(frame []byte) bool {
	return len(frame) >= 10 && frame[0]&1 == 0 &&
		frame[3] == 0x9d && frame[4] == 0x01 && frame[5] == 0x2a
}
