// Package nettest is roomd's pre-call network test: it checks that the room's
// network reaches the configured STUN and TURN servers (TURN over UDP, TCP
// and TLS), measures round-trip times and a short bandwidth probe through a
// relay, and turns the results into one plain-language verdict ("UDP
// blocked: calls will use TURN over TLS") for the admin screen and the fleet
// console (see Verdict and Store).
//
// A Result never holds credentials: only URLs, addresses, timings and
// failure reasons.
package nettest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// Defaults for the zero Options.
const (
	DefaultCheckTimeout  = 5 * time.Second
	DefaultProbeDuration = 700 * time.Millisecond
	DefaultProbeRate     = 4_000_000 // bits per second: a large meeting's downlink
	DefaultProbePacket   = 1000      // bytes of payload per probe packet
)

// Check kinds.
const (
	KindSTUN = "stun"
	KindTURN = "turn"
)

// Transports a check uses to reach its server.
const (
	TransportUDP = "udp"
	TransportTCP = "tcp"
	TransportTLS = "tls"
)

// Failure classifies why a check failed.
type Failure string

// The failure reasons. FailUnreachable is reported only when the network
// says so (a refused or unroutable TCP connection, a name that does not
// resolve); an unanswered UDP server is FailTimeout, since UDP cannot tell
// the two apart.
const (
	FailUnreachable Failure = "unreachable"
	FailTimeout     Failure = "timeout"
	FailAuth        Failure = "auth_refused"
	FailTLS         Failure = "tls_error"
	FailUnsupported Failure = "unsupported"
	FailOther       Failure = "error"
)

// Dialer opens the sockets of the checks. It is the package's only touch of
// the network, so tests can run the checks from another network namespace.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error)
}

