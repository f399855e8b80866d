package pulse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jfreymuth/pulse/proto"

	"github.com/atriumroom/atrium/hal"
)

// Driver names.
const (
	// NamePipeWire is the driver's name when the server is PipeWire's
	// pipewire-pulse.
	NamePipeWire = "pipewire"
	// NamePulse is its name when the server is PulseAudio itself.
	NamePulse = "pulse"
)

// Defaults.
const (
	DefaultLatency        = 20 * time.Millisecond
	DefaultRequestTimeout = 5 * time.Second
	DefaultClientName     = "roomd"
)

// Clock tells the time that capture timestamps are taken from.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configures New. The zero value connects to the current user's
// server with the defaults.
type Options struct {
	// Server is a PulseAudio server string ("unix:/run/user/1000/pulse/native",
	// "tcp:127.0.0.1:4713", several separated by spaces). Empty means
	// $PULSE_SERVER, then $XDG_RUNTIME_DIR/pulse/native, then
	// /run/user/UID/pulse/native, then /run/pulse/native.
	Server string
	// CookieFile is PulseAudio's authentication cookie. Empty means
	// $PULSE_COOKIE, then ~/.config/pulse/cookie; a missing file sends an
	// empty cookie, which PipeWire (and an anonymous PulseAudio) accepts.
	CookieFile string
	// Latency is the buffering each stream asks for, in each direction;
	// 0 means DefaultLatency (20 ms). The server may grant more.
	Latency time.Duration
	// RequestTimeout bounds each request to the server (requests cannot be
	// cancelled mid-way, so this, not the caller's context, is what limits
	// a stuck server); 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// ClientName is the application name the server shows for roomd's
	// connections and streams; empty means DefaultClientName.
	ClientName string
	// Logger receives stream trouble (overruns, underruns); nil discards.
	Logger *slog.Logger
	// Clock timestamps captured audio; nil means the system clock.
	Clock Clock

	// dial replaces the real connection (unit tests).
	dial dialFunc
}

// ServerInfo describes the server the driver talks to.
type ServerInfo struct {
	// Package is the server's package name, e.g. "PulseAudio (on PipeWire
	// 0.3.65)" or "pulseaudio".
	Package string
	// Version is its version as the pulse protocol reports it (PipeWire
	// reports the PulseAudio version it emulates, e.g. "15.0.0").
	Version string
	// DefaultSink and DefaultSource are the server's current defaults (node
	// names).
	DefaultSink, DefaultSource string
}

// Driver enumerates a sound server's sinks and sources as hal.Speakers and
// hal.Microphones and follows their hotplug. It implements hal.Driver and
// hal.Watcher. A Driver holds no connection between calls: each
// enumeration, control change and Watch opens its own, and each stream
// has one, so a server restart costs nothing but the streams open at the
// time. All methods are safe for concurrent use.
type Driver struct {
	name    string
	server  ServerInfo
	dial    dialFunc
	latency time.Duration
	timeout time.Duration
	client  string
	log     *slog.Logger
	clock   Clock
}

var (
	_ hal.Driver  = (*Driver)(nil)
	_ hal.Watcher = (*Driver)(nil)
)

// New connects to the server once, to learn which server it is (and so the
// driver's name, NamePipeWire or NamePulse), and returns the driver. With
// no server running it fails with an error wrapping ErrNoServer.
func New(ctx context.Context, opts Options) (*Driver, error) {
	if opts.Latency < 0 || opts.RequestTimeout < 0 {
		return nil, fmt.Errorf("pulse: negative Latency (%s) or RequestTimeout (%s)", opts.Latency, opts.RequestTimeout)
	}
	d := &Driver{
		dial:    opts.dial,
		latency: opts.Latency,
		timeout: opts.RequestTimeout,
		client:  opts.ClientName,
		log:     opts.Logger,
		clock:   opts.Clock,
	}
	if d.latency == 0 {
		d.latency = DefaultLatency
	}
	if d.timeout == 0 {
		d.timeout = DefaultRequestTimeout
	}
	if d.client == "" {
		d.client = DefaultClientName
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.clock == nil {
		d.clock = systemClock{}
	}
	if d.dial == nil {
		cfg := wireConfig{
			addrs:      serverAddrs(opts.Server, os.Getenv, os.Getuid()),
			cookieFile: cookiePath(opts.CookieFile, os.Getenv),
			timeout:    d.timeout,
			props: map[string]string{
				"application.name":       d.client,
				"application.process.id": fmt.Sprint(os.Getpid()),
			},
		}
		d.dial = func(ctx context.Context, handle func(any)) (transport, error) {
			return dialWire(ctx, cfg, handle)
		}
	}
	info, err := d.serverInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("pulse: %w", err)
	}
	d.server = info
	d.name = NamePulse
	if strings.Contains(strings.ToLower(info.Package), "pipewire") {
		d.name = NamePipeWire
	}
	d.log = d.log.With("driver", d.name)
	return d, nil
}

