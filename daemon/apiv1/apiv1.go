// Package apiv1 is the wire contract of roomd's local API, version 1.
//
// It holds only the JSON types exchanged between roomd, roomctl, the kiosk UI
// and tests, so that clients can import the contract without importing the
// daemon. It depends on the standard library alone; keep it that way.
//
// The same contract is described for non-Go clients by docs/openapi.json; a
// test in package api checks that the two agree.
package apiv1

import (
	"encoding/json"
	"time"
)

// BasePath prefixes every route of this API version.
const BasePath = "/api/v1"

// MaxBodyBytes bounds every request body the API accepts.
const MaxBodyBytes = 64 << 10

// DaemonState is where roomd is in its own lifecycle.
type DaemonState string

// Daemon states.
const (
	DaemonStarting DaemonState = "starting"
	DaemonReady    DaemonState = "ready"
	DaemonStopping DaemonState = "stopping"
)

// MeetingState is where the room is in a meeting's lifecycle.
type MeetingState string

// Meeting states. A meeting that ended (left or failed) is reported until the
// next join, so that a person can read why the last one ended.
const (
	MeetingIdle         MeetingState = "idle"
	MeetingJoining      MeetingState = "joining"
	MeetingConnected    MeetingState = "connected"
	MeetingReconnecting MeetingState = "reconnecting"
	MeetingLeft         MeetingState = "left"
	MeetingFailed       MeetingState = "failed"
)

// Status is the answer of GET /status and the first event of every stream.
type Status struct {
	Room      string      `json:"room"`
	Version   string      `json:"version"`
	BootID    string      `json:"bootId"` // new on every daemon start: a UI that sees it change reloads
	StartedAt time.Time   `json:"startedAt"`
	State     DaemonState `json:"state"`
	Meeting   Meeting     `json:"meeting"`
	Devices   []Device    `json:"devices"`
	// Call describes the meeting in progress: who is in it and how the
	// media flows. Absent when the room is not in a meeting.
	Call *Call `json:"call,omitempty"`
}

// Call is the live state of a meeting's media.
type Call struct {
	Participants []Participant `json:"participants"`
	Peers        []PeerStats   `json:"peers"`
	// MicrophoneMuted and CameraOff are the room's privacy switches.
	MicrophoneMuted bool `json:"microphoneMuted"`
	CameraOff       bool `json:"cameraOff"`
	// Speaker is the ID of the device the call plays on, for the volume
	// control; absent when it plays on none.
	Speaker string `json:"speaker,omitempty"`
}

// MediaChange is the body of PUT /meeting/media: the switches to change;
// absent ones stay as they are.
type MediaChange struct {
	MicrophoneMuted *bool `json:"microphoneMuted,omitempty"`
	CameraOff       *bool `json:"cameraOff,omitempty"`
}

// MediaState is the answer of PUT /meeting/media.
type MediaState struct {
	MicrophoneMuted bool `json:"microphoneMuted"`
	CameraOff       bool `json:"cameraOff"`
}

// Participant is someone else in the meeting.
type Participant struct {
	ID      string `json:"id"`
	Display string `json:"display"`
	Audio   bool   `json:"audio"` // publishes audio
	Video   bool   `json:"video"` // publishes video
	// AudioLevel is the level of the participant's audio as the room
	// receives it, in dBov; absent when none is received.
	AudioLevel float64 `json:"audioLevel,omitempty"`
	// Speaking marks the loudest participant above SpeakingDBov; at most
	// one speaks.
	Speaking bool `json:"speaking"`
}

// SpeakingDBov is the audio level above which a participant can count as
// speaking.
const SpeakingDBov = -50.0

