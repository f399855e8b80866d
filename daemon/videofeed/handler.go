package videofeed

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// closeTimeout bounds a close handshake.
const closeTimeout = time.Second

// hijackWatcher keeps the connection that websocket.Accept hijacks, so
// that a close handshake can be given a deadline.
type hijackWatcher struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijackWatcher) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.conn = conn
	return conn, rw, err
}

func (h *hijackWatcher) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// Handler returns the WebSocket endpoint (GET /api/v1/media/video); see the
// package documentation for the protocol. Each connection is served in
// its handler's goroutine and one reading goroutine, both ended by the
// handler before it returns.
func (f *Feed) Handler() http.Handler { return http.HandlerFunc(f.serve) }

func (f *Feed) serve(w http.ResponseWriter, r *http.Request) {
	c, detail := f.reserve(r.RemoteAddr)
	if c == nil {
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(apiv1.Problem{
			Type: apiv1.ProblemUnavailable, Title: "Video feed unavailable", Status: http.StatusServiceUnavailable,
			Detail: detail, Instance: r.URL.Path,
		})
		return
	}
	defer f.release(c)

	// The video is incompressible, so no permessage-deflate.
	hw := &hijackWatcher{ResponseWriter: w}
	conn, err := websocket.Accept(hw, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		// Accept wrote the response (403 for another origin, 4xx for a
		// request that is no WebSocket handshake).
		f.log.Debug("video client refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	conn.SetReadLimit(MaxClientMessage)
	// closeConn closes with a close handshake bounded by closeTimeout:
	// coder/websocket would wait 5 s for a client that does not answer.
	closeConn := func(status websocket.StatusCode, reason string) error {
		if hw.conn != nil {
			_ = hw.conn.SetDeadline(time.Now().Add(closeTimeout))
		}
		return conn.Close(status, reason)
	}

	// ctx ends with the request (r.Context stays valid after the hijack
	// until this handler returns) or with the Feed.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(f.ctx, cancel)
	defer stop()

	f.attach(c, cancel)
	defer f.detach(c)
	f.log.Info("video client connected", "client", c.id, "remote", c.remote)

	// The reader has its own context: cancelling a read closes the
	// connection at once, and the close handshake below needs it open.
	readCtx, stopRead := context.WithCancel(context.Background())
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		f.readLoop(readCtx, conn, c, closeConn)
	}()

	status, reason := f.writeLoop(ctx, conn, c, readDone)
	if status != 0 {
		err = closeConn(status, reason)
	} else {
		err = conn.CloseNow()
	}
	stopRead()
	<-readDone
	f.log.Info("video client disconnected", "client", c.id, "sent", c.sent.Load(), "dropped", c.dropped.Load(),
		"keyframe_requests", c.keyframeRequests.Load(), "close_err", err)
}

// reserve takes a client slot, or returns nil and why not.
func (f *Feed) reserve(remote string) (*client, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, "the video feed is shutting down"
	}
	if f.slots >= f.maxClients {
		f.log.Warn("video client refused: too many clients", "remote", remote, "max", f.maxClients)
		return nil, "too many video clients"
	}
	f.slots++
	f.wg.Add(1)
	f.lastID++
	return &client{id: f.lastID, remote: remote, connected: time.Now(), notify: make(chan struct{}, 1)}, ""
}

func (f *Feed) release(*client) {
	f.mu.Lock()
	f.slots--
	f.mu.Unlock()
	f.wg.Done()
}

// attach makes c receive messages, starting with the list of tracks, and
// asks for a keyframe of each.
func (f *Feed) attach(c *client, cancel context.CancelFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.cancel = cancel
	c.waitKey = map[uint16]bool{}
	msg := tracksMessage{Type: typeTracks, Tracks: make([]trackJSON, 0, len(f.tracks))}
	for _, t := range f.tracks {
		msg.Tracks = append(msg.Tracks, t.json())
	}
	sortTracks(msg.Tracks)
	f.clients[c] = struct{}{}
	f.pushLocked(c, outMessage{data: mustJSON(msg)})
	for _, t := range f.tracks {
		c.waitKey[t.n] = true
		f.wantLocked(t, c)
	}
	f.kickControl()
}

func (f *Feed) detach(c *client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.clients, c)
	c.queue = queue{}
	if c.view != nil {
		f.viewChangedLocked()
	} else {
		f.kickControl()
	}
}

// writeLoop writes c's queue until ctx ends (it returns 1001), a write
// fails or the reader ended (it returns 0: the connection is done for).
func (f *Feed) writeLoop(ctx context.Context, conn *websocket.Conn, c *client, readDone <-chan struct{}) (websocket.StatusCode, string) {
	for {
		select {
		case <-ctx.Done():
			return websocket.StatusGoingAway, "video feed closing"
		case <-readDone:
			return 0, ""
		case <-c.notify:
		}
		for {
			if ctx.Err() != nil {
				return websocket.StatusGoingAway, "video feed closing"
			}
			f.mu.Lock()
			m, ok := c.queue.pop()
			f.mu.Unlock()
			if !ok {
				break
			}
			typ := websocket.MessageText
			if m.frame {
				typ = websocket.MessageBinary
			}
			wctx, cancel := context.WithTimeout(ctx, f.writeTimeout)
			err := conn.Write(wctx, typ, m.data)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					f.log.Info("video client write failed", "client", c.id, "err", err)
				}
				return 0, ""
			}
			if m.frame {
				c.sent.Add(1)
				c.bytesSent.Add(uint64(len(m.data)))
			}
		}
	}
}

// readLoop handles c's messages until the connection fails or c breaks
// the protocol, which closes the connection.
func (f *Feed) readLoop(ctx context.Context, conn *websocket.Conn, c *client, closeConn func(websocket.StatusCode, string) error) {
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			// A client leaving, a message over the limit (coder/websocket
			// closed with 1009), or the end of the handler.
			f.log.Debug("video client read", "client", c.id, "err", err)
			return
		}
		if typ != websocket.MessageText {
			f.log.Info("video client sent a binary message; closing", "client", c.id)
			_ = closeConn(websocket.StatusUnsupportedData, "binary messages are not accepted")
			return
		}
		m, err := parseClientMessage(data)
		if err != nil {
			f.log.Info("video client broke the protocol; closing", "client", c.id, "err", err)
			_ = closeConn(websocket.StatusPolicyViolation, truncate(err.Error(), maxCloseReason))
			return
		}
		f.handle(c, m)
	}
}

// handle applies a client message.
func (f *Feed) handle(c *client, m clientMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch m.Type {
	case typeKeyframe:
		t := f.byNum[m.Track]
		if t == nil {
			return
		}
		if c.subscribedLocked(t.n) {
			c.waitKey[t.n] = true
		}
		if t.want {
			// Joins the pending request, but the client did ask.
			c.keyframeRequests.Add(1)
		}
		f.wantLocked(t, c)
	case typeSubscribe, typeView:
		var subs map[uint16]bool
		if !m.All {
			subs = map[uint16]bool{}
			for _, n := range m.Tracks {
				if f.byNum[n] != nil {
					subs[n] = true
				}
			}
		}
		if m.Type == typeView {
			view := make(map[uint16]viewSize, len(subs))
			for n := range subs {
				view[n] = m.Sizes[n]
			}
			c.view, c.viewAdds = view, f.adds
			f.viewChangedLocked()
		} else if c.view != nil {
			c.view = nil
			f.viewChangedLocked()
		}
		for n, t := range f.byNum {
			was, is := c.subscribedLocked(n), subs == nil || subs[n]
			switch {
			case is && !was:
				c.waitKey[n] = true
				f.wantLocked(t, c)
			case was && !is:
				delete(c.waitKey, n)
			}
		}
		c.subs = subs
	}
}
