package rtc

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/atriumroom/atrium/hal"
)

// Payload types, as browsers and Janus commonly number them; the answerer
// may renumber, and pion maps them.
const (
	ptVP8     = 96
	ptVP8RTX  = 97
	ptH264    = 102
	ptH264RTX = 103
	ptOpus    = 111
)

// fmtp lines. H.264 is constrained baseline with packetization-mode 1
// (FU-A): what every browser and hardware encoder can do.
const (
	h264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	opusFmtp = "minptime=10;useinbandfec=1"
)

// Header extensions beyond pion's defaults (mid, rid, transport-cc).
const (
	// absCaptureTimeURI carries each frame's capture time, so a receiver
	// knows CapturedAt without relying on sender reports.
	absCaptureTimeURI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
	// audioLevelURI is RFC 6464: the sender's level in every audio packet,
	// which Janus and SFUs use for "who is speaking" without decoding.
	audioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
	// sdesMidURI is RFC 8843's MID, which BUNDLE demultiplexing uses.
	sdesMidURI = "urn:ietf:params:rtp-hdrext:sdes:mid"
)

const (
	videoClockRate = 90000
	opusClockRate  = 48000
	// rtpPayloadMTU leaves room under a 1280-byte path MTU for IP, UDP, RTP
	// headers, header extensions and the SRTP tag.
	rtpPayloadMTU = 1100
)

// videoFeedback is the RTCP feedback every video codec offers: NACK (and
// RTX) repairs loss, PLI and FIR ask for keyframes, transport-cc feeds GCC.
// No goog-remb: congestion control is transport-wide, though a REMB that
// arrives anyway is honoured as a cap. The list is complete here, not left
// to pion's interceptor setup, because SetCodecPreferences keeps only the
// feedback the preferred codecs list.
var videoFeedback = []webrtc.RTCPFeedback{
	{Type: webrtc.TypeRTCPFBNACK},
	{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
	{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
	{Type: webrtc.TypeRTCPFBTransportCC},
}

// videoCodecParams returns the codec and its RTX companion, or nil for a
// codec this package cannot send or reassemble.
func videoCodecParams(c hal.Codec) []webrtc.RTPCodecParameters {
	var mime, fmtp string
	var pt, rtx webrtc.PayloadType
	switch c {
	case hal.CodecVP8:
		mime, pt, rtx = webrtc.MimeTypeVP8, ptVP8, ptVP8RTX
	case hal.CodecH264:
		mime, fmtp, pt, rtx = webrtc.MimeTypeH264, h264Fmtp, ptH264, ptH264RTX
	default:
		return nil
	}
	return []webrtc.RTPCodecParameters{
		{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: videoClockRate, SDPFmtpLine: fmtp, RTCPFeedback: videoFeedback},
			PayloadType:        pt,
		},
		{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: videoClockRate, SDPFmtpLine: "apt=" + strconv.Itoa(int(pt))},
			PayloadType:        rtx,
		},
	}
}

func opusCodecParams() webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: opusClockRate, Channels: 2, SDPFmtpLine: opusFmtp},
		PayloadType:        ptOpus,
	}
}

// halCodec maps a MIME type to the HAL's codec name ("" if unknown).
func halCodec(mime string) hal.Codec {
	switch strings.ToLower(mime) {
	case strings.ToLower(webrtc.MimeTypeVP8):
		return hal.CodecVP8
	case strings.ToLower(webrtc.MimeTypeH264):
		return hal.CodecH264
	case strings.ToLower(webrtc.MimeTypeVP9):
		return hal.CodecVP9
	case strings.ToLower(webrtc.MimeTypeOpus):
		return hal.CodecOpus
	}
	return ""
}

func payloaderFor(c hal.Codec) rtp.Payloader {
	switch c {
	case hal.CodecVP8:
		// Picture IDs let receivers tell a lost frame from a late one.
		return &codecs.VP8Payloader{EnablePictureID: true}
	case hal.CodecH264:
		return &codecs.H264Payloader{}
	case hal.CodecOpus:
		return &codecs.OpusPayloader{}
	}
	return nil
}

func depacketizerFor(c hal.Codec) rtp.Depacketizer {
	switch c {
	case hal.CodecVP8:
		return &codecs.VP8Packet{}
	case hal.CodecH264:
		// Annex B output (start codes), as WebCodecs' "annexb" takes it.
		return &codecs.H264Packet{}
	}
	return nil
}

// isKeyframe inspects a reassembled frame.
func isKeyframe(c hal.Codec, data []byte) bool {
	switch c {
	case hal.CodecVP8:
		// RFC 6386 section 9.1: bit 0 of the frame tag is 0 on key frames.
		return len(data) > 0 && data[0]&0x01 == 0
	case hal.CodecH264:
		found := false
		forEachNAL(data, func(nal []byte) bool {
			// IDR slice (5); a frame led by SPS (7) is a keyframe too.
			if t := nal[0] & 0x1f; t == 5 || t == 7 {
				found = true
				return false
			}
			return true
		})
		return found
	}
	return false
}

// forEachNAL calls fn with each non-empty NAL unit of an Annex B stream
// until fn returns false.
func forEachNAL(data []byte, fn func(nal []byte) bool) {
	start := func(b []byte) (int, int) { // index of a start code and its length
		i := bytes.Index(b, []byte{0, 0, 1})
		if i < 0 {
			return -1, 0
		}
		if i > 0 && b[i-1] == 0 {
			return i - 1, 4
		}
		return i, 3
	}
	i, n := start(data)
	if i < 0 {
		return
	}
	data = data[i+n:]
	for len(data) > 0 {
		j, m := start(data)
		nal := data
		if j >= 0 {
			nal = data[:j]
		}
		if len(nal) > 0 && !fn(nal) {
			return
		}
		if j < 0 {
			return
		}
		data = data[j+m:]
	}
}

// vp8Size reads the picture size from a VP8 key frame header (RFC 6386
// section 9.1: 3-byte tag, start code 9d 01 2a, 14-bit width and height).
func vp8Size(frame []byte) (w, h int, ok bool) {
	if len(frame) < 10 || frame[0]&1 != 0 || frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
		return 0, 0, false
	}
	w = int(frame[6]) | int(frame[7]&0x3f)<<8
	h = int(frame[8]) | int(frame[9]&0x3f)<<8
	return w, h, w > 0 && h > 0
}

// videoBandwidthCap returns the lowest video bandwidth limit in an SDP
// (b=TIAS in bits/s or b=AS in kbit/s, RFC 3890 and RFC 4566), or 0. Janus
// VideoRoom and many SFUs cap publishers this way.
func videoBandwidthCap(sdp string) int {
	limit := 0
	video := false
	for line := range strings.Lines(sdp) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "m="):
			video = strings.HasPrefix(line, "m=video")
		case video && strings.HasPrefix(line, "b=TIAS:"):
			limit = lowerLimit(limit, line[len("b=TIAS:"):], 1)
		case video && strings.HasPrefix(line, "b=AS:"):
			limit = lowerLimit(limit, line[len("b=AS:"):], 1000)
		}
	}
	return limit
}

func lowerLimit(cur int, value string, unit int) int {
	v, err := strconv.Atoi(strings.TrimSpace(value))
	if err != nil || v <= 0 {
		return cur
	}
	v *= unit
	if cur == 0 || v < cur {
		return v
	}
	return cur
}

// countCandidates counts a=candidate lines.
func countCandidates(sdp string) int {
	n := 0
	for line := range strings.Lines(sdp) {
		if strings.HasPrefix(line, "a=candidate:") {
			n++
		}
	}
	return n
}
