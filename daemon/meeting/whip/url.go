package whip

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// maxTokenLen bounds a bearer token: real ones (JWTs included) are far
// shorter, and a pasted wall of text should not reach an HTTP header.
const maxTokenLen = 4096

// urlForms are the meeting URL forms, for meeting.URLFormer.
var urlForms = []string{
	"whip+https://HOST/PATH[#token=TOKEN] (publish over WHIP)",
	"whip+https://HOST/PATH?whep=<escaped https WHEP endpoint URL> (publish over WHIP, receive over WHEP)",
	"whep+https://HOST/PATH[#token=TOKEN] (receive only, over WHEP)",
	"whip+http:// and whep+http:// to loopback hosts only",
}

// Target is a meeting URL resolved to the endpoints Join talks to. Its
// String never shows the tokens.
type Target struct {
	// Publish is the WHIP endpoint, nil for a receive-only whep+ URL.
	Publish *url.URL
	// Subscribe is the WHEP endpoint, nil when the URL names none.
	Subscribe *url.URL

	publishToken   string
	subscribeToken string
}

// String describes the target without its tokens: endpoint URLs never
// carry the fragment.
func (t Target) String() string {
	var parts []string
	if t.Publish != nil {
		parts = append(parts, "WHIP "+t.Publish.Redacted())
	}
	if t.Subscribe != nil {
		parts = append(parts, "WHEP "+t.Subscribe.Redacted())
	}
	return strings.Join(parts, " + ")
}

// innerSchemes maps the meeting URL schemes to the direction and the
// endpoint's own scheme.
var innerSchemes = map[string]struct {
	publish bool
	scheme  string
}{
	"whip+https": {true, "https"},
	"whip+http":  {true, "http"},
	"whep+https": {false, "https"},
	"whep+http":  {false, "http"},
}

// match reports whether u is for this provider, without checking the rest
// of it: a malformed whip+ URL is still a WHIP URL, and Join then says what
// is wrong with it.
func match(u *url.URL) bool {
	_, ok := innerSchemes[strings.ToLower(u.Scheme)]
	return ok
}

// resolve turns a meeting URL into a Target. tokens maps hosts to bearer
// tokens (Config.Tokens, keys in lower case).
func resolve(u *url.URL, tokens map[string]string) (Target, error) {
	var t Target
	kind, ok := innerSchemes[strings.ToLower(u.Scheme)]
	if !ok {
		return t, fmt.Errorf("%w: %s", ErrNotWHIP, Redact(u))
	}
	endpoint, token, err := endpointURL(u, kind.scheme)
	if err != nil {
		return t, err
	}
	if token == "" {
		token = lookupToken(endpoint, tokens)
	}
	if !kind.publish {
		if _, ok := u.Query()["whep"]; ok {
			return t, fmt.Errorf("%w: %s: the whep parameter belongs on whip+ URLs; a whep+ URL is the WHEP endpoint itself", ErrBadURL, Redact(u))
		}
		t.Subscribe, t.subscribeToken = endpoint, token
		return t, nil
	}
	t.Publish, t.publishToken = endpoint, token

	// The WHEP endpoint travels in the query; the WHIP endpoint gets the
	// query without it, the rest being the endpoint's own business.
	var whep []string
	var rest []string
	for _, kv := range strings.Split(u.RawQuery, "&") {
		key, value, _ := strings.Cut(kv, "=")
		if k, err := url.QueryUnescape(key); err == nil && k == "whep" {
			v, err := url.QueryUnescape(value)
			if err != nil {
				return t, fmt.Errorf("%w: %s: whep parameter: %v", ErrBadURL, Redact(u), err)
			}
			whep = append(whep, v)
			continue
		}
		if kv != "" {
			rest = append(rest, kv)
		}
	}
	t.Publish.RawQuery = strings.Join(rest, "&")
	switch len(whep) {
	case 0:
		return t, nil
	case 1:
	default:
		return t, fmt.Errorf("%w: %s: whep is given %d times", ErrBadURL, Redact(u), len(whep))
	}
	w, err := url.Parse(whep[0])
	if err != nil {
		return t, fmt.Errorf("%w: whep parameter: %v", ErrBadURL, redactErr(err))
	}
	scheme := strings.ToLower(w.Scheme)
	if scheme != "https" && scheme != "http" {
		return t, fmt.Errorf("%w: whep parameter %s: want an https:// WHEP endpoint URL, escaped", ErrBadURL, Redact(w))
	}
	if w.Fragment != "" || w.RawFragment != "" {
		// A token in there would be a secret inside a query parameter,
		// which the engine's URL redaction does not know to hide.
		return t, fmt.Errorf("%w: whep parameter %s: no fragment or token there; the meeting URL's #token= serves a WHEP endpoint on the same host, and the Tokens setting any host", ErrBadURL, Redact(w))
	}
	sub, _, err := endpointURL(w, scheme)
	if err != nil {
		return t, fmt.Errorf("whep parameter: %w", err)
	}
	var subToken string
	if strings.EqualFold(sub.Host, t.Publish.Host) && token != "" {
		// The same server: the meeting URL's one token is for both.
		subToken = token
	} else {
		subToken = lookupToken(sub, tokens)
	}
	t.Subscribe, t.subscribeToken = sub, subToken
	return t, nil
}

