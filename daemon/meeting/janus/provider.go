package janus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// Defaults for Config's zero values.
const (
	// DefaultRequestTimeout bounds one request: Janus answers in
	// milliseconds, or after it has gathered its own ICE candidates for an
	// SDP answer, which on a sane server is well under a second.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultKeepAlive is under half of Janus's default 60 s session
	// timeout, so that one lost keepalive does not end the session.
	DefaultKeepAlive = 25 * time.Second
	// DefaultDisplayName is used when neither Config nor the URL name the
	// room.
	DefaultDisplayName = "Atrium room"
)

// videoRoom is the plugin this provider talks to.
const videoRoom = "janus.plugin.videoroom"

// Config configures the provider.
type Config struct {
	// DisplayName is the name other participants see, usually the room's
	// name; a URL's display parameter overrides it.
	DisplayName string
	// Domains maps the host of a web meeting link (as a person would open
	// it in a browser, "meet.example.com", optionally with ":port") to the
	// Janus API behind that site. Only these hosts match https:// URLs.
	Domains map[string]DomainConfig
	// RequestTimeout bounds each Janus request; 0 means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// KeepAlive is the interval of session keepalives; 0 means
	// DefaultKeepAlive.
	KeepAlive time.Duration
	// HTTPClient carries the WebSocket handshake and the HTTP long poll
	// (e.g. with a private CA); nil means a client without a timeout, since
	// a long poll lasts up to 30 s by design.
	HTTPClient *http.Client
}

// DomainConfig says where a meeting site's Janus is.
type DomainConfig struct {
	// API is the Janus API endpoint: wss://host/path or ws:// for the
	// WebSocket transport, https://host/janus or http:// for long poll.
	API string
}

// PeersFunc returns the media layer for one meeting. The daemon creates a
// factory per session, so that devices and statistics are scoped to it.
type PeersFunc func(ctx context.Context) (meeting.PeerFactory, error)

// Provider joins Janus VideoRoom meetings. It implements meeting.Provider.
type Provider struct {
	cfg    Config
	peers  PeersFunc
	logger *slog.Logger
}

var (
	_ meeting.Provider  = (*Provider)(nil)
	_ meeting.URLFormer = (*Provider)(nil)
)

// URLForms implements meeting.URLFormer: the forms docs/MEETING-URLS.md documents, with
// the configured web domains spelled out.
func (p *Provider) URLForms() []string {
	forms := []string{
		"janus+wss://HOST/PATH?room=ROOM[&pin=PIN] (Janus VideoRoom over WebSocket)",
		"janus+https://HOST/janus?room=ROOM[&pin=PIN] (Janus VideoRoom over HTTP)",
	}
	hosts := make([]string, 0, len(p.cfg.Domains))
	for h := range p.cfg.Domains {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	for _, h := range hosts {
		forms = append(forms, "https://"+h+"/ANY/PAGE?room=ROOM (Janus web link)")
	}
	return forms
}

// New returns a provider. It checks every configured domain's API endpoint.
func New(cfg Config, peers PeersFunc, logger *slog.Logger) (*Provider, error) {
	if peers == nil {
		return nil, errors.New("janus provider: no peer factory")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if strings.TrimSpace(cfg.DisplayName) == "" {
		cfg.DisplayName = DefaultDisplayName
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	domains := make(map[string]DomainConfig, len(cfg.Domains))
	for host, d := range cfg.Domains {
		host = strings.ToLower(strings.TrimSpace(host))
		if host == "" || strings.ContainsAny(host, "/?#@ ") {
			return nil, fmt.Errorf("janus provider: domain %q: want a host name such as meet.example.com", host)
		}
		if _, err := parseAPI(d.API); err != nil {
			return nil, fmt.Errorf("janus provider: domain %s: %w", host, err)
		}
		domains[host] = d
	}
	cfg.Domains = domains
	return &Provider{cfg: cfg, peers: peers, logger: logger.With("provider", "janus")}, nil
}

// Name implements meeting.Provider.
func (p *Provider) Name() string { return "janus" }

// Match implements meeting.Provider: janus+ URLs, and web links on the
// configured domains.
func (p *Provider) Match(u *url.URL) bool { return match(u, p.cfg.Domains) }

// Resolve checks u and says what Join would connect to.
func (p *Provider) Resolve(u *url.URL) (Target, error) { return resolve(u, p.cfg.Domains) }

// Join implements meeting.Provider. It returns once the room has joined
// and its publisher is negotiated; subscriptions to the other participants
// follow in the background.
func (p *Provider) Join(ctx context.Context, u *url.URL) (meeting.Session, error) {
	s, err := p.JoinSession(ctx, u)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// JoinSession is Join returning the concrete session.
func (p *Provider) JoinSession(ctx context.Context, u *url.URL) (*Session, error) {
	t, err := p.Resolve(u)
	if err != nil {
		return nil, err
	}
	if t.Display == "" {
		t.Display = p.cfg.DisplayName
	}
	logger := p.logger.With("room", t.Room.String(), "api", t.API.Redacted())
	if t.insecure() {
		logger.Warn("janus signaling is not encrypted: the PIN and SDP cross the network in clear text; use wss:// or https://")
	}

	var tr transport
	if t.websocket() {
		// A black-holed host would otherwise hold the join as long as the
		// caller's context allows.
		dctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		ws, err := dialWS(dctx, t.API, p.cfg.HTTPClient)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("join %s: %w", t, err)
		}
		tr = ws
	} else {
		tr = newHTTPTransport(t.API, p.cfg.HTTPClient)
	}
	c := newConn(tr, logger, p.cfg.RequestTimeout)

	s, err := join(ctx, c, t, p.cfg, p.peers, logger)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", t, err)
	}
	return s, nil
}
