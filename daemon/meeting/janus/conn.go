package janus

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// eventBacklog bounds the events waiting for the session loop. The loop
// handles them in order and may be busy in a renegotiation for a few
// seconds; a server that sends more than this meanwhile is flooding.
const eventBacklog = 1024

// conn is one Janus session's API client over a transport: it sends
// requests with fresh transaction ids, hands each reply to its request, and
// queues the rest (plugin events, webrtcup, hangup...) on events.
type conn struct {
	t       transport
	logger  *slog.Logger
	timeout time.Duration // per request

	ctx       context.Context // ends at close; owns the reader and keepalive
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	// events are asynchronous messages, for the session loop.
	events chan *message

	mu      sync.Mutex
	pending map[string]*call
	session uint64
	err     error         // why the connection ended; set once
	done    chan struct{} // closed when err is set
	closing bool          // close was called: later errors are ours
}

type call struct {
	// ackFinal says "ack" is the whole reply (keepalive); plugin messages
	// are acked first and answered by an event later.
	ackFinal bool
	reply    chan *message // buffered: dispatch never blocks on it
}

func newConn(t transport, logger *slog.Logger, timeout time.Duration) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		t:       t,
		logger:  logger,
		timeout: timeout,
		ctx:     ctx,
		cancel:  cancel,
		events:  make(chan *message, eventBacklog),
		pending: map[string]*call{},
		done:    make(chan struct{}),
	}
	c.wg.Add(1)
	go c.read()
	return c
}

