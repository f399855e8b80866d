package whip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// Defaults for Config's zero values.
const (
	// DefaultRequestTimeout bounds one HTTP request: a WHIP server answers
	// an offer once it has its own candidates, well under a second on a
	// sane server, even behind an SFU such as Janus.
	DefaultRequestTimeout = 10 * time.Second
	// RestartTimeout bounds an ICE restart: the media layer's new offer
	// (with candidate gathering), the PATCH and applying the answer.
	RestartTimeout = 30 * time.Second
)

// Config configures the provider.
type Config struct {
	// Tokens maps an endpoint's host ("whip.example.com", or with ":port"
	// to tell servers on one host apart) to the bearer token for it. A
	// meeting URL's #token= takes precedence.
	Tokens map[string]string
	// RequestTimeout bounds each HTTP request; 0 means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// HTTPClient carries the requests (e.g. with a private CA); nil means
	// a plain client. Its redirect policy is replaced: only 307 and 308
	// are followed.
	HTTPClient *http.Client
}

// PeersFunc returns the media layer for one meeting. The daemon creates a
// factory per session, so that devices and statistics are scoped to it; it
// is the same dependency the Janus provider takes.
type PeersFunc func(ctx context.Context) (meeting.PeerFactory, error)

// Provider joins WHIP/WHEP meetings. It implements meeting.Provider and
// meeting.URLFormer.
type Provider struct {
	cfg    Config
	peers  PeersFunc
	http   *http.Client
	logger *slog.Logger
}

var (
	_ meeting.Provider  = (*Provider)(nil)
	_ meeting.URLFormer = (*Provider)(nil)
)

// New returns a provider. It checks the configured tokens.
func New(cfg Config, peers PeersFunc, logger *slog.Logger) (*Provider, error) {
	if peers == nil {
		return nil, errors.New("whip provider: no peer factory")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	base := cfg.HTTPClient
	if base == nil {
		base = &http.Client{}
	}
	tokens := make(map[string]string, len(cfg.Tokens))
	for host, tok := range cfg.Tokens {
		host = strings.ToLower(strings.TrimSpace(host))
		if host == "" || strings.ContainsAny(host, "/?#@ ") {
			return nil, fmt.Errorf("whip provider: token host %q: want a host name such as whip.example.com", host)
		}
		// The token itself is never quoted: it is a secret.
		if tok == "" || len(tok) > maxTokenLen || strings.IndexFunc(tok, func(r rune) bool {
			return r > unicode.MaxASCII || unicode.IsControl(r) || unicode.IsSpace(r)
		}) >= 0 {
			return nil, fmt.Errorf("whip provider: the token for %s is empty, over %d bytes, or has spaces, control or non-ASCII characters", host, maxTokenLen)
		}
		tokens[host] = tok
	}
	cfg.Tokens = tokens
	return &Provider{cfg: cfg, peers: peers, http: newHTTPClient(base), logger: logger.With("provider", "whip")}, nil
}

// Name implements meeting.Provider.
func (p *Provider) Name() string { return "whip" }

// Match implements meeting.Provider: whip+ and whep+ URLs.
func (p *Provider) Match(u *url.URL) bool { return match(u) }

// URLForms implements meeting.URLFormer.
func (p *Provider) URLForms() []string { return append([]string(nil), urlForms...) }

// Resolve checks u and says what Join would connect to.
func (p *Provider) Resolve(u *url.URL) (Target, error) { return resolve(u, p.cfg.Tokens) }

// Join implements meeting.Provider. It returns once every leg's offer is
// answered and applied; ICE and DTLS then connect in the background, and a
// failure ends the session through Done.
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
	logger := p.logger.With("target", t.String())
	factory, err := p.peers(ctx)
	if err != nil {
		return nil, fmt.Errorf("media layer: %w", err)
	}
	c := &client{http: p.http, timeout: p.cfg.RequestTimeout, logger: logger}
	var legs []*leg
	if t.Publish != nil {
		legs = append(legs, &leg{name: "publish", label: "publisher", role: meeting.RoleSend, endpoint: t.Publish, token: t.publishToken})
	}
	if t.Subscribe != nil {
		legs = append(legs, &leg{name: "subscribe", label: "subscriber", role: meeting.RoleReceive, endpoint: t.Subscribe, token: t.subscribeToken})
	}
	for i, l := range legs {
		if err := c.negotiate(ctx, factory, l); err != nil {
			abort(ctx, c, legs[:i+1], logger)
			// No "join <URL>" here: the engine says that, and the
			// endpoint URLs are in err where they matter.
			return nil, fmt.Errorf("%s: %w", l.name, err)
		}
	}
	s := newSession(c, legs, logger)
	logger.Info("joined", "resources", s.resources())
	return s, nil
}

// negotiate sets up one leg: OPTIONS for ICE servers, a peer, its offer,
// the POST, and the answer.
func (c *client) negotiate(ctx context.Context, factory meeting.PeerFactory, l *leg) error {
	servers, err := c.options(ctx, l)
	if err != nil {
		return err
	}
	if len(servers) > 0 {
		c.logger.Info("ICE servers from the server", "leg", l.name, "servers", serverURLs(servers))
	}
	l.peer, err = factory.NewPeer(ctx, meeting.PeerOptions{Role: l.role, Label: l.label, ICEServers: servers})
	if err != nil {
		return fmt.Errorf("create peer: %w", err)
	}
	var offer string
	if tr, ok := l.peer.(meeting.Trickler); ok {
		offer, err = c.trickleOffer(ctx, tr, l)
	} else {
		offer, err = l.peer.Offer(ctx)
	}
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	answer, err := c.offer(ctx, l, offer)
	if err != nil {
		return err
	}
	c.logger.Debug("session created", "leg", l.name, "resource", l.resource.Redacted(), "etag", l.etag)
	if err := l.peer.Accept(ctx, answer); err != nil {
		return fmt.Errorf("apply the answer: %w", err)
	}
	l.answer = answer
	return nil
}

// abort undoes a join that failed half way: sessions the server created
// are DELETEd, so that it does not wait for them to time out (and, for
// simple-whip-server, refuse the endpoint as in use meanwhile).
func abort(ctx context.Context, c *client, legs []*leg, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	for _, l := range legs {
		if l.resource != nil {
			if err := c.end(ctx, l); err != nil {
				logger.Warn("ending the half-made session", "leg", l.name, "err", err)
			}
		}
		if l.peer != nil {
			if err := l.peer.Close(); err != nil {
				logger.Warn("closing the peer", "leg", l.name, "err", err)
			}
		}
	}
}
