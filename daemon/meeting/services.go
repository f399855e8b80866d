package meeting

import (
	"net/url"
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
