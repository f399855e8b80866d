package m2m

import (
	"encoding/binary"

	"github.com/atriumroom/atrium/hal"
)

// FWHT frame header (vicodec's struct fwht_cframe_hdr): two magic words,
// then big-endian version, width, height, flags, colorspace, xfer_func,
// ycbcr_enc, quantization and size.
const (
	fwhtMagic1      = 0x4f4f4f4f
	fwhtMagic2      = 0xffffffff
	fwhtHeaderSize  = 44
	fwhtFlagsOffset = 20
	fwhtFlIFrame    = 1 << 10 // V4L2_FWHT_FL_I_FRAME
)

// isKeyframe parses a coded frame's own header, for drivers that do not
// say V4L2_BUF_FLAG_KEYFRAME (vicodec's encoder does not). It reports false
// for data it cannot parse.
func isKeyframe(c hal.Codec, b []byte) bool {
	switch c {
	case hal.CodecFWHT:
		return len(b) >= fwhtHeaderSize &&
			binary.NativeEndian.Uint32(b[0:]) == fwhtMagic1 &&
			binary.NativeEndian.Uint32(b[4:]) == fwhtMagic2 &&
			binary.BigEndian.Uint32(b[fwhtFlagsOffset:])&fwhtFlIFrame != 0
	case hal.CodecH264:
		return h264HasIDR(b)
	case hal.CodecVP8:
		// RFC 6386 section 9.1: bit 0 of the frame tag is 0 for a key frame.
		return len(b) >= 3 && b[0]&1 == 0
	case hal.CodecVP9:
		return vp9IsKeyframe(b)
	}
	return false
}

// completesFrame reports whether a coded buffer holds picture data, as
// opposed to H.264 parameter sets alone, which an encoder may return in a
// buffer of their own before the frame's slices.
func completesFrame(c hal.Codec, b []byte) bool {
	if c != hal.CodecH264 {
		return true
	}
	found := false
	h264NALs(b, func(t byte) bool {
		found = t >= 1 && t <= 5 // coded slices
		return !found
	})
	return found
}

// h264HasIDR reports whether an Annex-B access unit holds an IDR slice
// (NAL unit type 5, ITU-T H.264 table 7-1).
func h264HasIDR(b []byte) bool {
	idr := false
	h264NALs(b, func(t byte) bool {
		idr = t == 5
		return !idr
	})
	return idr
}

// h264NALs calls f with the type of each NAL unit of an Annex-B stream,
// while f returns true.
func h264NALs(b []byte, f func(typ byte) bool) {
	zeros := 0
	for i, c := range b {
		if c == 0 {
			zeros++
			continue
		}
		if c == 1 && zeros >= 2 && i+1 < len(b) && !f(b[i+1]&0x1f) {
			return
		}
		zeros = 0
	}
}

// vp9IsKeyframe reads the start of a VP9 uncompressed header (VP9
// bitstream specification section 6.2): frame_marker, profile bits, a
// reserved bit for profile 3, show_existing_frame, then frame_type, 0 for
// a key frame.
func vp9IsKeyframe(b []byte) bool {
	if len(b) < 1 {
		return false
	}
	bit := func(i int) byte { return b[i/8] >> (7 - i%8) & 1 }
	if b[0]>>6 != 2 {
		return false // frame_marker
	}
	profile := bit(2) | bit(3)<<1
	i := 4
	if profile == 3 {
		i++
	}
	if i+1 >= len(b)*8 || bit(i) == 1 { // show_existing_frame
		return false
	}
	return bit(i+1) == 0
}
