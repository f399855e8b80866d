package apiv1

import "time"

// AdminHeader carries an admin session token on requests from the kiosk
// (the loopback listener). The unix socket and the token listener are
// trusted as administrators and need none.
const AdminHeader = "X-Atrium-Admin"

// Events of the admin settings.
const (
	// EventDisplayChanged carries a DisplayState when the display wakes or
	// sleeps.
	EventDisplayChanged EventType = "display.changed"
	// EventSettingsChanged carries a SettingsChanged after a change.
	EventSettingsChanged EventType = "settings.changed"
)

// Problem type of the admin routes.
const (
	// ProblemAdminRequired: the route needs an admin session (401).
	ProblemAdminRequired = "/api/v1/problems/admin-required"
	// ProblemWrongPIN: the PIN did not match (401, with attemptsLeft).
	ProblemWrongPIN = "/api/v1/problems/wrong-pin"
	// ProblemLocked: too many wrong PINs (429, with lockedUntil and a
	// Retry-After header).
	ProblemLocked = "/api/v1/problems/locked"
	// ProblemNoPIN: no PIN is set; one is set with `roomctl admin set-pin`
	// (409).
	ProblemNoPIN = "/api/v1/problems/no-pin"
	// ProblemConflict: the settings changed since the version sent (409).
	ProblemConflict = "/api/v1/problems/conflict"
)

// AdminState is the answer of GET /admin: what anyone may know of the PIN.
type AdminState struct {
	PINSet      bool      `json:"pinSet"`
	Locked      bool      `json:"locked"`
	LockedUntil time.Time `json:"lockedUntil,omitzero"`
	// AttemptsLeft is how many wrong PINs lock it (0 while locked).
	AttemptsLeft int `json:"attemptsLeft"`
}

// AdminLogin is the body of POST /admin/session.
type AdminLogin struct {
	PIN string `json:"pin"`
}

// AdminSession is the answer of POST /admin/session: send Token in the
// X-Atrium-Admin header. It is valid until Expires, which every use moves
// on by 10 minutes.
type AdminSession struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// PINChange is the body of PUT /admin/pin. Current is required from the
// kiosk; the unix socket may omit it.
type PINChange struct {
	Current string `json:"current,omitempty"`
	New     string `json:"new"`
}

// AdminProblem is a Problem with the admin routes' extension members.
type AdminProblem struct {
	Problem
	AttemptsLeft *int      `json:"attemptsLeft,omitempty"`
	LockedUntil  time.Time `json:"lockedUntil,omitzero"`
}

// Settings is the answer of GET /settings and the body and answer of PUT
// /settings: what an administrator may change on the spot. Secrets are
// write-only: GET shows only whether one is set (hasPassword, hasToken,
// hasCredential); a PUT without the secret keeps it, "" clears it.
type Settings struct {
	// Version counts changes; a PUT must send the version it read (409
	// otherwise).
	Version    int               `json:"version"`
	RoomName   string            `json:"roomName"`
	Calendar   CalendarSettings  `json:"calendar"`
	ICEServers []ICEServerConfig `json:"iceServers"`
	Devices    DeviceChoice      `json:"devices"`
	Display    DisplaySchedule   `json:"display"`
	// Managed lists the sections the fleet's profile sets ("roomName",
	// "calendar", "calendar.timezone", "iceServers", "devices",
	// "display"): read-only here, changed in the fleet console. Ignored
	// in a PUT.
	Managed []string `json:"managed,omitempty"`
}

// CalendarSettings is the room's calendar source: url (iCalendar or, with
// caldav, a CalDAV collection) or file, not both; neither means no
// calendar.
type CalendarSettings struct {
	URL         string  `json:"url"`
	CalDAV      bool    `json:"caldav"`
	Username    string  `json:"username"`
	Password    *string `json:"password,omitempty"`
	HasPassword bool    `json:"hasPassword"`
	Token       *string `json:"token,omitempty"`
	HasToken    bool    `json:"hasToken"`
	File        string  `json:"file"`
	// Refresh is a Go duration ("5m0s"), from 1s to 24h.
	Refresh string `json:"refresh"`
	// Timezone is the room's IANA time zone; empty is the system's.
	Timezone string `json:"timezone"`
	AutoJoin bool   `json:"autoJoin"`
}

// ICEServerConfig is one STUN or TURN server. A TURN server needs a
// username and a credential.
type ICEServerConfig struct {
	URLs          []string `json:"urls"`
	Username      string   `json:"username"`
	Credential    *string  `json:"credential,omitempty"`
	HasCredential bool     `json:"hasCredential"`
}

// DeviceChoice pins a meeting's devices by stable ID (as GET /devices
// lists them); empty chooses automatically.
type DeviceChoice struct {
	Camera     string `json:"camera"`
	Microphone string `json:"microphone"`
	Speaker    string `json:"speaker"`
}

// DisplaySchedule is when the display may sleep. With Sleep, it is awake on
// Days from AwakeFrom to AwakeUntil ("HH:MM", the room's time zone; an
// AwakeUntil earlier than AwakeFrom ends the next day) and asleep otherwise,
// unless a meeting is on or near or someone touched the screen.
type DisplaySchedule struct {
	Sleep      bool     `json:"sleep"`
	Days       []string `json:"days"` // "mon" … "sun"
	AwakeFrom  string   `json:"awakeFrom"`
	AwakeUntil string   `json:"awakeUntil"`
}

// SettingsChanged is the data of a settings.changed event; it carries no
// secret, so a client re-reads GET /settings.
type SettingsChanged struct {
	Version int `json:"version"`
}

// Display states and reasons.
const (
	DisplayAwake  = "awake"
	DisplayAsleep = "asleep"

	DisplayReasonSchedule = "schedule" // awake hours, or asleep outside them
	DisplayReasonMeeting  = "meeting"  // a meeting is in progress
	DisplayReasonUpcoming = "upcoming" // a meeting starts within 10 minutes
	DisplayReasonTouched  = "touched"  // woken by a touch, 10 minutes from the last
	DisplayReasonAlways   = "always"   // display sleep is off
)

// DisplayState is the answer of GET /display and POST /display/wake, and
// the data of a display.changed event.
type DisplayState struct {
	State  string `json:"state"`
	Reason string `json:"reason"`
	// NextChange is when the state changes next, if nothing else happens.
	NextChange time.Time `json:"nextChange,omitzero"`
}