// PeerStats describes one WebRTC connection of the meeting.
type PeerStats struct {
	Label         string  `json:"label"` // publisher, subscriber, ...
	State         string  `json:"state"` // the connection state
	BitrateIn     int     `json:"bitrateIn"`
	BitrateOut    int     `json:"bitrateOut"`
	TargetBitrate int     `json:"targetBitrate"` // congestion control's estimate
	PacketsLost   int64   `json:"packetsLost"`
	JitterMs      float64 `json:"jitterMs"`
	RTTMs         float64 `json:"rttMs"`
	// Path is the selected candidate pair, e.g. "host udp" or "relay tls".
	Path    string          `json:"path,omitempty"`
	Encoder string          `json:"encoder,omitempty"` // the video encoder in use
	Sent    []SentTrack     `json:"sent"`
	Recv    []ReceivedTrack `json:"received"`
}

// SentTrack is one stream the room sends.
type SentTrack struct {
	Kind        string `json:"kind"` // audio or video
	Codec       string `json:"codec"`
	PacketsSent uint64 `json:"packetsSent"`
	FramesSent  uint64 `json:"framesSent"`
	// Encoder is the device ID of the encoder in use; Hardware says it is
	// a hardware one. EncoderPath says why: hardware, no-hardware,
	// session-limit, hardware-cooldown, hardware-open-failed,
	// hardware-error or hardware-stall; Fallbacks counts moves from
	// hardware to software during the call.
	Encoder     string `json:"encoder,omitempty"`
	Hardware    bool   `json:"hardware,omitempty"`
	EncoderPath string `json:"encoderPath,omitempty"`
	Fallbacks   int    `json:"fallbacks,omitempty"`
	// Source is the device captured; SourceLost is set while it is gone
	// (unplugged) and far ends see the "camera unavailable" card.
	Source     string `json:"source,omitempty"`
	SourceLost bool   `json:"sourceLost,omitempty"`
}

// ReceivedTrack is one remote stream the room receives.
type ReceivedTrack struct {
	ID              string  `json:"id"`
	Kind            string  `json:"kind"`
	Codec           string  `json:"codec"`
	PacketsReceived uint64  `json:"packetsReceived"`
	Frames          uint64  `json:"frames"` // video: whole frames; audio: packets
	FramesDropped   uint64  `json:"framesDropped"`
	AudioLevel      float64 `json:"audioLevel,omitempty"` // dBov
	// Participant is the id of the participant whose media the track
	// carries, when the meeting provider says.
	Participant string `json:"participant,omitempty"`
	// FirstFrameAt is when roomd handed the track's first frame to its
	// sinks: for video the first whole frame, reassembled from RTP from a
	// keyframe on (roomd does not decode video itself), for audio the first
	// packet. Absent until then. omitzero leaves it out; omitempty, a no-op
	// on a time, marks it optional for readers of the tag that predate
	// omitzero, such as the OpenAPI check in package api.
	FirstFrameAt time.Time `json:"firstFrameAt,omitzero"`
}

// Meeting describes the current or last meeting.
type Meeting struct {
	State    MeetingState `json:"state"`
	URL      string       `json:"url,omitempty"`
	Provider string       `json:"provider,omitempty"`
	Reason   string       `json:"reason,omitempty"` // why a meeting failed or was left
	// CalendarID is the agenda meeting (apiv1.AgendaMeeting.ID) the room
	// joined, when it joined one from the calendar.
	CalendarID string    `json:"calendarId,omitempty"`
	Since      time.Time `json:"since"`
}

// DeviceKind names a class of HAL device.
type DeviceKind string

// Device kinds.
const (
	KindCamera       DeviceKind = "camera"
	KindMicrophone   DeviceKind = "microphone"
	KindSpeaker      DeviceKind = "speaker"
	KindVideoEncoder DeviceKind = "video-encoder"
	KindVideoDecoder DeviceKind = "video-decoder"
	KindAudioEncoder DeviceKind = "audio-encoder"
	KindAudioDecoder DeviceKind = "audio-decoder"
)