// Options tune Run. The zero value is usable.
type Options struct {
	// CheckTimeout bounds each check (resolve, connect, request);
	// DefaultCheckTimeout when zero.
	CheckTimeout time.Duration
	// ProbeDuration is how long the bandwidth probe sends; DefaultProbeDuration
	// when zero, no probe when negative.
	ProbeDuration time.Duration
	// ProbeRate is the probe's sending rate in bits per second of payload;
	// DefaultProbeRate when zero.
	ProbeRate int
	// RootCAs verify turns: servers; the system's roots when nil.
	RootCAs *x509.CertPool
	// Dialer opens sockets; the standard library's when nil.
	Dialer Dialer
	// Resolver resolves server names; net.DefaultResolver when nil.
	Resolver *net.Resolver
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives debug logs, pion's included; discarded when nil.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = DefaultCheckTimeout
	}
	if o.ProbeDuration == 0 {
		o.ProbeDuration = DefaultProbeDuration
	}
	if o.ProbeRate <= 0 {
		o.ProbeRate = DefaultProbeRate
	}
	if o.Dialer == nil {
		o.Dialer = stdDialer{}
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Result is one run of the test, ready for JSON: times are RFC 3339,
// durations are milliseconds.
type Result struct {
	Time       time.Time  `json:"time"`
	DurationMS float64    `json:"duration_ms"`
	Checks     []Check    `json:"checks"`
	Bandwidth  *Bandwidth `json:"bandwidth,omitempty"`
	Verdict    Verdict    `json:"verdict"`
}

// Check is the outcome of one server URL.
type Check struct {
	Kind      string `json:"kind"` // KindSTUN or KindTURN
	URL       string `json:"url"`
	Transport string `json:"transport"` // TransportUDP, TransportTCP or TransportTLS
	// Host is the server's name as configured, Server the address tried.
	Host   string `json:"host"`
	Server string `json:"server,omitempty"`
	OK     bool   `json:"ok"`
	// ConnectMS is the TCP (and TLS) handshake time, for TURN over TCP
	// and TLS.
	ConnectMS float64 `json:"connect_ms,omitempty"`
	// RTTMS is, for STUN, the binding request's round trip; for TURN, the
	// allocation's: two round trips, the unauthenticated request and its
	// 401 challenge, then the authenticated one. Retransmissions of lost
	// requests are included.
	RTTMS float64 `json:"rtt_ms,omitempty"`
	// Reflexive is the room's address as the STUN server sees it; Relay
	// the TURN server's relayed address.
	Reflexive string  `json:"reflexive,omitempty"`
	Relay     string  `json:"relay,omitempty"`
	Failure   Failure `json:"failure,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// Run tests the servers' URLs concurrently, each within opts.CheckTimeout,
// then probes the bandwidth through one working TURN relay (see Bandwidth).
// It returns an error only when ctx ends first; failures of the checks are
// in the Result.
func Run(ctx context.Context, servers []meeting.ICEServer, opts Options) (Result, error) {
	opts = opts.withDefaults()
	start := opts.Now()
	var targets []target
	for _, s := range servers {
		for _, u := range s.URLs {
			targets = append(targets, parseURL(u, s.Username, s.Credential))
		}
	}
	checks := make([]Check, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, opts.CheckTimeout)
			defer cancel()
			checks[i] = runCheck(cctx, tg, opts)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("nettest: %w", err)
	}

	var bw *Bandwidth
	if tg, ok := probeTarget(targets, checks); ok && opts.ProbeDuration > 0 {
		b := probe(ctx, tg, opts)
		bw = &b
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("nettest: %w", err)
		}
	}
	r := Result{
		Time:       start.UTC().Truncate(time.Second),
		DurationMS: ms(opts.Now().Sub(start)),
		Checks:     checks,
		Bandwidth:  bw,
	}
	r.Verdict = Judge(r)
	return r, nil
}

// probeTarget picks the relay a call would use: ICE prefers relays over
// UDP, then TCP, then TLS.
func probeTarget(targets []target, checks []Check) (target, bool) {
	for _, tr := range []string{TransportUDP, TransportTCP, TransportTLS} {
		for i, c := range checks {
			if c.Kind == KindTURN && c.OK && c.Transport == tr {
				return targets[i], true
			}
		}
	}
	return target{}, false
}

// target is a parsed URL with its credentials, which stay out of Check.
type target struct {
	kind, url, transport, host, port string
	username, password               string
	err                              error
}

// parseURL reads an RTCIceServer URL (RFC 7064, RFC 7065):
// stun:host[:port], turn:host[:port][?transport=udp|tcp],
// turns:host[:port][?transport=tcp].
func parseURL(u, username, password string) target {
	t := target{url: u, username: username, password: password}
	scheme, rest, ok := strings.Cut(u, ":")
	if !ok {
		t.err = fmt.Errorf("no scheme in %q", u)
		return t
	}
	rest, query, _ := strings.Cut(rest, "?")
	transport := ""
	if query != "" {
		k, v, _ := strings.Cut(query, "=")
		if k != "transport" || (v != "udp" && v != "tcp") {
			t.err = fmt.Errorf("unknown query %q in %q", query, u)
		}
		transport = v
	}
	switch strings.ToLower(scheme) {
	case "stun":
		t.kind, t.transport, t.port = KindSTUN, TransportUDP, "3478"
		if transport != "" {
			t.err = fmt.Errorf("stun: URL with a transport: %q", u)
		}
	case "turn":
		t.kind, t.transport, t.port = KindTURN, TransportUDP, "3478"
		if transport == "tcp" {
			t.transport = TransportTCP
		}
	case "turns":
		t.kind, t.transport, t.port = KindTURN, TransportTLS, "5349"
		if transport == "udp" {
			t.err = fmt.Errorf("turns: over UDP (DTLS) is not supported: %q", u)
		}
	case "stuns":
		t.kind, t.transport, t.port = KindSTUN, TransportTLS, "5349"
		t.err = fmt.Errorf("stuns: is not supported: %q", u)
	default:
		t.err = fmt.Errorf("unknown scheme %q in %q", scheme, u)
	}
	if h, p, err := net.SplitHostPort(rest); err == nil {
		t.host, t.port = h, p
	} else {
		t.host = strings.TrimSuffix(strings.TrimPrefix(rest, "["), "]")
	}
	if _, err := strconv.ParseUint(t.port, 10, 16); err != nil && t.err == nil {
		t.err = fmt.Errorf("bad port in %q", u)
	}
	if t.host == "" && t.err == nil {
		t.err = fmt.Errorf("no host in %q", u)
	}
	return t
}

// classify maps a check's error to a Failure.
func classify(ctx context.Context, err error) Failure {
	var (
		dnsErr   *net.DNSError
		opErr    *net.OpError
		alertErr tls.AlertError
		recErr   tls.RecordHeaderError
		verErr   *tls.CertificateVerificationError
		hostErr  x509.HostnameError
		authErr  x509.UnknownAuthorityError
		certErr  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &verErr), errors.As(err, &hostErr), errors.As(err, &authErr),
		errors.As(err, &certErr), errors.As(err, &alertErr), errors.As(err, &recErr),
		errors.Is(err, errTLS):
		return FailTLS
	case isAuthError(err):
		return FailAuth
	case errors.Is(err, context.DeadlineExceeded), ctx.Err() != nil, isTimeout(err):
		return FailTimeout
	case errors.As(err, &dnsErr), errors.As(err, &opErr):
		return FailUnreachable
	}
	return FailOther
}

func isTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// pion gives up after its retransmissions with an unexported error.
	return strings.Contains(err.Error(), "retransmissions failed")
}

// errTLS marks a failed TLS handshake whose cause the tls package did not
// type (e.g. the server closed the connection mid-handshake).
var errTLS = errors.New("TLS handshake failed")

// ms converts d to milliseconds with 0.01 ms resolution.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*100) / 100
}

type stdDialer struct{}

func (stdDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

func (stdDialer) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	var lc net.ListenConfig
	return lc.ListenPacket(ctx, network, address)
}
