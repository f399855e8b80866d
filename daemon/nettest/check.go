package nettest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

// runCheck runs one URL's check within ctx.
func runCheck(ctx context.Context, tg target, opts Options) Check {
	c := Check{Kind: tg.kind, URL: tg.url, Transport: tg.transport, Host: tg.host}
	if tg.err != nil {
		c.Failure, c.Error = FailUnsupported, tg.err.Error()
		return c
	}
	s, err := dialServer(ctx, tg, opts)
	if s != nil {
		c.Server, c.ConnectMS = s.server, ms(s.connect)
	}
	if err == nil {
		defer s.close()
		if tg.kind == KindSTUN {
			err = s.binding(ctx, &c, opts)
		} else {
			err = s.allocate(ctx, &c, opts)
		}
	}
	if err != nil {
		c.Failure, c.Error = classify(ctx, err), err.Error()
		opts.Logger.Debug("nettest: check failed", "url", tg.url, "failure", c.Failure, "err", err)
		return c
	}
	c.OK = true
	return c
}

// session is a pion client on its socket, connected to one server.
type session struct {
	server  string
	connect time.Duration
	conn    net.PacketConn
	client  *turn.Client
}

// dialServer resolves tg's host and opens the socket (for TCP and TLS, the
// connection) and a pion client on it.
func dialServer(ctx context.Context, tg target, opts Options) (*session, error) {
	ips, err := opts.Resolver.LookupNetIP(ctx, "ip", tg.host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", tg.host, err)
	}
	ip := ips[0].Unmap()
	for _, a := range ips { // IPv4 first: rooms' networks rarely route IPv6 better
		if a.Unmap().Is4() {
			ip = a.Unmap()
			break
		}
	}
	server := net.JoinHostPort(ip.String(), tg.port)
	s := &session{server: server}

	start := opts.Now()
	switch tg.transport {
	case TransportUDP:
		network := "udp4"
		if !ip.Is4() {
			network = "udp6"
		}
		s.conn, err = opts.Dialer.ListenPacket(ctx, network, ":0")
		if err != nil {
			return s, fmt.Errorf("open a UDP socket: %w", err)
		}
	case TransportTCP, TransportTLS:
		nc, err := opts.Dialer.DialContext(ctx, "tcp", server)
		if err != nil {
			return s, fmt.Errorf("connect to %s: %w", server, err)
		}
		if tg.transport == TransportTLS {
			tc := tls.Client(nc, &tls.Config{ServerName: tg.host, RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12})
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = nc.Close()
				if ctx.Err() == nil {
					err = fmt.Errorf("%w: %w", errTLS, err)
				}
				return s, fmt.Errorf("TLS with %s: %w", server, err)
			}
			nc = tc
		}
		s.connect = opts.Now().Sub(start)
		s.conn = turn.NewSTUNConn(nc)
	}
	s.client, err = turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server,
		TURNServerAddr: server,
		Username:       tg.username,
		Password:       tg.password,
		Conn:           s.conn,
		LoggerFactory:  pionLogs{opts.Logger},
	})
	if err == nil {
		err = s.client.Listen()
	}
	if err != nil {
		if s.client != nil {
			s.client.Close()
		}
		_ = s.conn.Close()
		return s, fmt.Errorf("start a client for %s: %w", server, err)
	}
	return s, nil
}

func (s *session) close() {
	s.client.Close()
	_ = s.conn.Close()
}

// await runs f, which blocks on pion's retransmission timers rather than on
// ctx: when ctx ends first, it closes the session so that f returns, and
// waits for it.
func (s *session) await(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		s.close()
		<-done
		return ctx.Err()
	}
}

func (s *session) binding(ctx context.Context, c *Check, opts Options) error {
	start := opts.Now()
	var mapped net.Addr
	err := s.await(ctx, func() (err error) {
		mapped, err = s.client.SendBindingRequest()
		return err
	})
	if err != nil {
		return fmt.Errorf("STUN binding request to %s: %w", s.server, err)
	}
	c.RTTMS = ms(opts.Now().Sub(start))
	c.Reflexive = mapped.String()
	return nil
}

func (s *session) allocate(ctx context.Context, c *Check, opts Options) error {
	start := opts.Now()
	var relay net.PacketConn
	err := s.await(ctx, func() (err error) {
		relay, err = s.client.Allocate()
		return err
	})
	if err != nil {
		return fmt.Errorf("TURN allocation at %s: %w", s.server, err)
	}
	c.RTTMS = ms(opts.Now().Sub(start))
	c.Relay = relay.LocalAddr().String()
	// Closing releases the allocation (a Refresh with lifetime 0), which
	// waits for the server's answer: bounded by ctx like the rest.
	return s.await(ctx, relay.Close)
}

// isAuthError reports a TURN error response refusing the credentials.
func isAuthError(err error) bool {
	var te *stun.TurnError
	if !errors.As(err, &te) {
		return false
	}
	switch te.ErrorCodeAttr.Code {
	case stun.CodeUnauthorized, stun.CodeWrongCredentials, stun.CodeForbidden:
		return true
	}
	return false
}

// pionLogs sends pion's logs to slog at debug level: they are details of a
// test whose outcome is in the Result.
type pionLogs struct{ log *slog.Logger }

func (p pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{p.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(msg string)                  {}
func (l pionLogger) Tracef(string, ...any)             {}
func (l pionLogger) Debug(msg string)                  { l.log.Debug(msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l pionLogger) Info(msg string)                   { l.log.Debug(msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l pionLogger) Warn(msg string)                   { l.log.Debug(msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l pionLogger) Error(msg string)                  { l.log.Debug(msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
