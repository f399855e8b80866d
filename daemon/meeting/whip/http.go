package whip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// Limits on what the servers send.
const (
	// MaxBodySize bounds every response body read: an SDP answer is a few
	// KiB, an error text less; anything larger is refused rather than
	// buffered.
	MaxBodySize = 64 << 10
	// MaxRedirects bounds 307/308 redirects of one request.
	MaxRedirects = 5
	// maxErrorText bounds the server's text quoted in an error.
	maxErrorText = 512
)

// Media types of RFC 9725.
const (
	typeSDP     = "application/sdp"
	typeSDPFrag = "application/trickle-ice-sdpfrag"
)

// client speaks HTTP to one session's endpoints. Every request carries the
// leg's bearer token and is bounded by timeout.
type client struct {
	http    *http.Client
	timeout time.Duration
	logger  *slog.Logger
}

// newHTTPClient returns a copy of base that follows only the redirects
// this protocol allows.
func newHTTPClient(base *http.Client) *http.Client {
	c := *base
	c.CheckRedirect = checkRedirect
	return &c
}

// checkRedirect follows 307 and 308, which keep method and body (RFC 9725,
// "Load Balancing and Redirections"), and only to https or loopback http. 301, 302 and 303 would
// turn the offer's POST into a GET and lose it. net/http itself drops the
// Authorization header on a redirect to another host.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrRedirect, MaxRedirects)
	}
	if resp := req.Response; resp != nil && resp.StatusCode != http.StatusTemporaryRedirect && resp.StatusCode != http.StatusPermanentRedirect {
		return fmt.Errorf("%w: %d %s to %s: only 307 and 308 keep the request", ErrRedirect, resp.StatusCode, http.StatusText(resp.StatusCode), req.URL.Redacted())
	}
	return checkSecure(req.URL)
}

// response is a finished exchange: the body is read (up to MaxBodySize)
// and closed.
type response struct {
	code   int
	header http.Header
	body   []byte
	// tooLarge is set when the body was longer than MaxBodySize; body then
	// holds its start.
	tooLarge bool
	// url is the URL that answered, after redirects: relative Locations
	// resolve against it.
	url *url.URL
}

// do sends one request and reads the response.
func (c *client) do(ctx context.Context, l *leg, method string, target *url.URL, contentType, body string, header http.Header) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, target.Redacted(), err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if l.token != "" {
		req.Header.Set("Authorization", "Bearer "+l.token)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, l.scrub(fmt.Errorf("%s %s: %w", method, target.Redacted(), unwrapURLError(err)))
	}
	defer resp.Body.Close()
	r := &response{code: resp.StatusCode, header: resp.Header, url: resp.Request.URL}
	if resp.ContentLength > MaxBodySize {
		r.tooLarge = true
	}
	r.body, err = io.ReadAll(io.LimitReader(resp.Body, MaxBodySize+1))
	if len(r.body) > MaxBodySize {
		r.body, r.tooLarge = r.body[:MaxBodySize], true
	}
	if err != nil && !r.tooLarge {
		return nil, l.scrub(fmt.Errorf("%s %s: read the response: %w", method, target.Redacted(), err))
	}
	c.logger.Debug("http", "leg", l.name, "method", method, "url", target.Redacted(), "status", resp.StatusCode,
		"bytes", len(r.body), "took", time.Since(start).Round(time.Millisecond))
	return r, nil
}

// unwrapURLError drops net/http's *url.Error wrapper, whose message
// repeats the method and URL that the caller's message already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// statusError describes an unexpected response.
func (l *leg) statusError(op string, target *url.URL, r *response) error {
	return &StatusError{Op: op, URL: target.Redacted(), Code: r.code, Text: l.printable(r.body, r.tooLarge)}
}

