package janus

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// Limits on URL parameters. Janus has none of its own worth relying on;
// these keep a pasted wall of text out of the signaling and the logs.
const (
	maxRoomLen    = 256
	maxPINLen     = 256
	maxDisplayLen = 128 // runes
)

// Target is a meeting URL resolved to what Join needs.
type Target struct {
	// API is the Janus API endpoint: ws:// or wss:// for the WebSocket
	// transport, http:// or https:// for HTTP long poll.
	API *url.URL
	// Room is the VideoRoom id.
	Room ID
	// PIN is the room's PIN, empty if none was given.
	PIN string
	// Display is the name asked for in the URL, empty for the default.
	Display string
}

// String describes the target without its PIN.
func (t Target) String() string {
	return fmt.Sprintf("room %s at %s", t.Room, t.API.Redacted())
}

// websocket reports whether the target uses the WebSocket transport.
func (t Target) websocket() bool { return t.API.Scheme == "ws" || t.API.Scheme == "wss" }

// insecure reports whether signaling (and with it the PIN) would cross a
// network unencrypted.
func (t Target) insecure() bool {
	if t.API.Scheme == "wss" || t.API.Scheme == "https" {
		return false
	}
	host := t.API.Hostname()
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// explicitSchemes maps the janus+ schemes to the API scheme they name.
var explicitSchemes = map[string]string{
	"janus+wss":   "wss",
	"janus+ws":    "ws",
	"janus+https": "https",
	"janus+http":  "http",
}

// match reports whether u is for this provider, without checking the rest
// of it: a janus+ URL with no room is still a Janus URL, and Join then says
// what is wrong with it.
func match(u *url.URL, domains map[string]DomainConfig) bool {
	if _, ok := explicitSchemes[strings.ToLower(u.Scheme)]; ok {
		return true
	}
	_, ok := lookupDomain(u, domains)
	return ok
}

// lookupDomain finds a web page URL's host in domains: by host and port,
// then by host name alone. Keys are lower case (New normalizes them).
func lookupDomain(u *url.URL, domains map[string]DomainConfig) (DomainConfig, bool) {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return DomainConfig{}, false
	}
	if d, ok := domains[strings.ToLower(u.Host)]; ok {
		return d, true
	}
	d, ok := domains[strings.ToLower(u.Hostname())]
	return d, ok
}

// resolve turns a meeting URL into a Target.
func resolve(u *url.URL, domains map[string]DomainConfig) (Target, error) {
	var t Target
	if u.User != nil {
		return t, fmt.Errorf("%w: %s: user names or passwords in the URL are not supported", ErrBadURL, redact(u))
	}
	if err := checkPort(u); err != nil {
		return t, err
	}
	if scheme, ok := explicitSchemes[strings.ToLower(u.Scheme)]; ok {
		if u.Hostname() == "" {
			return t, fmt.Errorf("%w: %s has no host", ErrBadURL, redact(u))
		}
		path := u.EscapedPath()
		if path == "" && (scheme == "http" || scheme == "https") {
			// Janus's HTTP transport's default base path; its WebSocket
			// transport ignores the path.
			path = "/janus"
		}
		api, err := url.Parse(scheme + "://" + u.Host + path)
		if err != nil {
			return t, fmt.Errorf("%w: %s: %v", ErrBadURL, redact(u), err)
		}
		t.API = api
	} else {
		d, ok := lookupDomain(u, domains)
		if !ok {
			return t, fmt.Errorf("%w: %s (add its host to the Janus domains in the configuration)", ErrNotJanus, redact(u))
		}
		api, err := parseAPI(d.API)
		if err != nil {
			return t, fmt.Errorf("%w: domain %s: %v", ErrBadURL, u.Hostname(), err)
		}
		t.API = api
	}

	q := u.Query()
	room, err := single(q, "room", maxRoomLen)
	if err != nil {
		return t, err
	}
	if room == "" {
		return t, fmt.Errorf("%w: %s has no room (add ?room=<id>)", ErrBadURL, redact(u))
	}
	if t.Room, err = parseRoom(room); err != nil {
		return t, err
	}
	if t.PIN, err = single(q, "pin", maxPINLen); err != nil {
		return t, err
	}
	if t.Display, err = single(q, "display", 4*maxDisplayLen); err != nil {
		return t, err
	}
	if n := utf8.RuneCountInString(t.Display); n > maxDisplayLen {
		return t, fmt.Errorf("%w: display name is %d characters long, at most %d", ErrBadURL, n, maxDisplayLen)
	}
	t.Display = strings.TrimSpace(t.Display)
	return t, nil
}

// parseAPI checks a configured Janus API endpoint.
func parseAPI(raw string) (*url.URL, error) {
	api, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("API endpoint: %w", err)
	}
	switch api.Scheme {
	case "ws", "wss", "http", "https":
	default:
		return nil, fmt.Errorf("API endpoint %q: scheme must be ws, wss, http or https", raw)
	}
	if api.Hostname() == "" {
		return nil, fmt.Errorf("API endpoint %q has no host", raw)
	}
	if api.User != nil || api.RawQuery != "" || api.Fragment != "" {
		return nil, fmt.Errorf("API endpoint %q: user info, query and fragment are not supported", raw)
	}
	if err := checkPort(api); err != nil {
		return nil, err
	}
	return api, nil
}

func checkPort(u *url.URL) error {
	if err := meeting.CheckPort(u); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadURL, redact(u), err)
	}
	return nil
}

// single returns the one value of a query parameter.
func single(q url.Values, name string, max int) (string, error) {
	vs := q[name]
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", fmt.Errorf("%w: %s is given %d times", ErrBadURL, name, len(vs))
	}
	v := vs[0]
	if len(v) > max {
		return "", fmt.Errorf("%w: %s is %d bytes long, at most %d", ErrBadURL, name, len(v), max)
	}
	if !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return "", fmt.Errorf("%w: %s has control characters or invalid UTF-8", ErrBadURL, name)
	}
	return v, nil
}

// parseRoom makes digits a numeric id and anything else a string id.
func parseRoom(s string) (ID, error) {
	if strings.TrimFunc(s, func(r rune) bool { return r >= '0' && r <= '9' }) != "" {
		if strings.TrimSpace(s) != s {
			return ID{}, fmt.Errorf("%w: room %q has leading or trailing spaces", ErrBadURL, s)
		}
		return StringID(s), nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return ID{}, fmt.Errorf("%w: room %q is not a number Janus accepts (1 to %d)", ErrBadURL, s, uint64(1<<63-1))
	}
	if n > 1<<63-1 {
		// Janus reads JSON integers as signed 64-bit.
		return ID{}, fmt.Errorf("%w: room %q is not a number Janus accepts (1 to %d)", ErrBadURL, s, uint64(1<<63-1))
	}
	return NumericID(n), nil
}

// redact drops the query (which may hold a PIN) from u for messages.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment = "", ""
	return c.Redacted()
}
