package calendar

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testClassifier stands in for roomd's meeting engine: Janus and WHIP
// links join, the closed services are named, anything else is no meeting.
// meet.atrium.example is a configured Janus web domain.
var testClassifier = ClassifierFunc(func(raw string) (string, bool, string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", false, "not a URL"
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case strings.HasPrefix(scheme, "janus+"):
		return "janus", true, ""
	case strings.HasPrefix(scheme, "whip+"), strings.HasPrefix(scheme, "whep+"):
		return "whip", true, ""
	case scheme == "https" && u.Hostname() == "meet.atrium.example":
		return "janus", true, ""
	}
	host := strings.ToLower(u.Hostname())
	for _, s := range []struct{ name, domain string }{
		{"Microsoft Teams", "teams.microsoft.com"}, {"Zoom", "zoom.us"}, {"Webex", "webex.com"}, {"Google Meet", "meet.google.com"},
	} {
		if host == s.domain || strings.HasSuffix(host, "."+s.domain) {
			return s.name, false, s.name + " meetings cannot be joined natively yet"
		}
	}
	return "", false, "no meeting provider can join " + u.Host
})

func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("load Europe/Berlin (the tests need the zone database): %v", err)
	}
	return loc
}