// options sends the pre-flight OPTIONS (RFC 9725, "STUN/TURN Server Configuration") and returns
// the ICE servers of its Link headers. ICE servers must be known before the
// media layer creates its offer, and OPTIONS is the one request that comes
// before the offer. Servers without it (404, 405, 501, or any refusal) are
// fine: the offer's POST says what is really wrong, if anything.
func (c *client) options(ctx context.Context, l *leg) ([]meeting.ICEServer, error) {
	r, err := c.do(ctx, l, http.MethodOptions, l.endpoint, "", "", nil)
	if errors.Is(err, ErrRedirect) {
		c.logger.Warn("OPTIONS pre-flight redirected; going on without ICE servers from the server", "leg", l.name, "err", err)
		return nil, nil
	}
	if err != nil {
		// Nothing answers there: the POST would fail the same way.
		return nil, err
	}
	switch {
	case r.code >= 200 && r.code < 300:
	case r.code == http.StatusNotFound || r.code == http.StatusMethodNotAllowed || r.code == http.StatusNotImplemented:
		c.logger.Debug("no OPTIONS pre-flight; no ICE servers from the server", "leg", l.name, "status", r.code)
		return nil, nil
	default:
		c.logger.Warn("OPTIONS pre-flight refused; going on without ICE servers from the server", "leg", l.name, "err", l.statusError("OPTIONS", l.endpoint, r))
		return nil, nil
	}
	return c.linkedICEServers(l, r.header, "OPTIONS"), nil
}

func (c *client) linkedICEServers(l *leg, h http.Header, op string) []meeting.ICEServer {
	links, err := parseLinks(h.Values("Link"))
	if err != nil {
		c.logger.Warn("malformed Link header", "leg", l.name, "request", op, "err", l.scrub(err))
	}
	servers, skipped := iceServers(links)
	for _, s := range skipped {
		c.logger.Warn("ICE server link not used", "leg", l.name, "request", op, "link", l.scrubText(s))
	}
	return servers
}

// offer POSTs the offer to the endpoint (RFC 9725, "Ingest Session Setup") and records
// the session's resource, ETag and answer on l.
func (c *client) offer(ctx context.Context, l *leg, sdp string) (answer string, err error) {
	r, err := c.do(ctx, l, http.MethodPost, l.endpoint, typeSDP, sdp, http.Header{"Accept": {typeSDP}})
	if err != nil {
		return "", err
	}
	if r.code != http.StatusCreated {
		if r.code >= 300 && r.code < 400 {
			// checkRedirect stopped here.
			return "", fmt.Errorf("POST offer %s: %w: %d %s", l.endpoint.Redacted(), ErrRedirect, r.code, http.StatusText(r.code))
		}
		return "", l.statusError("POST offer", l.endpoint, r)
	}
	// The session exists on the server from here on: record where, so
	// that even a failure below can DELETE it.
	if loc := r.header.Get("Location"); loc != "" {
		ref, err := url.Parse(loc)
		if err != nil {
			return "", fmt.Errorf("POST offer %s: Location %q: %w", l.endpoint.Redacted(), truncate(loc, 80), redactErr(err))
		}
		res := r.url.ResolveReference(ref)
		res.Fragment, res.RawFragment = "", ""
		if err := checkSecure(res); err != nil {
			return "", fmt.Errorf("POST offer %s: Location: %w", l.endpoint.Redacted(), err)
		}
		l.resource = res
	}
	l.etag = r.header.Get("ETag")
	if l.resource == nil {
		return "", fmt.Errorf("POST offer %s: %w", l.endpoint.Redacted(), ErrNoLocation)
	}
	if r.tooLarge {
		return "", fmt.Errorf("POST offer %s: %w: answer over %d bytes", l.endpoint.Redacted(), ErrTooLarge, MaxBodySize)
	}
	if err := checkType(r.header, typeSDP); err != nil {
		return "", fmt.Errorf("POST offer %s: %w", l.endpoint.Redacted(), err)
	}
	answer = string(r.body)
	if err := validateSDP(answer); err != nil {
		return "", fmt.Errorf("POST offer %s: %w", l.endpoint.Redacted(), err)
	}
	// The offer is made by now, so these can no longer reach the media
	// layer; OPTIONS is where they count. Logged, so that a server that
	// sends them only here can be recognized.
	if servers := c.linkedICEServers(l, r.header, "POST"); len(servers) > 0 {
		c.logger.Debug("ICE servers in the POST response are not used; only those of OPTIONS reach the media layer", "leg", l.name, "servers", serverURLs(servers))
	}
	return answer, nil
}

