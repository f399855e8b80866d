package codecsel

import "time"

// Reason says why a session runs on the path it does.
type Reason string

// Reasons. The first applies to hardware paths, the others to software.
const (
	// ReasonHardware: a hardware factory had the codec and a free session.
	ReasonHardware Reason = "hardware"
	// ReasonNoHardware: no hardware factory supports the codec at the size.
	ReasonNoHardware Reason = "no-hardware"
	// ReasonSessionLimit: every suitable hardware factory was full, by the
	// count kept here or by its own hal.ErrBusy.
	ReasonSessionLimit Reason = "session-limit"
	// ReasonCooldown: the suitable hardware failed recently.
	ReasonCooldown Reason = "hardware-cooldown"
	// ReasonOpenFailed: opening a hardware session failed.
	ReasonOpenFailed Reason = "hardware-open-failed"
	// ReasonError: the running hardware session returned an error.
	ReasonError Reason = "hardware-error"
	// ReasonStall: the running hardware session stopped producing output.
	ReasonStall Reason = "hardware-stall"
)

// Path is the codec a session is using, as the API and statistics show it.
type Path struct {
	// Device is the hal.Info ID of the factory in use, Name its
	// human-readable name and Driver its driver ("v4l2-m2m", "software").
	// All are empty while the session has no codec (after a failed
	// reopen, or after Close).
	Device, Name, Driver string
	Hardware             bool
	// Reason says why the session is on this path and Detail adds the
	// error or stall that caused it, if any.
	Reason Reason
	Detail string
	// Fallbacks counts the moves from hardware to software in this
	// session (0 or 1, since a session never goes back to hardware).
	Fallbacks int
	// Since is when the session started on this path.
	Since time.Time
}

// PathReporter is implemented by the sessions Encoders and Decoders open,
// so the media layer can type-assert the hal.VideoEncoder or
// hal.VideoDecoder it holds and report which codec each stream uses.
type PathReporter interface {
	CodecPath() Path
}
