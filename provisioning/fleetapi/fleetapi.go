// Package fleetapi is the wire contract between the device agent in roomd
// and fleetd's device API: paths, request and response bodies, command
// kinds and the configuration profile. Standard library only, so both
// sides import it without importing each other (roomd never links the
// fleet server, and the server never links the daemon).
//
// Every body is JSON, at most MaxBody bytes, decoded strictly (an unknown
// field is an error). Errors come back as a Problem with an HTTP status.
package fleetapi

import (
	"encoding/json"
	"time"
)

// Paths of the device API. Enroll is the only one reachable without a
// device certificate; every other path requires mTLS with a certificate
// the fleet's CA issued and has not revoked.
const (
	PathEnroll  = "/device/v1/enroll"
	PathCheckIn = "/device/v1/checkin"
	PathRenew   = "/device/v1/renew"
	// PathLogs takes a gzip-compressed log bundle (Content-Type
	// application/gzip, at most MaxLogBundle bytes) for the collect-logs
	// command named by the "command" query parameter.
	PathLogs = "/device/v1/logs"
)

// Size limits both sides enforce.
const (
	MaxBody      = 1 << 20
	MaxLogBundle = 8 << 20
	// MaxOutbox is the most records one check-in carries; a device with
	// more sends the oldest first and the rest next time.
	MaxOutbox = 200
)

// Problem is every error answer: the HTTP status, a stable code for
// programs and a sentence for people. Field names the offending part of
// the body where there is one (for example "profile.display.awakeFrom").
type Problem struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Field  string `json:"field,omitempty"`
}

func (p *Problem) Error() string {
	if p.Field != "" {
		return p.Code + ": " + p.Field + ": " + p.Detail
	}
	return p.Code + ": " + p.Detail
}

// Problem codes.
const (
	CodeBadRequest   = "bad-request"    // malformed or oversized body, unknown field
	CodeInvalidCode  = "invalid-code"   // unknown enrollment code (same answer as a guess)
	CodeExpiredCode  = "expired-code"   // the code's time is over
	CodeUsedCode     = "used-code"      // the code was spent already
	CodeWrongScope   = "wrong-scope"    // the room is not covered by the code
	CodeRateLimited  = "rate-limited"   // too many attempts; Retry-After says when to try again
	CodeUnauthorized = "unauthorized"   // no, unknown, expired or revoked device certificate
	CodeRevoked      = "revoked"        // the device was revoked; it must enroll again
	CodeInternal     = "internal-error" // the server failed; retry later
)

// Facts are the hardware facts a device reports at enrollment.
type Facts struct {
	Model     string   `json:"model"`
	Vendor    string   `json:"vendor"`
	Serial    string   `json:"serial"`
	MACs      []string `json:"macs"`
	MachineID string   `json:"machineId"`
}

// EnrollRequest is the body of POST PathEnroll.
type EnrollRequest struct {
	// Code is the activation code as typed; spaces, dashes and case do
	// not matter.
	Code string `json:"code"`
	// CSR is the device key's PKCS#10 request, DER (base64 in JSON).
	CSR   []byte `json:"csr"`
	Facts Facts  `json:"facts"`
	// RoomName names the room for a code that covers a whole site: the
	// device joins the site's room of that name, created if need be.
	// Ignored for a code that names its room.
	RoomName string `json:"roomName,omitempty"`
}

// EnrollResponse answers a successful enrollment.
type EnrollResponse struct {
	DeviceID string `json:"deviceId"`
	RoomID   string `json:"roomId"`
	RoomName string `json:"roomName"`
	// Certificate is the device's client certificate, PEM.
	Certificate string `json:"certificate"`
	// CABundle is the fleet CA's certificates, PEM: the roots the device
	// trusts for fleetd from now on.
	CABundle string `json:"caBundle"`
	// CheckInSeconds is the interval the server asks for.
	CheckInSeconds int `json:"checkInSeconds"`
}

// RenewRequest is the body of POST PathRenew (mTLS with the current
// certificate, before it expires).
type RenewRequest struct {
	CSR []byte `json:"csr"`
}

