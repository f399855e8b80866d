package meeting

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// A service that runs its own closed protocol: a room cannot join it as a
// plain WebRTC guest, so a link to one gets an error that names it rather
// than a generic "no provider". The calendar (issue 5) classifies invites
// with the same table.
type service struct {
	name    string
	domains []string // the host or any subdomain of it
}

var closedServices = []service{
	{"Microsoft Teams", []string{"teams.microsoft.com", "teams.live.com", "teams.microsoft.us"}},
	{"Zoom", []string{"zoom.us", "zoomgov.com", "zoom.com"}},
	{"Webex", []string{"webex.com"}},
	{"Google Meet", []string{"meet.google.com"}},
	{"GoTo Meeting", []string{"gotomeeting.com", "gotomeet.me", "meet.goto.com"}},
	{"Amazon Chime", []string{"chime.aws"}},
	{"BlueJeans", []string{"bluejeans.com"}},
}

// ClosedService names the meeting service behind u when it is one that the
// room cannot join natively, such as Teams or Zoom.
func ClosedService(u *url.URL) (name string, ok bool) {
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	for _, s := range closedServices {
		for _, d := range s.domains {
			if host == d || strings.HasSuffix(host, "."+d) {
				return s.name, true
			}
		}
	}
	return "", false
}

// URLFormer is implemented by providers that can describe the meeting URLs
// they accept, for error messages and documentation.
type URLFormer interface {
	URLForms() []string
}

// secretParams are query parameters that carry a meeting's password or an
// access token in the links of common services and of our own providers.
var secretParams = map[string]bool{
	"pin": true, "pwd": true, "passcode": true, "password": true, "pass": true,
	"token": true, "access_token": true, "secret": true, "key": true, "auth": true,
}

// Redact returns u as text fit for status, events and logs: the user-info
// password, the values of secret query parameters and the fragment (where
// WHIP links carry their bearer token) are replaced by "xxxxx".
func Redact(u *url.URL) string {
	c := *u
	if c.RawQuery != "" {
		q := c.Query()
		changed := false
		for k := range q {
			if secretParams[strings.ToLower(k)] {
				q[k] = []string{"xxxxx"}
				changed = true
			}
		}
		if changed {
			c.RawQuery = q.Encode()
		}
	}
	if c.Fragment != "" || c.RawFragment != "" {
		c.Fragment, c.RawFragment = "xxxxx", ""
	}
	return c.Redacted()
}

// CheckPort rejects a URL whose port is empty ("host:") or outside
// 1–65535, which url.Parse lets through. Providers wrap the error with
// their own sentinel.
func CheckPort(u *url.URL) error {
	p := u.Port()
	if p == "" {
		if strings.HasSuffix(u.Host, ":") {
			return errors.New("empty port")
		}
		return nil
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not between 1 and 65535", p)
	}
	return nil
}
