package m2m

import (
	"testing"

	"github.com/atriumroom/atrium/hal"
)

func TestIsKeyframe(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codec hal.Codec
		data  []byte
		want  bool
	}{
		{"FWHT I frame", hal.CodecFWHT, fakeHeader(64, 64, true, 0), true},
		{"FWHT P frame", hal.CodecFWHT, fakeHeader(64, 64, false, 0), false},
		{"FWHT short", hal.CodecFWHT, fakeHeader(64, 64, true, 0)[:40], false},
		{"FWHT bad magic", hal.CodecFWHT, append([]byte{1}, fakeHeader(64, 64, true, 0)[1:]...), false},
		// SPS, PPS, IDR with 4- and 3-byte start codes.
		{"H264 IDR", hal.CodecH264, []byte{0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88}, true},
		{"H264 non-IDR", hal.CodecH264, []byte{0, 0, 0, 1, 0x41, 0x9a, 0x02}, false},
		{"H264 zeros inside a NAL", hal.CodecH264, []byte{0, 0, 0, 1, 0x41, 0, 0, 0x65}, false},
		{"H264 empty", hal.CodecH264, nil, false},
		{"VP8 key", hal.CodecVP8, []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a}, true},
		{"VP8 inter", hal.CodecVP8, []byte{0x11, 0x02, 0x00}, false},
		// frame_marker 10, profile 0, show_existing 0, frame_type 0/1.
		{"VP9 key", hal.CodecVP9, []byte{0b1000_0010, 0x49, 0x83, 0x42}, true},
		{"VP9 inter", hal.CodecVP9, []byte{0b1000_0110}, false},
		{"VP9 show existing", hal.CodecVP9, []byte{0b1000_1000}, false},
		// profile 3 has a reserved bit before show_existing_frame.
		{"VP9 profile 3 key", hal.CodecVP9, []byte{0b1011_0000, 0}, true},
		{"VP9 profile 3 inter", hal.CodecVP9, []byte{0b1011_0010, 0}, false},
		{"VP9 bad marker", hal.CodecVP9, []byte{0b0000_0000}, false},
		{"unknown codec", hal.CodecOpus, []byte{0}, false},
	} {
		if got := isKeyframe(tc.codec, tc.data); got != tc.want {
			t.Errorf("%s: isKeyframe = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCompletesFrame(t *testing.T) {
	params := []byte{0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce}
	for _, tc := range []struct {
		name  string
		codec hal.Codec
		data  []byte
		want  bool
	}{
		{"H264 SPS and PPS only", hal.CodecH264, params, false},
		{"H264 SPS, PPS and IDR", hal.CodecH264, append(append([]byte{}, params...), 0, 0, 1, 0x65, 0x88), true},
		{"H264 non-IDR slice", hal.CodecH264, []byte{0, 0, 1, 0x41, 0x9a}, true},
		{"H264 SEI only", hal.CodecH264, []byte{0, 0, 1, 0x06, 0x05}, false},
		{"VP8 anything", hal.CodecVP8, []byte{0x11}, true},
	} {
		if got := completesFrame(tc.codec, tc.data); got != tc.want {
			t.Errorf("%s: completesFrame = %v, want %v", tc.name, got, tc.want)
		}
	}
}
