package swcodec

// This is the smallest binding to libopus's decoder that Atrium needs:
// mediadevices wraps only the encoder.
//
// Linking. Unless built with -tags dynamic, mediadevices links its own
// static libopus 1.3.1 archive for the encoder; this file asks pkg-config
// for Debian's libopus (also 1.3.1), which adds -lopus, the shared library.
// Both on one link line do not clash: a linker takes an object out of a
// static archive only for a symbol still undefined when it reaches the
// archive, and a shared library never causes duplicate definitions. Here
// -lopus comes first, so every opus_* symbol, the encoder's included,
// resolves to libopus.so.0 (nm shows them undefined, ldd lists
// libopus.so.0) and the archive goes unused: one libopus in the process.
// With -tags dynamic mediadevices asks for -lopus itself, to the same
// effect. No build tag is needed.

// #cgo pkg-config: opus
// #include <opus.h>
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// maxOpusPacketMillis is the longest audio one Opus packet can carry
// (RFC 6716 section 3.2.5: up to 48 frames of 2.5 ms, capped at 120 ms).
const maxOpusPacketMillis = 120

// opusError is a libopus error code.
type opusError C.int

func (e opusError) Error() string { return C.GoString(C.opus_strerror(C.int(e))) }

// libopusDecoder owns one OpusDecoder. It is not safe for concurrent use;
// opusDecoder serialises it.
type libopusDecoder struct {
	dec      *C.OpusDecoder
	rate     int
	channels int
}

func newLibopusDecoder(rate, channels int) (*libopusDecoder, error) {
	var rc C.int
	dec := C.opus_decoder_create(C.opus_int32(rate), C.int(channels), &rc)
	if rc != C.OPUS_OK {
		return nil, fmt.Errorf("opus_decoder_create: %w", opusError(rc))
	}
	if dec == nil {
		return nil, errors.New("opus_decoder_create: out of memory")
	}
	return &libopusDecoder{dec: dec, rate: rate, channels: channels}, nil
}

// decode decodes one packet into interleaved samples. An empty packet asks
// for packet-loss concealment of conceal samples per channel, which must
// be a multiple of 2.5 ms.
func (d *libopusDecoder) decode(packet []byte, conceal int) ([]int16, error) {
	if d.dec == nil {
		return nil, errors.New("opus decoder used after destroy")
	}
	var (
		data *C.uchar
		n    = conceal
	)
	if len(packet) > 0 {
		data = (*C.uchar)(unsafe.Pointer(&packet[0]))
		// Size the output exactly: the packet's TOC says how long it is.
		spc := C.opus_decoder_get_nb_samples(d.dec, data, C.opus_int32(len(packet)))
		if spc < 0 {
			return nil, fmt.Errorf("opus_decoder_get_nb_samples: %w", opusError(spc))
		}
		n = int(spc)
	}
	if n <= 0 || n > d.rate*maxOpusPacketMillis/1000 {
		return nil, fmt.Errorf("opus_decode: %d samples per channel is not 1 to %d ms", n, maxOpusPacketMillis)
	}
	pcm := make([]int16, n*d.channels)
	got := C.opus_decode(d.dec, data, C.opus_int32(len(packet)),
		(*C.opus_int16)(unsafe.Pointer(&pcm[0])), C.int(n), 0)
	if got < 0 {
		return nil, fmt.Errorf("opus_decode: %w", opusError(got))
	}
	return pcm[:int(got)*d.channels], nil
}

// destroy frees the decoder; later calls to decode fail instead of
// touching freed memory, and destroy is idempotent.
func (d *libopusDecoder) destroy() {
	if d.dec != nil {
		C.opus_decoder_destroy(d.dec)
		d.dec = nil
	}
}
