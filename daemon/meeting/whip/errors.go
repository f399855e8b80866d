package whip

import (
	"errors"
	"fmt"
	"net/http"
)

var (
	// ErrNotWHIP means the URL is not one this provider joins: its scheme
	// is neither whip+https, whip+http, whep+https nor whep+http.
	ErrNotWHIP = errors.New("not a WHIP or WHEP meeting URL")

	// ErrBadURL means the URL is meant for this provider but cannot be
	// joined as written: no host, credentials in the URL, a fragment other
	// than #token=, a whep parameter that is not an endpoint URL.
	ErrBadURL = errors.New("bad WHIP/WHEP meeting URL")

	// ErrInsecure means plain HTTP to a host that is not loopback, in the
	// meeting URL, a redirect or a resource Location: the bearer token and
	// the SDP would cross the network in clear text.
	ErrInsecure = errors.New("plain http is allowed only to loopback hosts")

	// ErrStatus means the server answered with a status the protocol does
	// not expect there; a *StatusError carries the details.
	ErrStatus = errors.New("unexpected HTTP status")

	// ErrUnauthorized means the server refused the bearer token (401 or
	// 403): a missing, wrong or expired token.
	ErrUnauthorized = errors.New("not authorized by the WHIP/WHEP server")

	// ErrRedirect means a redirect the client does not follow: not 307 or
	// 308 (which keep the method and body, RFC 9725, "Load Balancing and Redirections"), or too
	// many of them.
	ErrRedirect = errors.New("redirect not followed")

	// ErrNotSDP means the server answered an offer with something other
	// than application/sdp.
	ErrNotSDP = errors.New("answer is not application/sdp")

	// ErrBadAnswer means the answer is labelled SDP but is not a usable
	// session description (no "v=0" first, no media section).
	ErrBadAnswer = errors.New("answer is not a usable SDP")

	// ErrNoLocation means the server created a session but did not say
	// where it lives (no Location header), so it could never be ended.
	ErrNoLocation = errors.New("201 Created without a Location header")

	// ErrTooLarge means a response body exceeded MaxBodySize.
	ErrTooLarge = errors.New("response body too large")

	// ErrRestartFailed means an ICE restart through PATCH did not succeed:
	// the server refused it (412 Precondition Failed, 405, ...), answered
	// without ICE credentials, or the media layer could not restart.
	ErrRestartFailed = errors.New("ICE restart failed")

	// ErrMediaFailed means a peer connection failed for good: a second
	// failure after an ICE restart, or a failure the restart could not
	// mend.
	ErrMediaFailed = errors.New("media connection failed")

	// ErrNoCandidates means a trickling peer ended gathering before the
	// offer without a single candidate: there is nothing to connect to.
	ErrNoCandidates = errors.New("no ICE candidates")
)

// StatusError is a response with a status the protocol does not expect:
// what was asked, of which URL (never with the token), and what the server
// said. errors.Is matches it against ErrStatus, and 401 and 403 against
// ErrUnauthorized.
type StatusError struct {
	// Op is the request: "POST offer", "OPTIONS", "PATCH ICE restart",
	// "DELETE session".
	Op   string
	URL  string
	Code int
	// Text is the start of the response body, made printable.
	Text string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: server answered %d %s", e.Op, e.URL, e.Code, http.StatusText(e.Code))
	if e.Text != "" {
		msg += ": " + e.Text
	}
	return msg
}

// Is implements errors.Is.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrStatus:
		return true
	case ErrUnauthorized:
		return e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden
	}
	return false
}