// restartIfMatch is the If-Match of an ICE restart: a restart matches any
// entity rather than the ETag, which it replaces. RFC 9725 asks for the
// field value "*", and servers read that differently: RFC 9110's wildcard
// is a bare *, while simple-whip-server (Meetecho's, with strict ETags)
// accepts only the quoted form, which is what this sends.
const restartIfMatch = `"*"`

// restart PATCHes an ICE restart fragment to the session (RFC 9725, "ICE
// Restarts") and returns the server's fragment.
func (c *client) restart(ctx context.Context, l *leg, frag string) (string, error) {
	r, err := c.do(ctx, l, http.MethodPatch, l.resource, typeSDPFrag, frag, http.Header{"If-Match": {restartIfMatch}})
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrRestartFailed, err)
	}
	if r.code != http.StatusOK {
		return "", fmt.Errorf("%w: %w", ErrRestartFailed, l.statusError("PATCH ICE restart", l.resource, r))
	}
	if r.tooLarge {
		return "", fmt.Errorf("%w: PATCH %s: %w", ErrRestartFailed, l.resource.Redacted(), ErrTooLarge)
	}
	if err := checkType(r.header, typeSDPFrag); err != nil {
		return "", fmt.Errorf("%w: PATCH %s: %w", ErrRestartFailed, l.resource.Redacted(), err)
	}
	if etag := r.header.Get("ETag"); etag != "" {
		l.etag = etag
	}
	return string(r.body), nil
}

// end DELETEs the session (RFC 9725, "Ingest Session Setup"). A session the server has
// already forgotten (404) is ended all the same.
func (c *client) end(ctx context.Context, l *leg) error {
	r, err := c.do(ctx, l, http.MethodDelete, l.resource, "", "", nil)
	if err != nil {
		return err
	}
	if r.code/100 != 2 && r.code != http.StatusNotFound {
		return l.statusError("DELETE session", l.resource, r)
	}
	return nil
}

// checkType checks a response's media type.
func checkType(h http.Header, want string) error {
	ct := h.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.EqualFold(mt, want) {
		if ct == "" {
			ct = "no Content-Type"
		}
		if want == typeSDP {
			return fmt.Errorf("%w: got %q", ErrNotSDP, truncate(ct, 80))
		}
		return fmt.Errorf("want %s, got %q", want, truncate(ct, 80))
	}
	return nil
}

// printable turns a server's text into one line fit for an error message:
// valid UTF-8, no control characters, bounded, and without the token
// should the server echo it.
func (l *leg) printable(body []byte, more bool) string {
	s := strings.ToValidUTF8(string(body), "?")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	s = l.scrubText(s)
	if len(s) > maxErrorText {
		more = true
		n := maxErrorText
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	if more && s != "" {
		s += " …"
	}
	return s
}

// scrubText removes the bearer token from text that could hold it.
func (l *leg) scrubText(s string) string {
	if l.token == "" {
		return s
	}
	return strings.ReplaceAll(s, l.token, "REDACTED")
}

// scrub keeps an error's chain for errors.Is but removes the token from
// its message, should any layer have quoted it.
func (l *leg) scrub(err error) error {
	if err == nil || l.token == "" || !strings.Contains(err.Error(), l.token) {
		return err
	}
	return &scrubbed{err: err, msg: l.scrubText(err.Error())}
}

type scrubbed struct {
	err error
	msg string
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }
