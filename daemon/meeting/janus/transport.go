package janus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// MaxMessageSize bounds one message from Janus. Its largest replies carry
// an SDP of a few kilobytes per stream; a megabyte is a broken or hostile
// server.
const MaxMessageSize = 1 << 20

// subprotocol is what Janus's WebSocket transport requires.
const subprotocol = "janus-protocol"

// writeTimeout bounds one WebSocket write: a socket that takes longer to
// accept a few kilobytes is dead.
const writeTimeout = 10 * time.Second

// transport carries Janus API messages; the conn above it matches replies
// to requests, so a transport only moves bytes.
type transport interface {
	// send delivers one request.
	send(ctx context.Context, req *request) error
	// recv returns the next message from Janus, replies and events alike,
	// in the order the transport got them.
	recv(ctx context.Context) ([]byte, error)
	// close ends the transport and any goroutine it started.
	close() error
}

// wsTransport is the Janus API over one WebSocket.
type wsTransport struct {
	c *websocket.Conn
}

func dialWS(ctx context.Context, api *url.URL, client *http.Client) (*wsTransport, error) {
	c, _, err := websocket.Dial(ctx, api.String(), &websocket.DialOptions{
		HTTPClient:   client,
		Subprotocols: []string{subprotocol},
	})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", api.Redacted(), err)
	}
	if c.Subprotocol() != subprotocol {
		_ = c.Close(websocket.StatusProtocolError, "janus-protocol required")
		return nil, fmt.Errorf("connect to %s: the server did not accept the %q subprotocol; is this a Janus WebSocket endpoint?", api.Redacted(), subprotocol)
	}
	c.SetReadLimit(MaxMessageSize)
	return &wsTransport{c: c}, nil
}

func (w *wsTransport) send(ctx context.Context, req *request) error {
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s: %w", req.Janus, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// coder/websocket closes the whole connection when a Write's context
	// ends around the write (coder/websocket#474): a request its caller
	// gives up on must not take the session down. Writes get their own
	// bound instead.
	wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := w.c.Write(wctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("%w: send %s: %v", ErrClosed, req.Janus, err)
	}
	return nil
}

func (w *wsTransport) recv(ctx context.Context) ([]byte, error) {
	_, b, err := w.c.Read(ctx)
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, websocket.ErrMessageTooBig):
		return nil, fmt.Errorf("%w: over %d bytes", ErrMessageTooLarge, MaxMessageSize)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case websocket.CloseStatus(err) != -1:
		return nil, fmt.Errorf("%w: the server closed the WebSocket (%v)", ErrClosed, websocket.CloseStatus(err))
	default:
		return nil, fmt.Errorf("%w: %v", ErrClosed, err)
	}
}

func (w *wsTransport) close() error {
	// The Janus session is gone or going by now; a close handshake would
	// only wait for a server that may not answer.
	return w.c.CloseNow()
}

// httpTransport is the Janus API over HTTP: requests are POSTs whose
// response bodies are the replies, and events come from a long poll
// (GET /janus/<session>) that starts once the session exists.
type httpTransport struct {
	base   *url.URL
	client *http.Client

	in chan []byte // replies and events, for recv

	ctx    context.Context // ends at close: stops the poll and pending sends
	cancel context.CancelFunc
	wg     sync.WaitGroup

	pollOnce   sync.Once
	pollCtx    context.Context // ends at close or before destroy
	pollCancel context.CancelFunc
	pollErr    chan error // the poll's end, once
}

// pollMaxEvents is how many events one long poll may return.
const pollMaxEvents = 16

func newHTTPTransport(api *url.URL, client *http.Client) *httpTransport {
	ctx, cancel := context.WithCancel(context.Background())
	pollCtx, pollCancel := context.WithCancel(ctx)
	return &httpTransport{
		base:       api,
		client:     client,
		in:         make(chan []byte, 32),
		ctx:        ctx,
		cancel:     cancel,
		pollCtx:    pollCtx,
		pollCancel: pollCancel,
		pollErr:    make(chan error, 1),
	}
}

func (h *httpTransport) endpoint(session, handle uint64) string {
	u := *h.base
	if session != 0 {
		u = *u.JoinPath(strconv.FormatUint(session, 10))
	}
	if handle != 0 {
		u = *u.JoinPath(strconv.FormatUint(handle, 10))
	}
	return u.String()
}

func (h *httpTransport) send(ctx context.Context, req *request) error {
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s: %w", req.Janus, err)
	}
	if req.Janus == "destroy" {
		// Janus ends the session's long poll as it destroys it: stop the
		// poll first, so that its end is not taken for a failure racing
		// the destroy's own reply.
		h.pollCancel()
	}
	ctx, stop := mergeCancel(ctx, h.ctx)
	defer stop()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.endpoint(req.SessionID, req.HandleID), bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("send %s: %w", req.Janus, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	body, err := h.do(hr)
	if err != nil {
		return fmt.Errorf("send %s: %w", req.Janus, err)
	}
	// Only once the session exists does Janus have events to hand out.
	if req.SessionID != 0 && h.pollCtx.Err() == nil {
		h.pollOnce.Do(func() {
			h.wg.Add(1)
			go h.poll(req.SessionID)
		})
	}
	select {
	case h.in <- body:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("send %s: %w", req.Janus, ctx.Err())
	}
}

// do runs one HTTP exchange and returns the body of a 200 response.
func (h *httpTransport) do(req *http.Request) ([]byte, error) {
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrClosed, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxMessageSize*pollMaxEvents+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read response: %v", ErrClosed, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s %s answered %s: %s", ErrClosed, req.Method, redactURL(req.URL), resp.Status, snippet(body))
	}
	if len(body) > MaxMessageSize*pollMaxEvents {
		return nil, fmt.Errorf("%w: over %d bytes", ErrMessageTooLarge, MaxMessageSize*pollMaxEvents)
	}
	return body, nil
}

// poll long-polls the session's events until close or an error.
func (h *httpTransport) poll(session uint64) {
	defer h.wg.Done()
	for {
		u, _ := url.Parse(h.endpoint(session, 0))
		q := u.Query()
		q.Set("maxev", strconv.Itoa(pollMaxEvents))
		// Defeats caches between us and Janus, as janus.js does.
		q.Set("rid", strconv.FormatInt(time.Now().UnixNano(), 10))
		u.RawQuery = q.Encode()
		req, err := http.NewRequestWithContext(h.pollCtx, http.MethodGet, u.String(), nil)
		if err != nil {
			h.pollErr <- fmt.Errorf("long poll: %w", err)
			return
		}
		body, err := h.do(req)
		if err != nil {
			if h.pollCtx.Err() == nil {
				h.pollErr <- fmt.Errorf("long poll: %w", err)
			}
			return
		}
		msgs, err := splitEvents(body)
		if err != nil {
			h.pollErr <- fmt.Errorf("long poll: %w", err)
			return
		}
		for _, m := range msgs {
			if len(m) > MaxMessageSize {
				h.pollErr <- fmt.Errorf("long poll: %w: over %d bytes", ErrMessageTooLarge, MaxMessageSize)
				return
			}
			select {
			case h.in <- m:
			case <-h.pollCtx.Done():
				return
			}
		}
		if gone(msgs) {
			// Janus answers a poll on a destroyed session at once, forever.
			h.pollErr <- fmt.Errorf("%w: the Janus session no longer exists", ErrClosed)
			return
		}
	}
}

// splitEvents reads a long poll's body: an array of messages, or with
// some servers a single one.
func splitEvents(body []byte) ([]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		var msgs []json.RawMessage
		if err := json.Unmarshal(body, &msgs); err != nil {
			return nil, fmt.Errorf("%w: %v: %s", ErrProtocol, err, snippet(body))
		}
		return msgs, nil
	}
	return []json.RawMessage{body}, nil
}

// gone reports whether the poll answered "no such session" (458).
func gone(msgs []json.RawMessage) bool {
	for _, raw := range msgs {
		var m struct {
			Janus string     `json:"janus"`
			Error *coreError `json:"error"`
		}
		if json.Unmarshal(raw, &m) == nil && m.Janus == "error" && m.Error != nil && m.Error.Code == 458 {
			return true
		}
	}
	return false
}

func (h *httpTransport) recv(ctx context.Context) ([]byte, error) {
	// Replies and events already received come before the poll's end.
	select {
	case b := <-h.in:
		return b, nil
	default:
	}
	select {
	case b := <-h.in:
		return b, nil
	case err := <-h.pollErr:
		h.pollErr <- err
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (h *httpTransport) close() error {
	h.cancel()
	h.wg.Wait()
	return nil
}

// mergeCancel returns a context that ends with ctx or with also.
func mergeCancel(ctx, also context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(also, func() { cancel(ErrClosed) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

func redactURL(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	return c.Redacted()
}