// RenewResponse carries the new certificate.
type RenewResponse struct {
	Certificate string `json:"certificate"`
	CABundle    string `json:"caBundle"`
}

// CheckIn is the body of POST PathCheckIn.
type CheckIn struct {
	// Sent is the device's clock when it sent this (for skew, not trust).
	Sent        time.Time    `json:"sent"`
	Inventory   Inventory    `json:"inventory"`
	Health      Health       `json:"health"`
	Meeting     Meeting      `json:"meeting"`
	CallQuality *CallQuality `json:"callQuality,omitempty"`
	// Profile says which profile version is applied and how the last one
	// went.
	Profile ProfileState `json:"profile"`
	// Outbox carries queued events and command results, oldest first, at
	// most MaxOutbox. The server stores each once per (device, key).
	Outbox []Record `json:"outbox"`
	// Update is the device's software update state; nil from a device
	// that cannot update itself (a development build).
	Update *UpdateStatus `json:"update,omitempty"`
}

// Inventory is what the device is and has.
type Inventory struct {
	// Versions maps component ("roomd", "image", "kernel"…) to version.
	Versions map[string]string `json:"versions"`
	Hostname string            `json:"hostname"`
	RoomName string            `json:"roomName"`
	Devices  []Peripheral      `json:"devices"`
	Network  Network           `json:"network"`
}

// Peripheral is one camera, microphone or speaker.
type Peripheral struct {
	Kind      string `json:"kind"` // camera, microphone, speaker
	ID        string `json:"id"`
	Name      string `json:"name"`
	Simulated bool   `json:"simulated,omitempty"`
}

// Network is the device's network as the room sees it.
type Network struct {
	Addresses []string `json:"addresses"`
	// Verdict is the last network test's plain-language verdict, if any.
	Verdict string `json:"verdict,omitempty"`
}

// Health is the device's own judgement.
type Health struct {
	Status   string   `json:"status"` // HealthOK, HealthDegraded or HealthFailed
	Problems []string `json:"problems,omitempty"`
	// UptimeSeconds counts since roomd started.
	UptimeSeconds int64 `json:"uptimeSeconds"`
}

// Health statuses.
const (
	HealthOK       = "ok"
	HealthDegraded = "degraded"
	HealthFailed   = "failed"
)

// Meeting is the room's meeting state.
type Meeting struct {
	State string `json:"state"` // idle, joining, connected, reconnecting, left, failed
	// Provider is the service kind (janus, whip) while in a meeting.
	Provider string    `json:"provider,omitempty"`
	Since    time.Time `json:"since,omitzero"`
}

// CallQuality summarises the current or last call.
type CallQuality struct {
	Ended         bool    `json:"ended"`
	Seconds       int64   `json:"seconds"`
	Participants  int     `json:"participants"`
	RTTMillis     float64 `json:"rttMillis"`
	LossPercent   float64 `json:"lossPercent"`
	SendKbps      float64 `json:"sendKbps"`
	ReceiveKbps   float64 `json:"receiveKbps"`
	EncoderPath   string  `json:"encoderPath,omitempty"` // hardware or software, and why
	Relayed       bool    `json:"relayed"`
	FramesDropped int64   `json:"framesDropped"`
}

// ProfileState reports the profile the device runs.
type ProfileState struct {
	// Applied is the Version of the profile in effect on the device
	// ("" before the first).
	Applied string `json:"applied"`
	// Last is the outcome of the last profile the device received.
	Last ProfileOutcome `json:"last"`
}

// ProfileOutcome is how applying one profile version went.
type ProfileOutcome struct {
	Version string `json:"version"`
	Status  string `json:"status"` // ProfileApplied, ProfileRejected or ProfileRolledBack
	Reason  string `json:"reason,omitempty"`
}

// Profile outcomes.
const (
	ProfileApplied    = "applied"
	ProfileRejected   = "rejected"    // failed validation on the device; nothing changed
	ProfileRolledBack = "rolled-back" // applied, roomd became unhealthy, the previous one restored
)

