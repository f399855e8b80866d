package pulse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jfreymuth/pulse/proto"
)

// transport is one connection to the sound server: requests answered by
// replies, stream data sent out, and server messages in, which go to the
// handler given when it was dialled. The real one is wireConn, the
// PulseAudio native protocol over a socket; unit tests use a fake server
// behind the same interface.
//
// The handler runs on the transport's reader and must not block. It
// receives *proto.Request, *proto.DataPacket (whose Data it may keep),
// *proto.SubscribeEvent, *proto.PlaybackStreamKilled,
// *proto.RecordStreamKilled, *proto.Underflow, *proto.Overflow, and finally
// connClosed when the connection has ended, whoever ended it.
type transport interface {
	// request sends req and waits for the reply (bounded by the request
	// timeout), decoding it into reply, which may be nil for requests
	// answered by a bare acknowledgement.
	request(req proto.RequestArgs, reply proto.Reply) error
	// send writes audio for a playback stream.
	send(stream uint32, data []byte) error
	// close ends the connection and returns once the reader has stopped,
	// so no handler call runs after it.
	close() error
}

// connClosed is the last message a transport delivers.
type connClosed struct{}

// dialFunc opens a transport whose server messages go to handle.
type dialFunc func(ctx context.Context, handle func(msg any)) (transport, error)

// serverAddr is one place a server may listen.
type serverAddr struct {
	network, addr string
}

func (a serverAddr) String() string { return a.network + ":" + a.addr }

// serverAddrs lists where to look for the server, in order: the server
// string if one is given (PulseAudio's format: whitespace-separated
// entries, each "unix:PATH", "/PATH", "tcp:HOST:PORT", "tcp4:", "tcp6:",
// optionally prefixed with "{machine}"), else $PULSE_SERVER, else the
// per-user socket under $XDG_RUNTIME_DIR, then under /run/user/UID (roomd
// runs as a system service, which may have no XDG_RUNTIME_DIR while the
// server runs as the same user), then the system-wide /run/pulse/native.
func serverAddrs(server string, getenv func(string) string, uid int) []serverAddr {
	if server == "" {
		server = getenv("PULSE_SERVER")
	}
	if server != "" {
		return parseServerString(server)
	}
	var out []serverAddr
	if rt := getenv("XDG_RUNTIME_DIR"); rt != "" {
		out = append(out, serverAddr{"unix", filepath.Join(rt, "pulse", "native")})
	}
	if p := fmt.Sprintf("/run/user/%d/pulse/native", uid); len(out) == 0 || out[0].addr != p {
		out = append(out, serverAddr{"unix", p})
	}
	return append(out, serverAddr{"unix", "/run/pulse/native"})
}

func parseServerString(s string) []serverAddr {
	var out []serverAddr
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, "{") {
			// A machine-id or hostname guard: the server string names a
			// server on that machine. roomd only ever talks to its own.
			_, rest, ok := strings.Cut(f, "}")
			if !ok {
				continue
			}
			f = rest
		}
		switch {
		case strings.HasPrefix(f, "/"):
			out = append(out, serverAddr{"unix", f})
		case strings.HasPrefix(f, "unix:"):
			out = append(out, serverAddr{"unix", strings.TrimPrefix(f, "unix:")})
		case strings.HasPrefix(f, "tcp4:"):
			out = append(out, serverAddr{"tcp4", strings.TrimPrefix(f, "tcp4:")})
		case strings.HasPrefix(f, "tcp6:"):
			out = append(out, serverAddr{"tcp6", strings.TrimPrefix(f, "tcp6:")})
		case strings.HasPrefix(f, "tcp:"):
			out = append(out, serverAddr{"tcp", strings.TrimPrefix(f, "tcp:")})
		}
	}
	return out
}

// cookieSize is the length of PulseAudio's authentication cookie.
const cookieSize = 256