// Device is one peripheral or codec known to the HAL.
type Device struct {
	ID        string     `json:"id"` // stable across reboots; config pins devices by it
	Kind      DeviceKind `json:"kind"`
	Name      string     `json:"name"`
	Driver    string     `json:"driver"`
	Simulated bool       `json:"simulated"`
	// EchoCancelled marks the sound server's echo-cancelled microphone and
	// speaker, which meetings prefer.
	EchoCancelled bool `json:"echoCancelled,omitempty"`
	// Capabilities depend on the kind; fields that do not apply are omitted.
	VideoModes   []VideoMode   `json:"videoModes,omitempty"`
	AudioFormats []AudioFormat `json:"audioFormats,omitempty"`
	Codecs       []CodecCaps   `json:"codecs,omitempty"`
	Controls     []Control     `json:"controls,omitempty"`
}

// VideoMode is one capture mode of a camera.
type VideoMode struct {
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	FPS         int    `json:"fps"`
	PixelFormat string `json:"pixelFormat"` // FourCC-style: I420, NV12, YUYV, MJPG, H264
}

// AudioFormat is one sample format of a microphone or speaker. Samples are
// signed 16-bit, interleaved.
type AudioFormat struct {
	SampleRate int `json:"sampleRate"`
	Channels   int `json:"channels"`
}

// CodecCaps describes what one codec device can do.
type CodecCaps struct {
	Codec       string `json:"codec"` // H264, VP8, VP9, Opus
	MaxWidth    int    `json:"maxWidth,omitempty"`
	MaxHeight   int    `json:"maxHeight,omitempty"`
	MaxSessions int    `json:"maxSessions,omitempty"` // 0: no fixed limit
	Hardware    bool   `json:"hardware"`
}

// Control is one adjustable setting of a device (brightness, zoom, ...).
type Control struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Type    string `json:"type"` // int, bool, menu
	Min     int64  `json:"min"`
	Max     int64  `json:"max"`
	Step    int64  `json:"step"`
	Default int64  `json:"default"`
	Value   int64  `json:"value"`
}

// DeviceList is the answer of GET /devices.
type DeviceList struct {
	Devices []Device `json:"devices"`
}

// ControlChange is the body of PUT /devices/{id}/controls/{control}: exactly
// one of Value (set it, range-checked) or Delta (move by that many of the
// control's steps, stopping at the ends: what a remote's arrow keys send).
type ControlChange struct {
	Value *int64 `json:"value,omitempty"`
	Delta *int64 `json:"delta,omitempty"`
}

// Preset is a saved camera position: the absolute zoom, pan, tilt and focus
// values the camera had (only those it has).
type Preset struct {
	Name   string           `json:"name"`
	Values map[string]int64 `json:"values"`
}

// AudioLevel is the answer of GET /devices/{id}/level: what a microphone
// hears over a short window, in dB relative to full scale (0 is the loudest
// a sample can be; -120 stands for digital silence).
type AudioLevel struct {
	RMSdBFS  float64 `json:"rmsDbfs"`
	PeakdBFS float64 `json:"peakDbfs"`
	WindowMs int     `json:"windowMs"`
}

// AudioTestRequest is the body of POST /audio/self-test; both fields are
// optional. Speaker and Microphone name the raw pair to measure (the room's
// own devices, before any echo canceller); empty picks them.
type AudioTestRequest struct {
	Speaker    string `json:"speaker,omitempty"`
	Microphone string `json:"microphone,omitempty"`
}

// AudioTestRun is one measurement of the self-test: a noise burst played
// on Speaker and recorded on Microphone.
type AudioTestRun struct {
	Speaker    string `json:"speaker"`
	Microphone string `json:"microphone"`
	// EchoFound says the burst was found in the recording; DelayMs is how
	// long it took to come back.
	EchoFound bool    `json:"echoFound"`
	DelayMs   float64 `json:"delayMs"`
	// ERLdB is the echo return loss: how much quieter the echo is than what
	// was played. BelowNoise: the echo vanished in the room's noise, so the
	// loss is at least ERLdB.
	ERLdB      float64 `json:"erlDb"`
	BelowNoise bool    `json:"belowNoise"`
}