// Err returns why the connection ended, or nil while it is up.
func (c *conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail ends the connection with err, once: pending requests and the
// session loop see it through done.
func (c *conn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	close(c.done)
	if !c.closing {
		// The session reports it; this marks when it happened.
		c.logger.Debug("janus connection ended", "err", err)
	}
}

func (c *conn) read() {
	defer c.wg.Done()
	for {
		b, err := c.t.recv(c.ctx)
		if err != nil {
			if c.ctx.Err() != nil {
				err = fmt.Errorf("%w: closed by this side", ErrClosed)
			}
			c.fail(err)
			return
		}
		m, err := decodeMessage(b)
		if err != nil {
			c.fail(err)
			return
		}
		if err := c.dispatch(m); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *conn) dispatch(m *message) error {
	c.mu.Lock()
	cl := c.pending[m.Transaction]
	if m.Transaction == "" {
		cl = nil
	}
	c.mu.Unlock()

	switch m.Janus {
	case "ack":
		if cl != nil && cl.ackFinal {
			cl.deliver(m)
		}
		return nil
	case "success", "error", "server_info":
		if cl != nil {
			cl.deliver(m)
			return nil
		}
		if m.Janus == "error" && m.Error != nil {
			c.logger.Warn("janus error outside any request", "code", m.Error.Code, "reason", m.Error.Reason)
		}
		return nil
	case "keepalive":
		// The long poll's "nothing happened for 30 s".
		return nil
	case "timeout":
		return fmt.Errorf("%w (no keepalive reached it in time)", ErrSessionTimeout)
	case "event":
		if cl != nil && !cl.ackFinal {
			cl.deliver(m)
			return nil
		}
	}
	// Plugin events nobody waits for, and webrtcup, media, slowlink,
	// hangup, detached, trickle: the session loop's.
	select {
	case c.events <- m:
		return nil
	default:
		return fmt.Errorf("%w: more than %d events unhandled", ErrProtocol, eventBacklog)
	}
}

func (cl *call) deliver(m *message) {
	select {
	case cl.reply <- m:
	default: // a duplicate reply; the first one counts
	}
}

// request sends req and waits for its reply, for the request timeout at
// most. A Janus "error" reply comes back as *Error; what names the request
// in errors.
func (c *conn) request(ctx context.Context, what string, req *request, ackFinal bool) (*message, error) {
	req.Transaction = rand.Text()
	cl := &call{ackFinal: ackFinal, reply: make(chan *message, 1)}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if req.SessionID == 0 && req.Janus != "create" {
		req.SessionID = c.session
	}
	c.pending[req.Transaction] = cl
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, req.Transaction)
		c.mu.Unlock()
	}()

	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.t.send(rctx, req); err != nil {
		if cerr := c.Err(); cerr != nil {
			return nil, fmt.Errorf("%s: %w", what, cerr)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if rctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w: could not send within %s", what, ErrNoReply, c.timeout)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	select {
	case m := <-cl.reply:
		if m.Janus == "error" {
			if m.Error == nil {
				return nil, fmt.Errorf("%s: %w: error reply without code", what, ErrProtocol)
			}
			return nil, &Error{Request: what, Code: m.Error.Code, Reason: m.Error.Reason}
		}
		return m, nil
	case <-c.done:
		return nil, fmt.Errorf("%s: %w", what, c.Err())
	case <-rctx.Done():
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w within %s", what, ErrNoReply, c.timeout)
	}
}

// create creates the Janus session every later request belongs to.
func (c *conn) create(ctx context.Context) (uint64, error) {
	m, err := c.request(ctx, "create session", &request{Janus: "create"}, false)
	if err != nil {
		return 0, err
	}
	id, err := successID(m)
	if err != nil {
		return 0, fmt.Errorf("create session: %w", err)
	}
	c.mu.Lock()
	c.session = id
	c.mu.Unlock()
	return id, nil
}

// attach attaches a handle to plugin.
func (c *conn) attach(ctx context.Context, plugin string) (uint64, error) {
	m, err := c.request(ctx, "attach "+plugin, &request{Janus: "attach", Plugin: plugin}, false)
	if err != nil {
		return 0, err
	}
	id, err := successID(m)
	if err != nil {
		return 0, fmt.Errorf("attach %s: %w", plugin, err)
	}
	return id, nil
}

func successID(m *message) (uint64, error) {
	if m.Janus != "success" {
		return 0, fmt.Errorf("%w: %q instead of success", ErrProtocol, m.Janus)
	}
	id, err := m.dataID()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return id, nil
}

// message sends a plugin request on handle and returns the plugin's
// answer: the event for an asynchronous request, the success for a
// synchronous one. A VideoRoom error_code comes back as *Error.
func (c *conn) message(ctx context.Context, what string, handle uint64, body any, j *jsep) (*message, *roomEvent, error) {
	m, err := c.request(ctx, what, &request{Janus: "message", HandleID: handle, Body: body, JSEP: j}, false)
	if err != nil {
		return nil, nil, err
	}
	ev, err := m.roomEvent()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if ev.ErrorCode != 0 {
		return m, ev, &Error{Request: what, Code: ev.ErrorCode, Reason: ev.Error}
	}
	return m, ev, nil
}

// simple sends a core request answered by success (detach, destroy).
func (c *conn) simple(ctx context.Context, what string, req *request) error {
	m, err := c.request(ctx, what, req, false)
	if err != nil {
		return err
	}
	if m.Janus != "success" {
		return fmt.Errorf("%s: %w: %q instead of success", what, ErrProtocol, m.Janus)
	}
	return nil
}

// keepAlive sends a keepalive every interval until the connection ends.
// One that gets no ack ends the connection: the session would time out on
// Janus's side soon anyway.
func (c *conn) keepAlive(interval time.Duration) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-c.ctx.Done():
				return
			case <-c.done:
				return
			case <-t.C:
			}
			m, err := c.request(c.ctx, "keepalive", &request{Janus: "keepalive"}, true)
			if err == nil && m.Janus != "ack" {
				err = fmt.Errorf("keepalive: %w: %q instead of ack", ErrProtocol, m.Janus)
			}
			if err != nil {
				if c.ctx.Err() == nil {
					c.fail(err)
				}
				return
			}
		}
	}()
}

// quiet marks the connection as ending on purpose: its end is then not
// logged as a failure.
func (c *conn) quiet() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
}

// sessionID returns the Janus session id, 0 before create.
func (c *conn) sessionID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// close ends the connection and waits for its goroutines; later calls do
// nothing.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.quiet()
		c.fail(fmt.Errorf("%w: closed by this side", ErrClosed))
		c.cancel()
		if err := c.t.close(); err != nil {
			c.logger.Debug("close janus transport", "err", err)
		}
		c.wg.Wait()
	})
}