// Record is one queued event or command result. Key is unique per device
// and stays the same however often the record is sent.
type Record struct {
	Key    string    `json:"key"`
	At     time.Time `json:"at"`
	Event  *Event    `json:"event,omitempty"`
	Result *Result   `json:"result,omitempty"`
}

// Event is something the device wants in its history.
type Event struct {
	Type    string          `json:"type"` // e.g. "meeting.joined", "profile.rolled-back", "enrolled"
	Message string          `json:"message"`
	Details json.RawMessage `json:"details,omitempty"`
}

// Result is the end of one command on the device.
type Result struct {
	CommandID string          `json:"commandId"`
	Status    string          `json:"status"` // ResultSucceeded, ResultFailed or ResultRejected
	Detail    string          `json:"detail,omitempty"`
	Output    json.RawMessage `json:"output,omitempty"`
}

// Command result statuses.
const (
	ResultSucceeded = "succeeded"
	ResultFailed    = "failed"
	ResultRejected  = "rejected" // unknown kind or malformed arguments
)

// CheckInResponse answers a check-in.
type CheckInResponse struct {
	// CheckInSeconds is the interval until the next check-in (the device
	// adds jitter).
	CheckInSeconds int `json:"checkInSeconds"`
	// Acked lists the outbox keys now stored; the device may drop them.
	Acked []string `json:"acked"`
	// Profile is the profile in effect for the device.
	Profile EffectiveProfile `json:"profile"`
	// Commands are the device's commands not yet ended, oldest first.
	Commands []Command `json:"commands"`
	// Update is the image the fleet wants the device to run; nil when
	// no rollout covers the device (or it runs the version already).
	Update *UpdateOffer `json:"update,omitempty"`
}

// EffectiveProfile is the merged profile for one device. Version is a
// digest of Body, so equal profiles have equal versions.
type EffectiveProfile struct {
	Version string          `json:"version"`
	Body    json.RawMessage `json:"body"`
}

// Command is a remote action.
type Command struct {
	ID   string          `json:"id"`
	Kind string          `json:"kind"`
	Args json.RawMessage `json:"args"`
}

// Command kinds and their arguments.
const (
	CommandReboot        = "reboot"         // {}
	CommandLeaveMeeting  = "leave-meeting"  // {}
	CommandJoin          = "join"           // JoinArgs
	CommandNetworkTest   = "network-test"   // {}
	CommandCollectLogs   = "collect-logs"   // CollectLogsArgs
	CommandSetSetting    = "set-setting"    // SetSettingArgs
	CommandFactoryReset  = "factory-reset"  // FactoryResetArgs
	CommandRenewIdentity = "renew-identity" // {}: renew the certificate now
)

// CommandKinds lists every kind, for validation on both sides.
var CommandKinds = []string{CommandReboot, CommandLeaveMeeting, CommandJoin, CommandNetworkTest,
	CommandCollectLogs, CommandSetSetting, CommandFactoryReset, CommandRenewIdentity}

// JoinArgs are the arguments of CommandJoin.
type JoinArgs struct {
	URL string `json:"url"`
}

// CollectLogsArgs are the arguments of CommandCollectLogs.
type CollectLogsArgs struct {
	// MaxBytes bounds the compressed bundle (default and ceiling
	// MaxLogBundle).
	MaxBytes int64 `json:"maxBytes,omitempty"`
	// SinceMinutes is how far back to collect (default 60).
	SinceMinutes int `json:"sinceMinutes,omitempty"`
}

// SetSettingArgs are the arguments of CommandSetSetting: one top-level
// profile key and its value, applied like a profile of that one key (the
// next profile change replaces it).
type SetSettingArgs struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// FactoryResetArgs are the arguments of CommandFactoryReset. Confirm must
// be the device's own ID, so a reset meant for another device (a pasted
// ID, a mixed-up tab) is refused.
type FactoryResetArgs struct {
	Confirm string `json:"confirm"`
}