// AudioTestResult is the answer of POST /audio/self-test: the room measured
// without the echo canceller (Raw) and through it (Cancelled), each absent
// when the room has no such pair. ImprovementDB is what the canceller
// removes (its echo return loss enhancement), when both ran.
type AudioTestResult struct {
	Raw           *AudioTestRun `json:"raw,omitempty"`
	Cancelled     *AudioTestRun `json:"cancelled,omitempty"`
	ImprovementDB float64       `json:"improvementDb,omitempty"`
}

// Agenda is the answer of GET /calendar and the data of calendar.changed
// events: the room's meetings of the next 7 days, meetings under way
// included, sorted by start. Meeting links are never shown (they may hold
// passcodes): a Join button sends the meeting's ID to POST /calendar/join.
type Agenda struct {
	// Configured is false when the room has no calendar.
	Configured bool `json:"configured"`
	// Source names the calendar (its URL without credentials or query).
	Source string `json:"source,omitempty"`
	// UpdatedAt is when the copy shown was fetched; Stale says the last
	// refresh failed (Error says why) and the last good copy is shown.
	UpdatedAt time.Time       `json:"updatedAt,omitzero"`
	Stale     bool            `json:"stale"`
	Error     string          `json:"error,omitempty"`
	Meetings  []AgendaMeeting `json:"meetings"`
}

