package whip

import (
	"errors"
	"fmt"
	"strings"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// MaxICEServers bounds how many ice-server links are used; a server that
// sends more is misconfigured, and every one costs the media layer a
// gathering round.
const MaxICEServers = 8

// link is one link-value of a Link header (RFC 8288 Section 3).
type link struct {
	target string
	// params holds the parameters by lower-case name; the first of a
	// repeated name wins, as RFC 8288 Section 3.3 asks for rel.
	params map[string]string
}

// parseLinks parses Link header field values. A malformed value ends the
// parse of that field value; the links before it are kept, and the error
// says what was wrong.
func parseLinks(values []string) ([]link, error) {
	var links []link
	var errs []error
	for _, v := range values {
		ls, err := parseLinkValue(v)
		links = append(links, ls...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return links, errors.Join(errs...)
}

func parseLinkValue(s string) ([]link, error) {
	var links []link
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return links, nil
		}
		if s[0] != '<' {
			return links, fmt.Errorf("link %q: want <URI>", truncate(s, 40))
		}
		end := strings.IndexByte(s, '>')
		if end < 0 {
			return links, fmt.Errorf("link %q: no closing >", truncate(s, 40))
		}
		l := link{target: strings.TrimSpace(s[1:end]), params: map[string]string{}}
		s = s[end+1:]
		for {
			s = strings.TrimLeft(s, " \t")
			if s == "" || s[0] == ',' {
				break
			}
			if s[0] != ';' {
				return links, fmt.Errorf("link <%s>: unexpected %q", truncate(l.target, 40), truncate(s, 20))
			}
			s = strings.TrimLeft(s[1:], " \t")
			n := strings.IndexAny(s, "=;, \t")
			if n < 0 {
				n = len(s)
			}
			name := strings.ToLower(s[:n])
			s = strings.TrimLeft(s[n:], " \t")
			value := ""
			if strings.HasPrefix(s, "=") {
				s = strings.TrimLeft(s[1:], " \t")
				var err error
				if value, s, err = paramValue(s); err != nil {
					return links, fmt.Errorf("link <%s>: parameter %s: %w", truncate(l.target, 40), name, err)
				}
			}
			if name == "" {
				continue
			}
			if _, seen := l.params[name]; !seen {
				l.params[name] = value
			}
		}
		links = append(links, l)
	}
}

// paramValue reads a token or a quoted-string (RFC 9110 Section 5.6.4)
// and returns it and the rest of s.
func paramValue(s string) (value, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		n := strings.IndexAny(s, ";, \t")
		if n < 0 {
			n = len(s)
		}
		return s[:n], s[n:], nil
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) {
				return "", "", errors.New("unterminated quoted string")
			}
			i++
			b.WriteByte(s[i])
		case '"':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated quoted string")
}

// iceServers picks the rel="ice-server" links (RFC 9725, "STUN/TURN Server Configuration") that
// the media layer can use. skipped says, for the log, which were left out
// and why.
func iceServers(links []link) (servers []meeting.ICEServer, skipped []string) {
	for _, l := range links {
		if !hasRel(l.params["rel"], "ice-server") {
			continue
		}
		scheme, _, _ := strings.Cut(strings.ToLower(l.target), ":")
		switch scheme {
		case "stun", "stuns", "turn", "turns":
		default:
			skipped = append(skipped, fmt.Sprintf("<%s>: not a stun: or turn: URI", truncate(l.target, 80)))
			continue
		}
		// Only long-term passwords exist in WebRTC now; the OAuth type of
		// early drafts is gone from browsers too.
		if ct, ok := l.params["credential-type"]; ok && !strings.EqualFold(ct, "password") {
			skipped = append(skipped, fmt.Sprintf("<%s>: credential-type %q is not supported", truncate(l.target, 80), ct))
			continue
		}
		if len(servers) == MaxICEServers {
			skipped = append(skipped, fmt.Sprintf("<%s>: more than %d ICE servers", truncate(l.target, 80), MaxICEServers))
			continue
		}
		servers = append(servers, meeting.ICEServer{
			URLs:       []string{l.target},
			Username:   l.params["username"],
			Credential: l.params["credential"],
		})
	}
	return servers, skipped
}

// hasRel reports whether a rel parameter, a space-separated list of
// relation types, holds want.
func hasRel(rel, want string) bool {
	for _, r := range strings.Fields(rel) {
		if strings.EqualFold(r, want) {
			return true
		}
	}
	return false
}

// serverURLs lists the servers' URLs for the log; never their credentials.
func serverURLs(servers []meeting.ICEServer) []string {
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.URLs...)
	}
	return urls
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
