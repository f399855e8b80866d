package apiv1

import "time"

// EventFleetChanged carries a FleetStatus whenever enrollment or the
// fleet connection changes (enrolled, a check-in succeeded or failed,
// revoked).
const EventFleetChanged EventType = "fleet.changed"

// Problem types of the fleet routes.
const (
	// ProblemNotManaged: roomd.toml names no fleet server.
	ProblemNotManaged = "/api/v1/problems/not-managed"
	// ProblemEnrollRefused: the fleet server refused the activation code;
	// Detail says why (unknown, expired, used, too many attempts).
	ProblemEnrollRefused = "/api/v1/problems/enroll-refused"
	// ProblemAlreadyEnrolled: the room belongs to a fleet already; a
	// factory reset from the console releases it.
	ProblemAlreadyEnrolled = "/api/v1/problems/already-enrolled"
	// ProblemFleetUnreachable: the fleet server could not be reached.
	ProblemFleetUnreachable = "/api/v1/problems/fleet-unreachable"
)

// FleetStatus is the answer of GET /fleet: whether and how the room is
// managed by a fleet server (fleetd).
type FleetStatus struct {
	// Managed says a fleet server is configured; without one the room is
	// standalone and there is nothing to enroll in.
	Managed  bool   `json:"managed"`
	Server   string `json:"server,omitempty"`
	Enrolled bool   `json:"enrolled"`
	DeviceID string `json:"deviceId,omitempty"`
	// FleetRoom is the room the fleet placed the device in.
	FleetRoom   string    `json:"fleetRoom,omitempty"`
	LastCheckIn time.Time `json:"lastCheckIn,omitzero"`
	NextCheckIn time.Time `json:"nextCheckIn,omitzero"`
	// LastError is the last check-in's failure, cleared by a success.
	LastError string `json:"lastError,omitempty"`
	// Revoked: the fleet cut the device off; it must be factory reset and
	// enrolled again.
	Revoked bool `json:"revoked,omitempty"`
	// CertificateExpires is when the device's fleet certificate ends (it
	// renews itself at two thirds of its life).
	CertificateExpires time.Time `json:"certificateExpires,omitzero"`
	// Profile is the version of the configuration profile in effect.
	Profile string `json:"profile,omitempty"`
	// Pending counts events and command results not yet delivered.
	Pending int `json:"pending"`
	// CanEnroll says the kiosk may enroll right now without an admin
	// session: managed, not enrolled, and no admin PIN set yet (first
	// setup). Otherwise enrollment needs the PIN.
	CanEnroll bool `json:"canEnroll"`
}

// FleetEnrollRequest is the body of POST /fleet/enroll.
type FleetEnrollRequest struct {
	// Code is the activation code from the fleet console, as typed.
	Code string `json:"code"`
	// RoomName names the room for a code that covers a whole site; empty
	// uses the room's current name.
	RoomName string `json:"roomName,omitempty"`
}
