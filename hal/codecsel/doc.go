// Package codecsel chooses, for each new video encoder or decoder session,
// between hardware and software codecs, and moves a running session from
// hardware to software when the hardware misbehaves.
//
// # Policy
//
// Encoders and Decoders are hal.VideoEncoderFactory and
// hal.VideoDecoderFactory themselves: they wrap the factories the registry
// lists and are used in their place. A factory counts as hardware for a
// codec when its hal.CodecCaps for that codec say Hardware. A new session
// goes to the first hardware factory that
//
//   - supports the codec at the requested size (MaxWidth/MaxHeight, 0 meaning
//     no stated limit),
//   - has a free session: sessions opened through this package are counted
//     per factory against CodecCaps.MaxSessions (0 meaning no stated limit),
//     and a factory that answers hal.ErrBusy at open is treated as full,
//   - is not cooling down after a failure (Options.Cooldown),
//
// and otherwise to the first software factory that supports the codec. The
// order of the factory list is the order of preference within each class.
//
// While a hardware session runs, it is replaced by a software session
// mid-stream when a call returns an error, or when it stalls: Options.StallFrames
// calls in a row produce no output, or the calls since the last output have
// spent Options.StallTimeout in the hardware (a single call that blocks is
// cancelled through its context when the budget runs out). The caller sees
// none of it except that:
//
//   - no input is lost: frames the hardware accepted but never returned are
//     encoded again in software (decoders replay the coded frames since the
//     last keyframe into the software decoder and return only the pictures
//     the hardware had not returned), so each input produces output from
//     exactly one path;
//   - the first software output of an encoder is a keyframe;
//   - the bitrate set with SetBitrate carries over, and so does the
//     configuration (keyframe interval, frame rate);
//   - the session's Path changes and says why (PathReporter), and a warning
//     is logged.
//
// A session stays on software once it has left hardware; the failed factory
// is skipped by new sessions for Options.Cooldown, so a device that stalls
// every session does not cost every call a stall.
//
// # Contract with hardware sessions
//
// A hardware session must return promptly from Encode or Decode when the
// context it is given is done: that is how a blocked call is abandoned.
// Outputs must carry the input's CapturedAt (or be returned in input order
// with a zero CapturedAt), which is how outputs are matched to inputs.
package codecsel