// endpointURL checks u and returns the endpoint it names, with scheme, and
// the token of its fragment.
func endpointURL(u *url.URL, scheme string) (*url.URL, string, error) {
	switch {
	case u.Opaque != "":
		return nil, "", fmt.Errorf("%w: %s: want %s://HOST/PATH", ErrBadURL, Redact(u), u.Scheme)
	case u.User != nil:
		return nil, "", fmt.Errorf("%w: %s: user names or passwords in the URL are not supported; give a bearer token as #token=", ErrBadURL, Redact(u))
	case u.Hostname() == "":
		return nil, "", fmt.Errorf("%w: %s has no host", ErrBadURL, Redact(u))
	}
	if err := checkPort(u); err != nil {
		return nil, "", err
	}
	token, err := fragmentToken(u)
	if err != nil {
		return nil, "", err
	}
	e := &url.URL{
		Scheme:   scheme,
		Host:     strings.ToLower(u.Host),
		Path:     u.Path,
		RawPath:  u.RawPath,
		RawQuery: u.RawQuery,
	}
	if e.Path == "" {
		e.Path = "/"
	}
	if err := checkSecure(e); err != nil {
		return nil, "", err
	}
	return e, token, nil
}

// fragmentToken returns the bearer token of a "#token=..." fragment. The
// fragment is the one part of a URL a browser never sends to a server,
// which is why a token may ride there.
func fragmentToken(u *url.URL) (string, error) {
	frag := u.EscapedFragment()
	if frag == "" {
		return "", nil
	}
	q, err := url.ParseQuery(frag)
	if err != nil || len(q) != 1 || len(q["token"]) != 1 {
		return "", fmt.Errorf("%w: %s: the fragment must be #token=TOKEN and nothing else", ErrBadURL, Redact(u))
	}
	token := q.Get("token")
	switch {
	case token == "":
		return "", fmt.Errorf("%w: %s: #token= is empty", ErrBadURL, Redact(u))
	case len(token) > maxTokenLen:
		return "", fmt.Errorf("%w: %s: the token is %d bytes long, at most %d", ErrBadURL, Redact(u), len(token), maxTokenLen)
	case strings.IndexFunc(token, func(r rune) bool { return r > unicode.MaxASCII || unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0:
		// It goes into an Authorization header as is.
		return "", fmt.Errorf("%w: %s: the token has spaces, control or non-ASCII characters", ErrBadURL, Redact(u))
	}
	return token, nil
}

// lookupToken finds a configured token for u's host: by host and port,
// then by host name alone.
func lookupToken(u *url.URL, tokens map[string]string) string {
	if tok, ok := tokens[strings.ToLower(u.Host)]; ok {
		return tok
	}
	return tokens[strings.ToLower(u.Hostname())]
}

// checkSecure refuses plain http to hosts that are not loopback: the
// bearer token and the SDP (with its DTLS fingerprint) must not cross a
// network in clear text.
func checkSecure(u *url.URL) error {
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%w: %s (use https)", ErrInsecure, u.Redacted())
	}
	return fmt.Errorf("%w: %s: only https (or http to loopback) is followed", ErrInsecure, u.Redacted())
}

func isLoopback(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkPort(u *url.URL) error {
	if err := meeting.CheckPort(u); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadURL, Redact(u), err)
	}
	return nil
}

// Redact returns u for logs and messages: without its fragment (which may
// hold a token), without a password, and with any whep parameter's own
// fragment dropped too (Resolve refuses one, but a refusal is logged).
func Redact(u *url.URL) string {
	c := *u
	c.Fragment, c.RawFragment = "", ""
	if c.RawQuery != "" {
		parts := strings.Split(c.RawQuery, "&")
		for i, kv := range parts {
			key, value, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			if k, err := url.QueryUnescape(key); err != nil || k != "whep" {
				continue
			}
			v, err := url.QueryUnescape(value)
			if err != nil {
				parts[i] = key + "=REDACTED"
				continue
			}
			if before, _, found := strings.Cut(v, "#"); found {
				parts[i] = key + "=" + url.QueryEscape(before)
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	return c.Redacted()
}

// redactErr keeps a url.Parse error's message without the text it failed
// on, which may hold a token.
func redactErr(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
