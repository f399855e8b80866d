package kioskbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The bench's Janus room, created through the VideoRoom API because the
// rooms in test/janustest's configuration allow 6 publishers at
// 256 kbit/s: too few and too little for nine 720p streams.
const (
	benchRoom        = 7200
	benchRoomBitrate = 2_000_000 // bit/s per publisher, what Janus advertises in REMB
	benchRoomSlots   = 16        // publishers: 9 guests, roomd or Chromium, and spare
)

// keepaliveEvery is below Janus's default 60 s session timeout.
const keepaliveEvery = 20 * time.Second

// errJanus is wrapped by every error that Janus itself answered.
var errJanus = errors.New("janus refused")

// janusSession is one Janus session on its own WebSocket, attached to the
// VideoRoom plugin: enough to create a room and publish into it. Janus's
// answers are matched to requests by transaction; everything else it sends
// (webrtcup, media, slowlink events) is dropped.
type janusSession struct {
	conn    *websocket.Conn
	session int64
	handle  int64
	next    atomic.Int64

	mu      sync.Mutex
	waiters map[string]chan map[string]any

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// dialJanus opens a session and attaches the VideoRoom plugin. The
// session's reader and keepalive goroutines run until close.
func dialJanus(ctx context.Context, wsURL string) (*janusSession, error) {
	conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{"janus-protocol"}})
	if err != nil {
		return nil, fmt.Errorf("dial janus %s: %w", wsURL, err)
	}
	conn.SetReadLimit(1 << 20)
	lctx, cancel := context.WithCancel(context.Background())
	s := &janusSession{conn: conn, waiters: map[string]chan map[string]any{}, cancel: cancel}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.read(lctx)
	}()
	reply, err := s.request(ctx, map[string]any{"janus": "create"}, false)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("janus create session: %w", err)
	}
	s.session = idOf(reply)
	reply, err = s.request(ctx, map[string]any{"janus": "attach", "plugin": "janus.plugin.videoroom"}, false)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("janus attach videoroom: %w", err)
	}
	s.handle = idOf(reply)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.keepalive(lctx)
	}()
	return s, nil
}

func idOf(reply map[string]any) int64 {
	data, _ := reply["data"].(map[string]any)
	id, _ := data["id"].(float64)
	return int64(id)
}

func (s *janusSession) read(ctx context.Context) {
	for {
		_, raw, err := s.conn.Read(ctx)
		if err != nil {
			return
		}
		var msg map[string]any
		if json.Unmarshal(raw, &msg) != nil {
			continue
		}
		tx, _ := msg["transaction"].(string)
		if ch, ok := s.waiterFor(tx); ok {
			select {
			case ch <- msg:
			default:
			}
		}
	}
}

func (s *janusSession) waiterFor(tx string) (chan map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.waiters[tx]
	return ch, ok
}

func (s *janusSession) keepalive(ctx context.Context) {
	t := time.NewTicker(keepaliveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, _ = s.request(wctx, map[string]any{"janus": "keepalive"}, false)
			cancel()
		}
	}
}

// request sends msg with a fresh transaction and the session's ids, and
// returns Janus's answer: for a plugin message with async set, the event
// that follows the ack. An "error" answer, or a plugin answer carrying
// error_code, is returned as an error wrapping errJanus.
func (s *janusSession) request(ctx context.Context, msg map[string]any, async bool) (map[string]any, error) {
	tx := "kb" + strconv.FormatInt(s.next.Add(1), 10)
	msg["transaction"] = tx
	if s.session != 0 {
		msg["session_id"] = s.session
	}
	if s.handle != 0 && msg["janus"] == "message" {
		msg["handle_id"] = s.handle
	}
	ch := make(chan map[string]any, 4)
	s.mu.Lock()
	s.waiters[tx] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, tx)
		s.mu.Unlock()
	}()
	raw, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode %v: %w", msg["janus"], err)
	}
	if err := s.conn.Write(ctx, websocket.MessageText, raw); err != nil {
		return nil, fmt.Errorf("send %v: %w", msg["janus"], err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no answer to %v: %w", msg["janus"], ctx.Err())
		case reply := <-ch:
			kind, _ := reply["janus"].(string)
			switch {
			case kind == "error":
				return nil, fmt.Errorf("%w: %v", errJanus, reply["error"])
			case kind == "ack" && async:
				continue
			}
			if pd, ok := reply["plugindata"].(map[string]any); ok {
				if data, ok := pd["data"].(map[string]any); ok && data["error_code"] != nil {
					return reply, fmt.Errorf("%w: %v (code %v)", errJanus, data["error"], data["error_code"])
				}
			}
			return reply, nil
		}
	}
}

// message sends a VideoRoom request, with an SDP when jsep is not nil.
func (s *janusSession) message(ctx context.Context, body map[string]any, jsep map[string]any, async bool) (map[string]any, error) {
	msg := map[string]any{"janus": "message", "body": body}
	if jsep != nil {
		msg["jsep"] = jsep
	}
	return s.request(ctx, msg, async)
}

// createRoom creates the bench's room; a room that exists already (code
// 427) is fine, as the harness may create it from several places.
func (s *janusSession) createRoom(ctx context.Context) error {
	reply, err := s.message(ctx, map[string]any{
		"request":    "create",
		"room":       benchRoom,
		"publishers": benchRoomSlots,
		"bitrate":    benchRoomBitrate,
		"fir_freq":   10,
		"videocodec": "vp8",
		"audiocodec": "opus",
		"record":     false,
	}, nil, false)
	if err != nil {
		if pd, ok := reply["plugindata"].(map[string]any); ok {
			if data, ok := pd["data"].(map[string]any); ok && data["error_code"] == float64(427) {
				return nil
			}
		}
		return fmt.Errorf("create room %d: %w", benchRoom, err)
	}
	return nil
}

// publish joins the bench room as a publisher named display and publishes
// offer, returning Janus's answer SDP.
func (s *janusSession) publish(ctx context.Context, display, offer string) (string, error) {
	if _, err := s.message(ctx, map[string]any{"request": "join", "ptype": "publisher", "room": benchRoom, "display": display}, nil, true); err != nil {
		return "", fmt.Errorf("join room %d as %q: %w", benchRoom, display, err)
	}
	reply, err := s.message(ctx, map[string]any{"request": "publish", "audio": false, "video": true},
		map[string]any{"type": "offer", "sdp": offer}, true)
	if err != nil {
		return "", fmt.Errorf("publish %q: %w", display, err)
	}
	jsep, _ := reply["jsep"].(map[string]any)
	answer, _ := jsep["sdp"].(string)
	if answer == "" {
		return "", fmt.Errorf("publish %q: Janus answered without an SDP: %v", display, reply)
	}
	return answer, nil
}

// close destroys the session (Janus then drops the publisher at once) and
// ends the goroutines.
func (s *janusSession) close() {
	if s.session != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, _ = s.request(ctx, map[string]any{"janus": "destroy"}, false)
		cancel()
	}
	s.cancel()
	_ = s.conn.Close(websocket.StatusNormalClosure, "")
	s.wg.Wait()
}
