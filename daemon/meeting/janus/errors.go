package janus

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNotJanus means the URL is not one this provider joins: another
	// scheme, or a web page on a host missing from Config.Domains.
	ErrNotJanus = errors.New("not a Janus meeting URL")

	// ErrBadURL means the URL is meant for Janus but cannot be joined as
	// written: no room, a bad port, credentials in the URL, oversized or
	// repeated parameters.
	ErrBadURL = errors.New("bad Janus meeting URL")

	// ErrNoSuchRoom means Janus has no room with the URL's id (VideoRoom
	// error 426).
	ErrNoSuchRoom = errors.New("no such room")

	// ErrUnauthorized means Janus refused to let the room in: a wrong or
	// missing PIN (VideoRoom 433, or 429 naming the pin), or a server that
	// wants an API secret or token (core 403, 405).
	ErrUnauthorized = errors.New("not allowed into the room")

	// ErrRoomFull means the room has as many publishers as it allows
	// (VideoRoom error 432).
	ErrRoomFull = errors.New("room is full")

	// ErrNoReply means Janus did not answer a request within the request
	// timeout.
	ErrNoReply = errors.New("no reply from Janus")

	// ErrMessageTooLarge means Janus sent a message over MaxMessageSize.
	ErrMessageTooLarge = errors.New("message from Janus too large")

	// ErrProtocol means Janus sent something that is not the JSON this
	// provider expects: not JSON at all, wrong types, or a reply missing
	// what it must carry (an id, an SDP).
	ErrProtocol = errors.New("malformed message from Janus")

	// ErrClosed means the connection to Janus ended: the server closed it,
	// the network failed, or the session was closed.
	ErrClosed = errors.New("connection to Janus closed")

	// ErrSessionTimeout means Janus timed the session out: keepalives did
	// not reach it in time.
	ErrSessionTimeout = errors.New("janus session timed out")

	// ErrRoomDestroyed means the room was destroyed while the session was
	// in it.
	ErrRoomDestroyed = errors.New("room destroyed")

	// ErrKicked means a moderator removed this room from the meeting.
	ErrKicked = errors.New("kicked from the room")

	// ErrHangup means Janus closed one of the session's media connections
	// (ICE or DTLS failed on its side, or it dropped the handle).
	ErrHangup = errors.New("janus hung up a media connection")

	// ErrMediaFailed means the media layer reported a peer connection
	// failed for good.
	ErrMediaFailed = errors.New("media connection failed")
)

// Error is an error reply from Janus: the core's {"code","reason"} or the
// VideoRoom's {"error_code","error"}. errors.Is matches it against
// ErrNoSuchRoom, ErrUnauthorized and ErrRoomFull by code.
type Error struct {
	// Request is what was asked: "create", "attach", "join", "publish"...
	Request string
	Code    int
	Reason  string
}

func (e *Error) Error() string {
	name := codeNames[e.Code]
	if name == "" {
		name = "unknown error"
	}
	return fmt.Sprintf("%s: janus error %d (%s): %s", e.Request, e.Code, name, e.Reason)
}

// Is maps Janus error codes to this package's sentinel errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNoSuchRoom:
		return e.Code == 426
	case ErrUnauthorized:
		// A room with a PIN answers a join without one with 429, "Missing
		// element (pin)": to a person that is the same as a wrong PIN.
		return e.Code == 433 || e.Code == 403 || e.Code == 405 ||
			(e.Code == 429 && strings.Contains(e.Reason, "pin"))
	case ErrRoomFull:
		return e.Code == 432
	}
	return false
}

// codeNames names the codes of janus/apierror.h and the VideoRoom plugin,
// so that an error reads well without the Janus source at hand.
var codeNames = map[int]string{
	// Core.
	403: "unauthorized request",
	405: "unauthorized plugin",
	454: "invalid JSON",
	455: "invalid JSON object",
	456: "missing request",
	457: "unknown request",
	458: "no such session",
	459: "no such handle",
	460: "no such plugin",
	461: "plugin attach failed",
	462: "plugin message failed",
	463: "plugin detach failed",
	464: "unknown JSEP type",
	465: "invalid SDP",
	466: "invalid trickle stream",
	467: "invalid element type",
	468: "session conflict",
	469: "unexpected answer",
	470: "token not found",
	471: "wrong WebRTC state",
	472: "not accepting new sessions",
	490: "transport error",
	// VideoRoom.
	421: "no message",
	422: "invalid JSON",
	423: "invalid request",
	424: "join first",
	425: "already joined",
	426: "no such room",
	427: "room exists",
	428: "no such feed",
	429: "missing element",
	430: "invalid element",
	431: "invalid SDP type",
	432: "publishers full",
	433: "unauthorized",
	434: "already published",
	435: "not published",
	436: "id exists",
	437: "invalid SDP",
	499: "unknown error",
}