// readCookie returns the authentication cookie from path, or an all-zero
// one when there is none: PipeWire ignores the cookie, and PulseAudio
// started with auth-anonymous accepts any.
func readCookie(path string) ([]byte, error) {
	if path == "" {
		return make([]byte, cookieSize), nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return make([]byte, cookieSize), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cookie: %w", err)
	}
	return b, nil
}

// wireConfig is what dialling the real server needs.
type wireConfig struct {
	addrs      []serverAddr
	cookieFile string
	timeout    time.Duration
	props      map[string]string // the client's properties (application.name ...)
}

// dialWire connects to the first server in cfg.addrs that answers, and
// authenticates.
func dialWire(ctx context.Context, cfg wireConfig, handle func(msg any)) (transport, error) {
	if len(cfg.addrs) == 0 {
		return nil, fmt.Errorf("%w: no server address to try", ErrNoServer)
	}
	cookie, err := readCookie(cfg.cookieFile)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, a := range cfg.addrs {
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		nc, err := d.DialContext(dctx, a.network, a.addr)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		w, err := openWire(nc, cfg, cookie, handle)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a, err))
			continue
		}
		return w, nil
	}
	return nil, fmt.Errorf("%w: %w", ErrNoServer, errors.Join(errs...))
}

// wireConn is a transport over the PulseAudio native protocol. The framing,
// tag matching and tagstruct encoding are github.com/jfreymuth/pulse/proto's;
// its client runs one reader goroutine per connection, which wireConn owns:
// close waits for it to end.
type wireConn struct {
	c    *proto.Client
	nc   net.Conn
	done chan struct{} // closed by the reader's last handler call

	closeOnce sync.Once
}

// eofConn reports every read error as io.EOF. proto.Client's reader tells
// its callback that the connection closed only on EOF; any other error (a
// reset, our own Close) would otherwise end the reader silently, and
// wireConn.close could not know when it has.
type eofConn struct{ net.Conn }

func (c eofConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w (%v)", io.EOF, err)
	}
	return n, err
}

func openWire(nc net.Conn, cfg wireConfig, cookie []byte, handle func(msg any)) (*wireConn, error) {
	w := &wireConn{c: &proto.Client{}, nc: nc, done: make(chan struct{})}
	w.c.SetTimeout(cfg.timeout)
	w.c.Callback = func(msg any) {
		switch m := msg.(type) {
		case *proto.ConnectionClosed:
			if handle != nil {
				handle(connClosed{})
			}
			close(w.done)
		case *proto.DataPacket:
			// The reader reuses its buffer for the next packet.
			if handle != nil {
				handle(&proto.DataPacket{StreamIndex: m.StreamIndex, Data: append([]byte(nil), m.Data...)})
			}
		default:
			if handle != nil {
				handle(msg)
			}
		}
	}
	w.c.Open(eofConn{nc})
	var auth proto.AuthReply
	if err := w.c.Request(&proto.Auth{Version: w.c.Version(), Cookie: cookie}, &auth); err != nil {
		_ = w.close()
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	w.c.SetVersion(auth.Version)
	props := make(proto.PropList, len(cfg.props))
	for k, v := range cfg.props {
		props[k] = proto.PropListString(v)
	}
	if err := w.c.Request(&proto.SetClientName{Props: props}, &proto.SetClientNameReply{}); err != nil {
		_ = w.close()
		return nil, fmt.Errorf("set client name: %w", err)
	}
	return w, nil
}

func (w *wireConn) request(req proto.RequestArgs, reply proto.Reply) error {
	return w.c.Request(req, reply)
}

func (w *wireConn) send(stream uint32, data []byte) error {
	return w.c.Send(stream, data)
}

// readerExitTimeout bounds close's wait for the reader: it ends as soon as
// its read fails, which closing the socket makes immediate.
const readerExitTimeout = 5 * time.Second

func (w *wireConn) close() error {
	var err error
	w.closeOnce.Do(func() {
		err = w.nc.Close()
		select {
		case <-w.done:
		case <-time.After(readerExitTimeout):
			err = errors.Join(err, errors.New("close: the protocol reader did not stop"))
		}
	})
	return err
}
