package calendar

import (
	"encoding/base64"
	"html"
	"net/url"
	"regexp"
	"strings"
)

// Classifier judges a meeting link. roomd passes its meeting engine.
//
// For a link a provider here can join, provider is its name ("janus",
// "whip") and joinable is true. For a known service that the room cannot
// join natively, provider names the service ("Zoom") and reason says so
// ("Zoom meetings cannot be joined natively yet"). For any other link,
// provider is empty: it is not taken for a meeting link.
type Classifier interface {
	Classify(rawURL string) (provider string, joinable bool, reason string)
}

// ClassifierFunc adapts a function to Classifier.
type ClassifierFunc func(rawURL string) (provider string, joinable bool, reason string)

// Classify calls f.
func (f ClassifierFunc) Classify(rawURL string) (string, bool, string) { return f(rawURL) }

// Link is one candidate meeting link of an event, after unwrapping.
type Link struct {
	URL    string `json:"url"`
	Source string `json:"source"` // the property it came from, e.g. "X-GOOGLE-CONFERENCE"
}

// conferenceProps hold nothing but a meeting link; they are looked at
// first, in this order, then URL, LOCATION, DESCRIPTION and X-ALT-DESC.
var conferenceProps = []string{
	"CONFERENCE",
	"X-GOOGLE-CONFERENCE",
	"X-MICROSOFT-SKYPETEAMSMEETINGURL",
	"X-MICROSOFT-ONLINEMEETINGCONFLINK",
	"X-MICROSOFT-ONLINEMEETINGEXTERNALLINK",
	"X-ZOOM-JOIN-URL",
	"X-WEBEX-JOIN-URL",
	"X-ATRIUM-MEETING-URL",
}

// textProps may hold links among other text.
var textProps = []string{"URL", "LOCATION", "DESCRIPTION", "X-ALT-DESC"}

// maxLinks bounds the links taken from one event.
const maxLinks = 32

// urlRE finds absolute URLs in text: a scheme (which may carry a "+", as
// in janus+wss and whip+https), "://", and everything up to a space,
// a quote or an angle bracket.
var urlRE = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.\-]{1,20}://[^\s<>"'` + "`" + `\x00-\x1f]+`)

