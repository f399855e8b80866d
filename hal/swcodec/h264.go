package swcodec

import (
	"errors"
	"fmt"
	"image"

	"github.com/pion/mediadevices/pkg/codec"
	"github.com/pion/mediadevices/pkg/codec/x264"
	"github.com/pion/mediadevices/pkg/prop"

	"github.com/atriumroom/atrium/hal"
)

// x264AssumedFPS is the frame rate libx264 rate-controls for under
// mediadevices: its wrapper never sets x264's i_fps_num, x264 then assumes
// 25 fps, and the zerolatency tune turns off timestamp-based (VFR) rate
// control. The encoder spends bitrate/25 per frame whatever the real rate,
// so x264Encoder scales every bitrate it passes on by 25/fps.
const x264AssumedFPS = 25

// h264Codec is libx264 through mediadevices.
//
// mediadevices opens x264 with the zerolatency tune (no B-frames, no
// lookahead, sliced threads), Annex-B output and SPS/PPS repeated before
// every IDR, and applies the "high" profile as a ceiling only. The
// ultrafast preset chosen here turns off CABAC, 8x8 transforms and weighted
// prediction, so x264 writes Constrained Baseline (profile_idc 66 with
// constraint_set0 and constraint_set1), the profile every WebRTC endpoint
// decodes with packetization-mode=1. It is also the only preset cheap
// enough for 720p30 on two cores.
func h264Codec() videoCodec {
	return videoCodec{
		caps:       hal.CodecCaps{Codec: hal.CodecH264, MaxWidth: MaxVideoWidth, MaxHeight: MaxVideoHeight},
		open:       openX264,
		isKeyframe: h264IsKeyframe,
	}
}

// x264Encoder drives mediadevices' pull-based x264 encoder from Encode: it
// puts the frame in a one-slot source and calls the encoder's Read, which
// reads the slot on the same goroutine.
type x264Encoder struct {
	enc codec.ReadCloser
	src *frameSource
	fps int
}

func openX264(s encoderSettings) (libEncoder, error) {
	p, err := x264.NewParams()
	if err != nil {
		return nil, err
	}
	e := &x264Encoder{src: &frameSource{}, fps: s.fps}
	p.Preset = x264.PresetUltrafast
	p.BitRate = e.libBitrate(s.bitrate)
	p.KeyFrameInterval = s.keyint
	// x264 logs to stderr, past our logger; keep it to errors.
	p.LogLevel = x264.LogError
	e.enc, err = p.BuildVideoEncoder(e.src, prop.Media{Video: prop.Video{
		Width: s.width, Height: s.height, FrameRate: float32(s.fps),
	}})
	if err != nil {
		return nil, fmt.Errorf("open x264: %w", err)
	}
	return e, nil
}

func (e *x264Encoder) libBitrate(bps int) int {
	return int(int64(bps) * x264AssumedFPS / int64(e.fps))
}

func (e *x264Encoder) encode(f hal.VideoFrame, keyframe bool) ([]byte, error) {
	if keyframe {
		ctl, ok := e.enc.Controller().(codec.KeyFrameController)
		if !ok {
			return nil, errors.New("x264 encoder cannot force keyframes")
		}
		if err := ctl.ForceKeyFrame(); err != nil {
			return nil, fmt.Errorf("force keyframe: %w", err)
		}
	}
	e.src.put(i420Image(f))
	data, release, err := e.enc.Read()
	e.src.clear() // x264 copied the picture; do not pin f.Data
	if err != nil {
		return nil, err
	}
	if release != nil {
		release()
	}
	return data, nil
}

// setBitrate changes x264's ABR target in place (x264_encoder_reconfig).
// mediadevices also loosens the VBV cap to the target plus 5 Mbps when it
// does, so after a change x264 keeps the average but not the peak.
func (e *x264Encoder) setBitrate(bps int) error {
	ctl, ok := e.enc.Controller().(codec.BitRateController)
	if !ok {
		return errors.New("x264 encoder has no bitrate control")
	}
	return ctl.SetBitRate(e.libBitrate(bps))
}

func (e *x264Encoder) close() error { return e.enc.Close() }

// H.264 NAL unit types (ITU-T H.264 Table 7-1) that the tests and the
// keyframe check look for.
const (
	naluSlice = 1
	naluIDR   = 5
	naluSPS   = 7
	naluPPS   = 8
)

// h264IsKeyframe reports whether an Annex-B access unit holds an IDR slice.
func h264IsKeyframe(au []byte) bool {
	for _, nal := range annexBNALs(au) {
		if len(nal) > 0 && nal[0]&0x1f == naluIDR {
			return true
		}
	}
	return false
}

// annexBNALs splits an Annex-B byte stream (ITU-T H.264 Annex B) into NAL
// units without their start codes. Zero bytes before a start code belong to
// the byte stream (a 4-byte start code, trailing_zero_8bits), not to the
// NAL unit, which always ends in a non-zero rbsp_trailing_bits byte.
func annexBNALs(b []byte) [][]byte {
	var nals [][]byte
	start := -1
	for i := 0; i+2 < len(b); {
		if b[i] != 0 || b[i+1] != 0 || b[i+2] != 1 {
			i++
			continue
		}
		if start >= 0 {
			end := i
			for end > start && b[end-1] == 0 {
				end--
			}
			nals = append(nals, b[start:end])
		}
		i += 3
		start = i
	}
	if start >= 0 && start < len(b) {
		nals = append(nals, b[start:])
	}
	return nals
}

// errNoFrame is what a frameSource returns when a library encoder reads
// more than the one picture Encode gave it: a bug in the adapter or a
// library that buffers, not a condition callers can act on.
var errNoFrame = errors.New("encoder read a second picture for one input frame")

// frameSource is the pull side of the push adapter: a video.Reader holding
// at most one picture, which the library encoder reads on Encode's
// goroutine, inside its Read.
type frameSource struct {
	img *image.YCbCr
}

func (s *frameSource) put(img *image.YCbCr) { s.img = img }

func (s *frameSource) clear() { s.img = nil }

// Read implements mediadevices' video.Reader.
func (s *frameSource) Read() (image.Image, func(), error) {
	img := s.img
	if img == nil {
		return nil, func() {}, errNoFrame
	}
	s.img = nil
	return img, func() {}, nil
}

// i420Image views an I420 frame's planes, without copying, as the
// *image.YCbCr mediadevices' encoders take. The size has been checked.
func i420Image(f hal.VideoFrame) *image.YCbCr {
	w, h := f.Width, f.Height
	ySize, cSize := w*h, (w/2)*(h/2)
	return &image.YCbCr{
		Y:              f.Data[:ySize:ySize],
		Cb:             f.Data[ySize : ySize+cSize : ySize+cSize],
		Cr:             f.Data[ySize+cSize : ySize+2*cSize : ySize+2*cSize],
		YStride:        w,
		CStride:        w / 2,
		SubsampleRatio: image.YCbCrSubsampleRatio420,
		Rect:           image.Rect(0, 0, w, h),
	}
}
