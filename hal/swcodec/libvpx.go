package swcodec

// A small binding to libvpx's VP8 encoder. mediadevices has a VP8 encoder,
// but its rate control cannot work in real time: it stamps frames with
// wall-clock microseconds while declaring a millisecond timebase, so libvpx
// sees frames 1000 times too long, and its frame-rate estimate flips
// between its 30 fps fallback and about 1 fps with the jitter of the call
// times. Measured at 640x360 with a textured picture, a cut from 1.5 Mbps
// to 300 kbps gave swings between 360 and 1060 kbps (per second) for ten
// seconds; driven with capture times, as below, the same libvpx is within
// 5 % of its final rate half a second after the cut and stays there. It
// also fixes the rate-control buffer at libvpx's 6 s default and sets no
// speed. mediadevices' VP8 decoder is fine and is used as is.

/*
#cgo pkg-config: vpx
#include <stdlib.h>
#include <string.h>
#include <vpx/vpx_encoder.h>
#include <vpx/vp8cx.h>

// atrium_vp8enc lives in C memory: libvpx keeps pointers into the context.
typedef struct {
	vpx_codec_ctx_t ctx;
	vpx_codec_enc_cfg_t cfg;
	vpx_image_t img;
	int initialized;
} atrium_vp8enc;

typedef struct {
	unsigned int w, h, kbps, keyint, threads, max_intra_pct;
	int cpu_used;
} atrium_vp8params;

static vpx_codec_err_t atrium_vp8_open(atrium_vp8enc *e, atrium_vp8params p) {
	vpx_codec_err_t err = vpx_codec_enc_config_default(vpx_codec_vp8_cx(), &e->cfg, 0);
	if (err != VPX_CODEC_OK) return err;
	vpx_codec_enc_cfg_t *c = &e->cfg;
	c->g_w = p.w;
	c->g_h = p.h;
	c->g_threads = p.threads;
	c->g_timebase.num = 1;
	c->g_timebase.den = 90000;
	c->g_pass = VPX_RC_ONE_PASS;
	c->g_lag_in_frames = 0;
	c->g_error_resilient = VPX_ERROR_RESILIENT_DEFAULT;
	c->rc_end_usage = VPX_CBR;
	c->rc_target_bitrate = p.kbps;
	c->rc_dropframe_thresh = 0;
	c->rc_resize_allowed = 0;
	c->rc_min_quantizer = 2;
	c->rc_max_quantizer = 63;
	c->rc_undershoot_pct = 100;
	c->rc_overshoot_pct = 15;
	c->rc_buf_initial_sz = 500;
	c->rc_buf_optimal_sz = 600;
	c->rc_buf_sz = 1000;
	c->kf_mode = VPX_KF_AUTO;
	c->kf_min_dist = 0;
	c->kf_max_dist = p.keyint;
	err = vpx_codec_enc_init(&e->ctx, vpx_codec_vp8_cx(), c, 0);
	if (err != VPX_CODEC_OK) return err;
	e->initialized = 1;
	if ((err = vpx_codec_control(&e->ctx, VP8E_SET_CPUUSED, p.cpu_used)) != VPX_CODEC_OK) return err;
	if ((err = vpx_codec_control(&e->ctx, VP8E_SET_STATIC_THRESHOLD, 1)) != VPX_CODEC_OK) return err;
	if ((err = vpx_codec_control(&e->ctx, VP8E_SET_NOISE_SENSITIVITY, 0)) != VPX_CODEC_OK) return err;
	if ((err = vpx_codec_control(&e->ctx, VP8E_SET_TOKEN_PARTITIONS, VP8_ONE_TOKENPARTITION)) != VPX_CODEC_OK) return err;
	return vpx_codec_control(&e->ctx, VP8E_SET_MAX_INTRA_BITRATE_PCT, p.max_intra_pct);
}

static vpx_codec_err_t atrium_vp8_set_bitrate(atrium_vp8enc *e, unsigned int kbps) {
	e->cfg.rc_target_bitrate = kbps;
	return vpx_codec_enc_config_set(&e->ctx, &e->cfg);
}

// atrium_vp8_encode encodes one I420 picture laid out as the HAL lays it
// out (planes back to back, no padding), which is what vpx_img_wrap with
// an alignment of 1 describes. The picture stays Go memory: libvpx copies
// it during the call, and the pointer is wiped before returning.
static vpx_codec_err_t atrium_vp8_encode(atrium_vp8enc *e, unsigned char *data, unsigned int w, unsigned int h,
		vpx_codec_pts_t pts, unsigned long duration, int keyframe) {
	if (vpx_img_wrap(&e->img, VPX_IMG_FMT_I420, w, h, 1, data) == NULL) return VPX_CODEC_INVALID_PARAM;
	vpx_codec_err_t err = vpx_codec_encode(&e->ctx, &e->img, pts, duration,
		keyframe ? VPX_EFLAG_FORCE_KF : 0, VPX_DL_REALTIME);
	memset(&e->img, 0, sizeof e->img);
	return err;
}

// atrium_vp8_next_frame returns the next compressed-frame packet, skipping
// statistics packets, or NULL.
static const vpx_codec_cx_pkt_t *atrium_vp8_next_frame(atrium_vp8enc *e, vpx_codec_iter_t *iter) {
	const vpx_codec_cx_pkt_t *pkt;
	while ((pkt = vpx_codec_get_cx_data(&e->ctx, iter)) != NULL) {
		if (pkt->kind == VPX_CODEC_CX_FRAME_PKT) return pkt;
	}
	return NULL;
}

static void *atrium_pkt_buf(const vpx_codec_cx_pkt_t *pkt) { return pkt->data.frame.buf; }
static size_t atrium_pkt_size(const vpx_codec_cx_pkt_t *pkt) { return pkt->data.frame.sz; }

static void atrium_vp8_close(atrium_vp8enc *e) {
	if (e->initialized) vpx_codec_destroy(&e->ctx);
	free(e);
}

static const char *atrium_vp8_error_detail(atrium_vp8enc *e) {
	return e->initialized ? vpx_codec_error_detail(&e->ctx) : NULL;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/atriumroom/atrium/hal"
)

// vp8Timebase is the encoder's clock rate: the RTP clock of video, so that
// capture times keep their precision.
const vp8Timebase = 90000

// vp8MaxGap caps the time one frame is taken to last, in frame periods. A
// frame after a capture stall would otherwise make libvpx guess a frame
// rate near zero and give that one frame a second's worth of bits.
const vp8MaxGap = 4

// vp8CPUUsed is libvpx's speed setting; negative values fix the speed
// rather than letting libvpx adapt it to a time budget. -6 is what
// libwebrtc uses for VP8 on x86; 720p then takes 4-14 ms a frame on one
// core of the 2-core appliance (BenchmarkEncode720p), under half the 33 ms
// a frame lasts at 30 fps.
const vp8CPUUsed = -6

// vp8Encoder is one libvpx VP8 encoder. It implements libEncoder and is
// not safe for concurrent use; videoEncoder serialises it.
type vp8Encoder struct {
	enc      *C.atrium_vp8enc
	w, h     int
	period   int64 // one frame, in timebase ticks
	base     time.Time
	lastPTS  int64
	encoded  int // frames so far
	bitrateK int // kbps last applied
}

func openVP8(s encoderSettings) (libEncoder, error) {
	// libwebrtc's rule: a second thread pays from VGA up, if there is a core
	// to spare.
	threads := 1
	if s.width*s.height >= 640*480 && runtime.NumCPU() > 2 {
		threads = 2
	}
	// A keyframe may take half the 600 ms optimal buffer (libwebrtc's rule:
	// 9 average frames at 30 fps), so that one does not flood the link.
	maxIntra := 600 * s.fps / 20
	e := &vp8Encoder{
		enc:      (*C.atrium_vp8enc)(C.calloc(1, C.sizeof_atrium_vp8enc)),
		w:        s.width,
		h:        s.height,
		period:   int64(vp8Timebase / s.fps),
		bitrateK: kbps(s.bitrate),
	}
	if e.enc == nil {
		return nil, errors.New("allocate VP8 encoder: out of memory")
	}
	rc := C.atrium_vp8_open(e.enc, C.atrium_vp8params{
		w: C.uint(s.width), h: C.uint(s.height),
		kbps: C.uint(e.bitrateK), keyint: C.uint(s.keyint),
		threads: C.uint(threads), max_intra_pct: C.uint(maxIntra),
		cpu_used: vp8CPUUsed,
	})
	if err := e.check("vpx_codec_enc_init", rc); err != nil {
		C.atrium_vp8_close(e.enc)
		e.enc = nil
		return nil, err
	}
	return e, nil
}

func kbps(bps int) int { return max(1, (bps+500)/1000) }

func (e *vp8Encoder) check(op string, rc C.vpx_codec_err_t) error {
	if rc == C.VPX_CODEC_OK {
		return nil
	}
	msg := C.GoString(C.vpx_codec_err_to_string(rc))
	if d := C.atrium_vp8_error_detail(e.enc); d != nil {
		msg += ": " + C.GoString(d)
	}
	return fmt.Errorf("%s: %s", op, msg)
}

// encode encodes one I420 frame of the encoder's size. Its timestamp is the
// capture time, so libvpx's rate control sees the real frame rate, camera
// drops included; frames without a usable time get one period.
func (e *vp8Encoder) encode(f hal.VideoFrame, keyframe bool) ([]byte, error) {
	if e.enc == nil {
		return nil, errors.New("VP8 encoder used after close")
	}
	pts := e.lastPTS + e.period
	if e.encoded == 0 {
		e.base, pts = f.CapturedAt, 0
	} else if !f.CapturedAt.IsZero() && !e.base.IsZero() {
		d := f.CapturedAt.Sub(e.base)
		// In two parts so that long sessions do not overflow.
		t := int64(d/time.Second)*vp8Timebase + int64(d%time.Second)*vp8Timebase/int64(time.Second)
		pts = min(max(t, e.lastPTS+1), e.lastPTS+vp8MaxGap*e.period)
	}
	force := C.int(0)
	if keyframe {
		force = 1
	}
	rc := C.atrium_vp8_encode(e.enc, (*C.uchar)(unsafe.Pointer(&f.Data[0])), C.uint(e.w), C.uint(e.h),
		C.vpx_codec_pts_t(pts), C.ulong(e.period), force)
	if err := e.check("vpx_codec_encode", rc); err != nil {
		return nil, err
	}
	e.lastPTS = pts
	e.encoded++
	var out []byte
	var iter C.vpx_codec_iter_t
	for {
		pkt := C.atrium_vp8_next_frame(e.enc, &iter)
		if pkt == nil {
			return out, nil
		}
		out = append(out, unsafe.Slice((*byte)(C.atrium_pkt_buf(pkt)), int(C.atrium_pkt_size(pkt)))...)
	}
}

func (e *vp8Encoder) setBitrate(bps int) error {
	if e.enc == nil {
		return errors.New("VP8 encoder used after close")
	}
	k := kbps(bps)
	if k == e.bitrateK {
		return nil
	}
	if err := e.check("vpx_codec_enc_config_set", C.atrium_vp8_set_bitrate(e.enc, C.uint(k))); err != nil {
		return err
	}
	e.bitrateK = k
	return nil
}

func (e *vp8Encoder) close() error {
	if e.enc != nil {
		C.atrium_vp8_close(e.enc)
		e.enc = nil
	}
	return nil
}