// hrefRE finds href attributes in HTML.
var hrefRE = regexp.MustCompile(`(?i)\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)

var tagRE = regexp.MustCompile(`<[^>]*>`)

// ExtractLinks returns the distinct links of an event's properties in the
// order they should be preferred when nothing else decides: conference
// properties, then URL, LOCATION, DESCRIPTION, X-ALT-DESC. Rewriting
// wrappers (Safe Links, Google redirects, Proofpoint…) are unwrapped and
// trailing punctuation is dropped. props maps property names to their
// values (TEXT escapes already undone); an HTML X-ALT-DESC gives its hrefs
// and the URLs in its text.
func ExtractLinks(props map[string][]string) []Link {
	var out []Link
	seen := map[string]bool{}
	add := func(raw, source string) {
		if len(out) >= maxLinks {
			return
		}
		u := cleanLink(raw)
		if u == "" {
			return
		}
		key := dedupeKey(u)
		if seen[key] {
			return
		}
		seen[key] = true
		out = append(out, Link{URL: u, Source: source})
	}
	for _, name := range conferenceProps {
		for _, v := range props[name] {
			for _, m := range urlRE.FindAllString(v, maxLinks) {
				add(m, name)
			}
		}
	}
	for _, name := range textProps {
		for _, v := range props[name] {
			if name == "X-ALT-DESC" || strings.Contains(v, "</") {
				for _, m := range hrefRE.FindAllStringSubmatch(v, maxLinks) {
					add(html.UnescapeString(m[1]+m[2]+m[3]), name)
				}
				v = html.UnescapeString(tagRE.ReplaceAllString(v, " "))
			}
			for _, m := range urlRE.FindAllString(v, maxLinks) {
				add(m, name)
			}
		}
	}
	return out
}

// dedupeKey compares links with the scheme and host in lower case.
func dedupeKey(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	return u.String()
}

// cleanLink unwraps and trims one link; "" when it is not an absolute URL.
func cleanLink(raw string) string {
	s := trimLink(raw)
	for range 5 { // wrappers can be nested: Safe Links around Proofpoint
		inner, ok := unwrap(s)
		if !ok {
			break
		}
		s = trimLink(inner)
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" || len(s) > 4096 {
		return ""
	}
	switch strings.ToLower(u.Scheme) {
	case "mailto", "tel", "sip", "file", "javascript", "data":
		return ""
	}
	return s
}

// trimLink strips what text around a link leaves on it: trailing
// punctuation, and a closing bracket that opened before the link.
func trimLink(s string) string {
	s = strings.TrimSpace(s)
	for s != "" {
		last := s[len(s)-1]
		switch {
		case strings.IndexByte(".,;:!?'\"*>", last) >= 0:
			s = s[:len(s)-1]
		case last == ')' && strings.Count(s, "(") < strings.Count(s, ")"),
			last == ']' && strings.Count(s, "[") < strings.Count(s, "]"),
			last == '}' && strings.Count(s, "{") < strings.Count(s, "}"):
			s = s[:len(s)-1]
		case strings.HasSuffix(s, "&gt"), strings.HasSuffix(s, "&quot"):
			s = s[:strings.LastIndexByte(s, '&')]
		default:
			return s
		}
	}
	return s
}

// wrapper is a link-rewriting service: a host (or any subdomain of it),
// a path prefix, and the query parameter that holds the original URL.
type wrapper struct {
	host, path, param string
}

var wrappers = []wrapper{
	{"safelinks.protection.outlook.com", "/", "url"}, // Microsoft Defender Safe Links
	{"safelinks.protection.office365.us", "/", "url"},
	{"google.com", "/url", "q"}, // Google redirect links (Gmail, Calendar)
	{"google.com", "/url", "url"},
	{"urldefense.proofpoint.com", "/v1/url", "u"},
	{"linkprotect.cudasvc.com", "/url", "a"}, // Barracuda
	{"clicktime.symantec.com", "/", "u"},
	{"trendmicro.com", "/wis/clicktime/v1/query", "url"},
	{"l.facebook.com", "/l.php", "u"},
}

// unwrap returns the URL that a rewriting wrapper s points to.
func unwrap(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	isHost := func(h string) bool { return host == h || strings.HasSuffix(host, "."+h) }
	// Proofpoint URL Defense v2: u= holds the URL with "-" for "%" and
	// "_" for "/".
	if isHost("urldefense.proofpoint.com") && strings.HasPrefix(u.Path, "/v2/url") {
		v := u.Query().Get("u")
		if v == "" {
			return "", false
		}
		v = strings.NewReplacer("-", "%", "_", "/").Replace(v)
		dec, err := url.PathUnescape(v)
		return dec, err == nil
	}
	// Proofpoint URL Defense v3: /v3/__URL__;BASE64!!… where each "*" in
	// URL stands for the next character of the decoded BASE64 ("**" and a
	// length letter for a run of them).
	if (isHost("urldefense.com") || isHost("urldefense.proofpoint.com")) && strings.HasPrefix(u.Path, "/v3/__") {
		return proofpointV3(s)
	}
	for _, w := range wrappers {
		if isHost(w.host) && strings.HasPrefix(u.Path, w.path) {
			if v := u.Query().Get(w.param); v != "" {
				return v, true
			}
		}
	}
	return "", false
}

// proofpointV3 decodes a URL Defense v3 link.
func proofpointV3(s string) (string, bool) {
	i := strings.Index(s, "/v3/__")
	rest := s[i+len("/v3/__"):]
	end := strings.Index(rest, "__;")
	if end < 0 {
		// No replaced characters: the link ends at "__".
		if j := strings.LastIndex(rest, "__"); j > 0 {
			return rest[:j], true
		}
		return "", false
	}
	enc, tail := rest[:end], rest[end+3:]
	if j := strings.Index(tail, "!"); j >= 0 {
		tail = tail[:j]
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(tail, "="))
	if err != nil {
		return "", false
	}
	repl := []rune(string(raw))
	const runLetters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var b strings.Builder
	for k := 0; k < len(enc); k++ {
		if enc[k] != '*' {
			b.WriteByte(enc[k])
			continue
		}
		n := 1
		if k+2 < len(enc) && enc[k+1] == '*' {
			if l := strings.IndexByte(runLetters, enc[k+2]); l >= 0 {
				n = l + 2
				k += 2
			}
		}
		if n > len(repl) {
			return "", false
		}
		b.WriteString(string(repl[:n]))
		repl = repl[n:]
	}
	return b.String(), true
}