func cookiePath(path string, getenv func(string) string) string {
	if path != "" {
		return path
	}
	if p := getenv("PULSE_COOKIE"); p != "" {
		return p
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".config", "pulse", "cookie")
	}
	return ""
}

// Name implements hal.Driver: NamePipeWire or NamePulse.
func (d *Driver) Name() string { return d.name }

// Server returns what the server said about itself when New connected.
func (d *Driver) Server() ServerInfo { return d.server }

// connect opens a connection for one operation.
func (d *Driver) connect(ctx context.Context, handle func(any)) (transport, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := d.dial(ctx, handle)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return t, nil
}

// withConn runs f on a fresh connection and closes it.
func (d *Driver) withConn(ctx context.Context, f func(t transport) error) error {
	t, err := d.connect(ctx, nil)
	if err != nil {
		return err
	}
	err = f(t)
	if cerr := t.close(); cerr != nil {
		d.log.Debug("close control connection", "err", cerr)
	}
	return err
}

func (d *Driver) serverInfo(ctx context.Context) (ServerInfo, error) {
	var r proto.GetServerInfoReply
	err := d.withConn(ctx, func(t transport) error {
		if err := t.request(&proto.GetServerInfo{}, &r); err != nil {
			return fmt.Errorf("get server info: %w", err)
		}
		return nil
	})
	if err != nil {
		return ServerInfo{}, err
	}
	return ServerInfo{Package: r.PackageName, Version: r.PackageVersion, DefaultSink: r.DefaultSinkName, DefaultSource: r.DefaultSourceName}, nil
}

// nodes lists the server's sinks and sources (monitors included).
func (d *Driver) nodes(ctx context.Context) ([]node, error) {
	var sinks proto.GetSinkInfoListReply
	var sources proto.GetSourceInfoListReply
	err := d.withConn(ctx, func(t transport) error {
		if err := t.request(&proto.GetSinkInfoList{}, &sinks); err != nil {
			return fmt.Errorf("list sinks: %w", err)
		}
		if err := t.request(&proto.GetSourceInfoList{}, &sources); err != nil {
			return fmt.Errorf("list sources: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]node, 0, len(sinks)+len(sources))
	for _, s := range sinks {
		out = append(out, sinkNode(s))
	}
	for _, s := range sources {
		out = append(out, sourceNode(s))
	}
	return out, nil
}

// pulseNullSink is the placeholder PulseAudio's module-always-sink loads
// when there is no real sink: it is no speaker.
const pulseNullSink = "auto_null"

// Enumerate implements hal.Driver: every sink as a *Speaker and every
// source that is not a sink's monitor as a *Microphone, in the server's
// order.
func (d *Driver) Enumerate(ctx context.Context) ([]hal.Device, error) {
	nodes, err := d.nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: enumerate: %w", d.name, err)
	}
	var devs []hal.Device
	for _, n := range nodes {
		switch {
		case n.isMonitor(), n.name == pulseNullSink:
			continue
		case n.sink:
			devs = append(devs, &Speaker{d.newDevice(n)})
		default:
			devs = append(devs, &Microphone{d.newDevice(n)})
		}
	}
	return devs, nil
}

// Watch implements hal.Watcher through the server's subscription: a sink
// or source appearing or going away calls changed (a burst of them may
// call it once). Changes to a node (volume, state) do not. It returns nil
// when ctx is done, and an error wrapping ErrConnectionLost if the server
// goes away, so the registry retries until one is back.
func (d *Driver) Watch(ctx context.Context, changed func()) error {
	events := make(chan struct{}, 1)
	lost := make(chan struct{})
	t, err := d.connect(ctx, func(msg any) {
		switch m := msg.(type) {
		case *proto.SubscribeEvent:
			fac, typ := m.Event.GetFacility(), m.Event.GetType()
			if (fac == proto.EventSink || fac == proto.EventSource) && (typ == proto.EventNew || typ == proto.EventRemove) {
				select {
				case events <- struct{}{}:
				default:
				}
			}
		case connClosed:
			close(lost)
		}
	})
	if err != nil {
		return fmt.Errorf("%s: watch: %w", d.name, err)
	}
	defer func() {
		if err := t.close(); err != nil {
			d.log.Debug("close watch connection", "err", err)
		}
	}()
	if err := t.request(&proto.Subscribe{Mask: proto.SubscriptionMaskSink | proto.SubscriptionMaskSource}, nil); err != nil {
		return fmt.Errorf("%s: watch: subscribe: %w", d.name, err)
	}
	changed()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-events:
			changed()
		case <-lost:
			return fmt.Errorf("%s: watch: %w", d.name, ErrConnectionLost)
		}
	}
}

// isNoSuchEntity reports whether the server said the sink or source does
// not exist (any more).
func isNoSuchEntity(err error) bool {
	var pe proto.Error
	return errors.As(err, &pe) && pe == proto.ErrNoSuchEntity
}