// AgendaMeeting is one meeting of the agenda.
type AgendaMeeting struct {
	ID     string    `json:"id"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	AllDay bool      `json:"allDay,omitempty"`
	Title  string    `json:"title"`
	// Provider joins it (or names the closed service); Reason says why the
	// room cannot join it when Joinable is false.
	Provider  string `json:"provider,omitempty"`
	Joinable  bool   `json:"joinable"`
	Reason    string `json:"reason,omitempty"`
	Private   bool   `json:"private,omitempty"`
	Cancelled bool   `json:"cancelled,omitempty"`
	// JoinFrom is when the Join button appears: 5 minutes before Start.
	JoinFrom time.Time `json:"joinFrom"`
}

// CalendarJoinRequest is the body of POST /calendar/join.
type CalendarJoinRequest struct {
	ID string `json:"id"`
}

// NetworkTest is the answer of POST and GET /network/test: the room's
// network as a call would use it, tested against the configured STUN and
// TURN servers, with a verdict in plain words.
type NetworkTest struct {
	Time       time.Time         `json:"time"`
	DurationMs float64           `json:"durationMs"`
	Verdict    NetworkVerdict    `json:"verdict"`
	Checks     []NetworkCheck    `json:"checks"`
	Bandwidth  *NetworkBandwidth `json:"bandwidth,omitempty"`
}

// NetworkVerdict sums a network test up: Level is ok, warning or fail;
// Path the way calls will take (udp, turn-tcp, turn-tls) when known.
type NetworkVerdict struct {
	Level string `json:"level"`
	Text  string `json:"text"`
	Path  string `json:"path,omitempty"`
}

// NetworkCheck is one server reached (or not) over one transport.
type NetworkCheck struct {
	Kind      string  `json:"kind"` // stun, turn
	URL       string  `json:"url"`
	Transport string  `json:"transport"` // udp, tcp, tls
	OK        bool    `json:"ok"`
	ConnectMs float64 `json:"connectMs,omitempty"`
	RTTMs     float64 `json:"rttMs,omitempty"`
	Reflexive string  `json:"reflexive,omitempty"` // the room's public address, as STUN saw it
	Relay     string  `json:"relay,omitempty"`
	// Failure classifies what went wrong: unreachable, timeout,
	// auth_refused, tls_error, unsupported, error.
	Failure string `json:"failure,omitempty"`
	Error   string `json:"error,omitempty"`
}

// NetworkBandwidth is the short probe through the relay a call would use:
// whether the path carries a call's rate, not the link's capacity.
type NetworkBandwidth struct {
	URL             string  `json:"url"`
	Transport       string  `json:"transport"`
	TargetKbps      float64 `json:"targetKbps"`
	DurationMs      float64 `json:"durationMs"`
	SentPackets     int     `json:"sentPackets"`
	ReceivedPackets int     `json:"receivedPackets"`
	LossPercent     float64 `json:"lossPercent"`
	ReceivedKbps    float64 `json:"receivedKbps"`
	Error           string  `json:"error,omitempty"`
}

// CalendarCheck is the answer of POST /calendar/check: the meetings an
// iCalendar document holds in the next 7 days, one per occurrence, and what
// roomd could not read in it (each problem names its line and property).
type CalendarCheck struct {
	Meetings []CalendarMeeting `json:"meetings"`
	Problems []string          `json:"problems"`
}

// CalendarMeeting is one occurrence of a meeting.
type CalendarMeeting struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	AllDay bool      `json:"allDay,omitempty"`
	Title  string    `json:"title"`
	// URL is the meeting link the room would use, if there is one;
	// Provider the meeting provider that joins it, or the closed service's
	// name. Reason says why Joinable is false ("Zoom meetings cannot be
	// joined natively yet", "no meeting link", "cancelled").
	URL       string `json:"url,omitempty"`
	Provider  string `json:"provider,omitempty"`
	Joinable  bool   `json:"joinable"`
	Reason    string `json:"reason,omitempty"`
	Private   bool   `json:"private,omitempty"`
	Cancelled bool   `json:"cancelled,omitempty"`
}

// PresetList is the answer of GET /devices/{id}/presets, sorted by name.
type PresetList struct {
	Presets []Preset `json:"presets"`
}

// JoinRequest is the body of POST /meeting/join.
type JoinRequest struct {
	URL string `json:"url"`
}

// EventType names the kind of an event on the stream.
type EventType string

// Event types. Data holds, per type: status → Status; meeting.state → Meeting;
// device.added, device.removed, device.changed → Device; call.stats → Call,
// every few seconds while in a meeting; calendar.changed → Agenda.
const (
	EventStatus        EventType = "status"
	EventMeetingState  EventType = "meeting.state"
	EventDeviceAdded   EventType = "device.added"
	EventDeviceRemoved EventType = "device.removed"
	EventDeviceChanged EventType = "device.changed"
	EventCallStats     EventType = "call.stats"
	// EventCalendarChanged carries the Agenda after the calendar changed.
	EventCalendarChanged EventType = "calendar.changed"
)

// Event is one message of GET /events, sent as a server-sent event whose
// "event" field is Type, whose "id" field is Seq and whose data is this JSON.
type Event struct {
	Seq  uint64          `json:"seq"`
	Type EventType       `json:"type"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
}

// Problem is an RFC 9457 problem details body (application/problem+json).
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Field names the offending JSON field, when there is one.
	Field string `json:"field,omitempty"`
}

// Problem type URIs. They are relative references, resolved against the API's
// base, and documented in docs/API.md.
const (
	ProblemBadRequest       = "/api/v1/problems/bad-request"
	ProblemInvalidURL       = "/api/v1/problems/invalid-url"
	ProblemNoProvider       = "/api/v1/problems/no-provider"
	ProblemInvalidValue     = "/api/v1/problems/invalid-value"
	ProblemUnauthorized     = "/api/v1/problems/unauthorized"
	ProblemNotFound         = "/api/v1/problems/not-found"
	ProblemMethodNotAllowed = "/api/v1/problems/method-not-allowed"
	ProblemTooLarge         = "/api/v1/problems/too-large"
	ProblemUnsupportedMedia = "/api/v1/problems/unsupported-media-type"
	ProblemUnavailable      = "/api/v1/problems/unavailable"
	ProblemInternal         = "/api/v1/problems/internal"
)

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Title + ": " + p.Detail
	}
	return p.Title
}
