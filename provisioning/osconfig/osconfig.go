package osconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Dialer opens a new private connection to the bus, authenticated and
// registered (Hello done), ready for calls. It is the seam between this
// package and the bus: Open calls it once for its own calls and twice more
// for systemd's unit control (go-systemd keeps one connection for calls and
// one for signals). ctx bounds the connection's setup only; the connection
// must outlive it.
type Dialer func(ctx context.Context) (*dbus.Conn, error)

// Option configures Open.
type Option func(*config)

type config struct {
	dial Dialer
	log  *slog.Logger
}

// WithAddress connects to the bus at a D-Bus address (for example
// "unix:path=/run/dbus/system_bus_socket") instead of the system bus.
func WithAddress(address string) Option {
	return WithDialer(func(ctx context.Context) (*dbus.Conn, error) {
		conn, err := dbus.Dial(address)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", address, err)
		}
		return handshake(ctx, conn)
	})
}

// WithDialer replaces how connections to the bus are opened.
func WithDialer(d Dialer) Option { return func(c *config) { c.dial = d } }

// WithLogger sets the logger for the changes this package makes to the
// system (each one is logged at Info after the service accepted it).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// dialSystemBus opens a private connection to the system bus. A private one,
// not godbus's shared SystemBus, so that Close ends it and nothing is left
// behind in package state; godbus reads DBUS_SYSTEM_BUS_ADDRESS, which is
// how tests and containers point it elsewhere.
func dialSystemBus(ctx context.Context) (*dbus.Conn, error) {
	conn, err := dbus.SystemBusPrivate()
	if err != nil {
		return nil, fmt.Errorf("dial system bus: %w", err)
	}
	return handshake(ctx, conn)
}

// handshake authenticates conn and registers it on the bus. godbus's Auth
// and Hello take no context, so the connection is closed if ctx ends first,
// which makes both return.
func handshake(ctx context.Context, conn *dbus.Conn) (*dbus.Conn, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err := conn.Auth(nil)
	if err == nil {
		err = conn.Hello()
	}
	if !stop() {
		conn.Close()
		return nil, fmt.Errorf("connect to bus: %w", errors.Join(ctx.Err(), err))
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to bus: %w", err)
	}
	return conn, nil
}

// OS applies settings through the system's D-Bus services. Its methods are
// safe for concurrent use. Close it when done.
type OS struct {
	log     *slog.Logger
	conn    *dbus.Conn
	systemd *sdbus.Conn
	// nm serialises changes to the atrium NetworkManager profiles: two
	// that both found a profile missing would both add one.
	nm sync.Mutex

	closeOnce sync.Once
}

// Open connects to the system bus, or where the options say. It does not
// check that the services are there: the system may start them on demand,
// and each call reports a missing one (org.freedesktop.DBus.Error.ServiceUnknown).
func Open(ctx context.Context, opts ...Option) (*OS, error) {
	cfg := config{dial: dialSystemBus, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	conn, err := cfg.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("osconfig: %w", err)
	}
	systemd, err := sdbus.NewConnection(func() (*dbus.Conn, error) { return cfg.dial(ctx) })
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("osconfig: systemd1: %w", err)
	}
	return &OS{log: cfg.log, conn: conn, systemd: systemd}, nil
}

// Close closes the connections to the bus. An inhibitor lock taken with
// Inhibit stays held until it is released: it is a file descriptor of its
// own, not part of the connection.
func (o *OS) Close() error {
	var err error
	o.closeOnce.Do(func() {
		o.systemd.Close()
		err = o.conn.Close()
	})
	return err
}

// call calls method on the object at path of service dest and stores the
// reply's values in out. A D-Bus error from the service comes back as a
// *ServiceError.
func (o *OS) call(ctx context.Context, dest string, path dbus.ObjectPath, method string, out []any, args ...any) error {
	c := o.conn.Object(dest, path).CallWithContext(ctx, method, 0, args...)
	if c.Err != nil {
		return serviceError(c.Err)
	}
	if len(out) == 0 {
		return nil
	}
	if err := c.Store(out...); err != nil {
		closeFDs(c.Body)
		return fmt.Errorf("reply of %s: %w", method, err)
	}
	return nil
}

// closeFDs closes file descriptors received in a reply that could not be
// stored, so that a malformed reply does not leak them.
func closeFDs(body []any) {
	for _, v := range body {
		if fd, ok := v.(dbus.UnixFD); ok {
			closeFD(int(fd))
		}
	}
}

// properties reads every property of iface on the object at path.
func (o *OS) properties(ctx context.Context, dest string, path dbus.ObjectPath, iface string) (map[string]dbus.Variant, error) {
	var props map[string]dbus.Variant
	err := o.call(ctx, dest, path, "org.freedesktop.DBus.Properties.GetAll", []any{&props}, iface)
	return props, err
}

// property returns the property name from props as a T.
func property[T any](props map[string]dbus.Variant, name string) (T, error) {
	var zero T
	v, ok := props[name]
	if !ok {
		return zero, fmt.Errorf("property %s missing", name)
	}
	t, ok := v.Value().(T)
	if !ok {
		return zero, fmt.Errorf("property %s is %s, want %T", name, v.Signature(), zero)
	}
	return t, nil
}
