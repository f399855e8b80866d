package calendar

import (
	"encoding/base64"
	"net/url"
	"reflect"
	"testing"
)

func TestCleanLink(t *testing.T) {
	v3 := "https://urldefense.com/v3/__https://meet.example.com/r?a=1*b=2*c__;" + base64.RawURLEncoding.EncodeToString([]byte("&&")) + "!!XyZ$"
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "https://meet.example.com/room", "https://meet.example.com/room"},
		{"trailing period", "https://meet.example.com/room.", "https://meet.example.com/room"},
		{"sentence end", "https://meet.example.com/room?x=1);", "https://meet.example.com/room?x=1"},
		{"balanced parens kept", "https://en.example.org/wiki/A_(b)", "https://en.example.org/wiki/A_(b)"},
		{"angle bracket and html entity", "https://meet.example.com/r&gt;", "https://meet.example.com/r"},
		{"safe links", "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fzoom.us%2Fj%2F1%3Fpwd%3Dx&data=05%7C01&reserved=0", "https://zoom.us/j/1?pwd=x"},
		{"google redirect", "https://www.google.com/url?q=https://meet.example.com/r%3Froom%3D3&sa=D&ust=1", "https://meet.example.com/r?room=3"},
		{"proofpoint v2", "https://urldefense.proofpoint.com/v2/url?u=https-3A__meet.example.com_r-3Froom-3D3&d=DwM&c=x&e=", "https://meet.example.com/r?room=3"},
		{"proofpoint v3 with replaced characters", v3, "https://meet.example.com/r?a=1&b=2&c"},
		{"proofpoint v3 plain", "https://urldefense.com/v3/__https://zoom.us/j/9__;!!abc$", "https://zoom.us/j/9"},
		{"nested: safe links around google", "https://nam1.safelinks.protection.outlook.com/?url=https%3A%2F%2Fwww.google.com%2Furl%3Fq%3Djanus%252Bwss%253A%252F%252Fj.example%252F%253Froom%253D5%26sa%3DD&data=1", "janus+wss://j.example/?room=5"},
		{"barracuda", "https://linkprotect.cudasvc.com/url?a=https%3a%2f%2fmeet.example.com%2fr&c=E,1,abc&typo=1", "https://meet.example.com/r"},
		{"mailto dropped", "mailto://someone@example.com", ""},
		{"no host", "https:///path", ""},
		{"safe links without url stays", "https://eur01.safelinks.protection.outlook.com/?data=1", "https://eur01.safelinks.protection.outlook.com/?data=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cleanLink(tc.in); got != tc.want {
				t.Errorf("cleanLink(%q)\n got  %q\n want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestExtractLinksOrderAndDedupe(t *testing.T) {
	props := map[string][]string{
		"DESCRIPTION":                      {"Join: https://TEAMS.microsoft.com/l/meetup-join/x (Teams) or janus+wss://j.example/?room=1."},
		"LOCATION":                         {"Room 4; https://zoom.us/j/2"},
		"X-ALT-DESC":                       {`<p>Join <a href="https://teams.microsoft.com/l/meetup-join/x">here</a>, or <a href='https://www.google.com/url?q=https%3A%2F%2Fwebex.com%2Fm&amp;sa=D'>Webex</a></p><p>https://extra.example/page</p>`},
		"X-MICROSOFT-SKYPETEAMSMEETINGURL": {"https://teams.microsoft.com/l/meetup-join/x"},
		"URL":                              {"https://intranet.example/event/7"},
	}
	got := ExtractLinks(props)
	want := []Link{
		{"https://teams.microsoft.com/l/meetup-join/x", "X-MICROSOFT-SKYPETEAMSMEETINGURL"},
		{"https://intranet.example/event/7", "URL"},
		{"https://zoom.us/j/2", "LOCATION"},
		{"janus+wss://j.example/?room=1", "DESCRIPTION"},
		{"https://webex.com/m", "X-ALT-DESC"},
		{"https://extra.example/page", "X-ALT-DESC"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

// TestPickPrefersJoinable: a joinable link wins over an earlier one of a
// closed service; a known service wins over an unrelated page.
func TestPickPrefersJoinable(t *testing.T) {
	c := &Calendar{classifier: testClassifier}
	u, p, ok, _ := c.pick([]Link{{URL: "https://zoom.us/j/1"}, {URL: "https://docs.example/x"}, {URL: "whip+https://w.example/ep"}}, map[string][4]string{})
	if u != "whip+https://w.example/ep" || p != "whip" || !ok {
		t.Errorf("pick = %q %q %v, want the WHIP link", u, p, ok)
	}
	u, p, ok, why := c.pick([]Link{{URL: "https://docs.example/x"}, {URL: "https://zoom.us/j/1"}}, map[string][4]string{})
	if u != "https://zoom.us/j/1" || p != "Zoom" || ok || why != "Zoom meetings cannot be joined natively yet" {
		t.Errorf("pick = %q %q %v %q, want Zoom, not joinable, named", u, p, ok, why)
	}
}

func checkLinks(t *testing.T, links []Link) {
	seen := map[string]bool{}
	for _, l := range links {
		u, err := url.Parse(l.URL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			t.Fatalf("link %q is not an absolute URL (%v)", l.URL, err)
		}
		if c := l.URL[len(l.URL)-1]; c == '.' || c == ',' || c == ';' || c == '>' || c == '"' {
			t.Fatalf("link %q ends in punctuation", l.URL)
		}
		if seen[dedupeKey(l.URL)] {
			t.Fatalf("link %q listed twice", l.URL)
		}
		seen[dedupeKey(l.URL)] = true
	}
	if len(links) > maxLinks {
		t.Fatalf("%d links, at most %d", len(links), maxLinks)
	}
}
