package janus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/meeting/janus"
)

// fakeJanus is an in-process Janus speaking just enough of the API for the
// protocol tests, over WebSocket and HTTP long poll. By default it plays a
// well-behaved VideoRoom; a test's onRequest can answer any request its own
// way (return true when it did).
type fakeJanus struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	onRequest  func(c *fakeConn, r fakeRequest) bool
	publishers []map[string]any // in "joined"
	requests   []fakeRequest
	conns      []*fakeConn
	nextID     uint64
	offers     int
	seen       chan struct{} // pinged on every request
}

// fakeRequest is one request as the fake got it.
type fakeRequest struct {
	Janus       string         `json:"janus"`
	Transaction string         `json:"transaction"`
	SessionID   uint64         `json:"session_id"`
	HandleID    uint64         `json:"handle_id"`
	Plugin      string         `json:"plugin"`
	Body        map[string]any `json:"body"`
	JSEP        *struct {
		Type    string `json:"type"`
		SDP     string `json:"sdp"`
		Trickle *bool  `json:"trickle"`
	} `json:"jsep"`
}

// name is the request's name: the VideoRoom request for messages.
func (r fakeRequest) name() string {
	if r.Janus == "message" {
		req, _ := r.Body["request"].(string)
		if req == "join" {
			return "join " + fmt.Sprint(r.Body["ptype"])
		}
		return req
	}
	return r.Janus
}

func newFakeJanus(t *testing.T) *fakeJanus {
	f := &fakeJanus{t: t, nextID: 100, seen: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", f.serveWS)
	mux.HandleFunc("/janus", f.serveHTTP)
	mux.HandleFunc("/janus/", f.serveHTTP)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.mu.Lock()
		conns := f.conns
		f.mu.Unlock()
		for _, c := range conns {
			c.close()
		}
		f.srv.Close()
	})
	return f
}

// wsURL is a meeting URL for the fake's WebSocket API.
func (f *fakeJanus) wsURL(query string) string {
	return "janus+ws://" + strings.TrimPrefix(f.srv.URL, "http://") + "/ws?" + query
}

// httpURL is a meeting URL for the fake's HTTP API.
func (f *fakeJanus) httpURL(query string) string {
	return "janus+http://" + strings.TrimPrefix(f.srv.URL, "http://") + "/janus?" + query
}

func (f *fakeJanus) id() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	return f.nextID
}

func (f *fakeJanus) setHandler(h func(c *fakeConn, r fakeRequest) bool) {
	f.mu.Lock()
	f.onRequest = h
	f.mu.Unlock()
}

// got returns the names of the requests so far, keepalives left out.
func (f *fakeJanus) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for _, r := range f.requests {
		if r.Janus != "keepalive" {
			names = append(names, r.name())
		}
	}
	return names
}

// find returns the requests named name.
func (f *fakeJanus) find(name string) []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeRequest
	for _, r := range f.requests {
		if r.name() == name {
			out = append(out, r)
		}
	}
	return out
}

// conn returns the latest connection.
func (f *fakeJanus) conn() *fakeConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.conns) == 0 {
		return nil
	}
	return f.conns[len(f.conns)-1]
}

func (f *fakeJanus) handle(c *fakeConn, r fakeRequest) {
	f.mu.Lock()
	f.requests = append(f.requests, r)
	h := f.onRequest
	f.mu.Unlock()
	select {
	case f.seen <- struct{}{}:
	default:
	}
	if h != nil && h(c, r) {
		return
	}
	f.standard(c, r)
}

// standard is a well-behaved Janus.
func (f *fakeJanus) standard(c *fakeConn, r fakeRequest) {
	switch r.Janus {
	case "create":
		id := f.id()
		c.setSession(id)
		c.send(map[string]any{"janus": "success", "transaction": r.Transaction, "data": map[string]any{"id": id}})
	case "attach":
		id := f.id()
		c.addHandle(id)
		c.send(map[string]any{"janus": "success", "transaction": r.Transaction, "session_id": r.SessionID, "data": map[string]any{"id": id}})
	case "keepalive":
		c.send(map[string]any{"janus": "ack", "transaction": r.Transaction, "session_id": r.SessionID})
	case "detach", "destroy":
		c.send(map[string]any{"janus": "success", "transaction": r.Transaction, "session_id": r.SessionID})
	case "message":
		c.ack(r)
		switch r.name() {
		case "join publisher":
			f.mu.Lock()
			pubs := f.publishers
			f.mu.Unlock()
			if pubs == nil {
				pubs = []map[string]any{}
			}
			c.event(r.HandleID, r.Transaction, map[string]any{
				"videoroom": "joined", "room": r.Body["room"], "description": "Fake Room",
				"id": 42, "private_id": 4242, "publishers": pubs,
			}, nil)
		case "publish":
			c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "event", "room": 1234, "configured": "ok"},
				map[string]any{"type": "answer", "sdp": "fake-answer"})
		case "join subscriber":
			c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "attached", "room": 1234, "streams": f.layout(r)},
				f.offer())
		case "subscribe", "unsubscribe":
			c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "updated", "room": 1234, "streams": f.layout(r)},
				f.offer())
		case "configure":
			switch {
			case r.HandleID == c.handle(0) && r.JSEP != nil:
				c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "event", "room": 1234, "configured": "ok"},
					map[string]any{"type": "answer", "sdp": "fake-restart-answer"})
			case r.HandleID == c.handle(1) && r.Body["restart"] == true:
				// As Janus 1.1.2 does (TestRealJanusRestartICE).
				offer := f.offer()
				offer["restart"] = true
				c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "event", "room": 1234, "configured": "ok"}, offer)
			default:
				c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "event", "room": 1234, "configured": "ok"}, nil)
			}
		case "start":
			c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "event", "room": 1234, "started": "ok"}, nil)
		case "leave":
			c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "event", "room": 1234, "leaving": "ok"}, nil)
		default:
			c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "event", "error_code": 423, "error": "Unknown request"}, nil)
		}
	default:
		c.send(map[string]any{"janus": "error", "transaction": r.Transaction, "error": map[string]any{"code": 457, "reason": "Unknown request"}})
	}
}

// layout is the subscription layout a subscribe or join lists: two
// streams (audio, video) per feed asked for, numbered by feed.
func (f *fakeJanus) layout(r fakeRequest) []map[string]any {
	var out []map[string]any
	streams, _ := r.Body["streams"].([]any)
	for _, s := range streams {
		m, _ := s.(map[string]any)
		feed, ok := m["feed"]
		if !ok {
			continue
		}
		for i, typ := range []string{"audio", "video"} {
			out = append(out, map[string]any{
				"mid": fmt.Sprintf("%v-%d", feed, i), "type": typ, "active": true,
				"feed_id": feed, "feed_mid": strconv.Itoa(i), "feed_display": fmt.Sprintf("Feed %v", feed),
			})
		}
	}
	return out
}

func (f *fakeJanus) offer() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offers++
	return map[string]any{"type": "offer", "sdp": fmt.Sprintf("fake-offer-%d", f.offers)}
}

// waitFor waits until some request is named name and returns it.
func (f *fakeJanus) waitFor(t *testing.T, name string) fakeRequest {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if rs := f.find(name); len(rs) > 0 {
			return rs[len(rs)-1]
		}
		select {
		case <-f.seen:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %q request; got %v", name, f.got())
		}
	}
}

// fakeConn is one client connection: a WebSocket, or an HTTP client's
// session (replies are POST bodies, the rest goes to the long poll).
type fakeConn struct {
	f  *fakeJanus
	ws *websocket.Conn

	mu      sync.Mutex
	session uint64
	handles []uint64
	reply   chan []byte // HTTP: the pending POST's body
	events  [][]byte    // HTTP: for the long poll
	evReady chan struct{}
	closed  bool
}

func (c *fakeConn) setSession(id uint64) {
	c.mu.Lock()
	c.session = id
	c.mu.Unlock()
}

func (c *fakeConn) addHandle(id uint64) {
	c.mu.Lock()
	c.handles = append(c.handles, id)
	c.mu.Unlock()
}

// handle returns the i-th handle attached: 0 publisher, 1 subscriber.
func (c *fakeConn) handle(i int) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i >= len(c.handles) {
		return 0
	}
	return c.handles[i]
}

func (c *fakeConn) ack(r fakeRequest) {
	c.send(map[string]any{"janus": "ack", "transaction": r.Transaction, "session_id": r.SessionID})
}

// event sends a VideoRoom event from handle.
func (c *fakeConn) event(handle uint64, tx string, data map[string]any, jsep map[string]any) {
	m := map[string]any{
		"janus": "event", "session_id": c.session, "sender": handle,
		"plugindata": map[string]any{"plugin": "janus.plugin.videoroom", "data": data},
	}
	if tx != "" {
		m["transaction"] = tx
	}
	if jsep != nil {
		m["jsep"] = jsep
	}
	c.send(m)
}

// core sends a core event (webrtcup, hangup...) from handle.
func (c *fakeConn) core(kind string, handle uint64, fields map[string]any) {
	m := map[string]any{"janus": kind, "session_id": c.session, "sender": handle}
	for k, v := range fields {
		m[k] = v
	}
	c.send(m)
}

func (c *fakeConn) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	c.sendRaw(b)
}

func (c *fakeConn) sendRaw(b []byte) {
	if c.ws != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.ws.Write(ctx, websocket.MessageText, b)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reply != nil {
		c.reply <- b
		c.reply = nil
		return
	}
	c.events = append(c.events, b)
	select {
	case c.evReady <- struct{}{}:
	default:
	}
}

// close drops the connection, as a crashing server would.
func (c *fakeConn) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	if c.ws != nil {
		_ = c.ws.CloseNow()
	}
}

func (f *fakeJanus) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"janus-protocol"}})
	if err != nil {
		return
	}
	ws.SetReadLimit(-1)
	c := &fakeConn{f: f, ws: ws}
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
	defer ws.CloseNow()
	for {
		_, b, err := ws.Read(context.Background())
		if err != nil {
			return
		}
		var req fakeRequest
		if err := json.Unmarshal(b, &req); err != nil {
			f.t.Errorf("fake janus: bad request %q: %v", b, err)
			return
		}
		f.handle(c, req)
	}
}

// serveHTTP is the HTTP transport: one fakeConn per Janus session.
func (f *fakeJanus) serveHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/janus"), "/"), "/")
	var session, handle uint64
	if len(parts) > 0 && parts[0] != "" {
		session, _ = strconv.ParseUint(parts[0], 10, 64)
	}
	if len(parts) > 1 {
		handle, _ = strconv.ParseUint(parts[1], 10, 64)
	}
	c := f.httpConn(session)
	switch r.Method {
	case http.MethodGet:
		if c == nil {
			fmt.Fprint(w, `{"janus":"error","error":{"code":458,"reason":"No such session"}}`)
			return
		}
		select {
		case <-c.evReady:
		case <-time.After(time.Second):
		case <-r.Context().Done():
			return
		}
		c.mu.Lock()
		evs := c.events
		c.events = nil
		c.mu.Unlock()
		if len(evs) == 0 {
			evs = [][]byte{[]byte(`{"janus":"keepalive"}`)}
		}
		fmt.Fprintf(w, "[%s]", joinBytes(evs))
	case http.MethodPost:
		b, _ := io.ReadAll(r.Body)
		var req fakeRequest
		if err := json.Unmarshal(b, &req); err != nil {
			f.t.Errorf("fake janus: bad request %q: %v", b, err)
			return
		}
		if session != 0 {
			req.SessionID = session
		}
		if handle != 0 {
			req.HandleID = handle
		}
		if c == nil {
			c = &fakeConn{f: f, evReady: make(chan struct{}, 1)}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
		}
		reply := make(chan []byte, 1)
		c.mu.Lock()
		c.reply = reply
		c.mu.Unlock()
		go f.handle(c, req)
		select {
		case b := <-reply:
			w.Write(b)
		case <-time.After(5 * time.Second):
			http.Error(w, "no reply", http.StatusGatewayTimeout)
		case <-r.Context().Done():
		}
	}
}

func (f *fakeJanus) httpConn(session uint64) *fakeConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.mu.Lock()
		s := c.session
		c.mu.Unlock()
		if c.ws == nil && s == session && session != 0 {
			return c
		}
	}
	return nil
}

func joinBytes(bs [][]byte) string {
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = string(b)
	}
	return strings.Join(s, ",")
}

// fakePeers is a meeting.PeerFactory whose peers record the SDP they see.
type fakePeers struct {
	mu      sync.Mutex
	peers   []*fakePeer
	newErr  error
	created int
}

func (f *fakePeers) NewPeer(_ context.Context, opts meeting.PeerOptions) (meeting.Peer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.newErr != nil {
		return nil, f.newErr
	}
	f.created++
	p := &fakePeer{opts: opts, state: make(chan meeting.PeerState, 8)}
	f.peers = append(f.peers, p)
	return p, nil
}

func (f *fakePeers) peer(label string) *fakePeer {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.peers {
		if p.opts.Label == label {
			return p
		}
	}
	return nil
}

type fakePeer struct {
	opts  meeting.PeerOptions
	state chan meeting.PeerState

	mu         sync.Mutex
	accepted   []string
	offered    []string // offers given to Answer
	answerErr  error
	restarts   int
	restartErr error
	closed     bool
}

func (p *fakePeer) Offer(context.Context) (string, error) {
	return "fake-offer-from-" + p.opts.Label, nil
}

func (p *fakePeer) Accept(_ context.Context, sdp string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.accepted = append(p.accepted, sdp)
	return nil
}

func (p *fakePeer) Answer(_ context.Context, offer string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.answerErr != nil {
		return "", p.answerErr
	}
	p.offered = append(p.offered, offer)
	return fmt.Sprintf("fake-answer-%d", len(p.offered)), nil
}

func (p *fakePeer) RestartICE(context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.restartErr != nil {
		return "", p.restartErr
	}
	p.restarts++
	return fmt.Sprintf("fake-restart-offer-%d-from-%s", p.restarts, p.opts.Label), nil
}

func (p *fakePeer) accepts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.accepted...)
}

func (p *fakePeer) State() <-chan meeting.PeerState { return p.state }

func (p *fakePeer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.state)
	}
	return nil
}

func (p *fakePeer) offers() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.offered...)
}

func (p *fakePeer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// newFakeProvider returns a provider for the fake with fast timeouts.
func newFakeProvider(t *testing.T, cfg janus.Config) (*janus.Provider, *fakePeers, *logRecorder) {
	t.Helper()
	peers := &fakePeers{}
	logger, rec := newLogger(t)
	if cfg.DisplayName == "" {
		cfg.DisplayName = "Atrium Test"
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 2 * time.Second
	}
	p, err := janus.New(cfg, func(context.Context) (meeting.PeerFactory, error) { return peers, nil }, logger)
	if err != nil {
		t.Fatal(err)
	}
	return p, peers, rec
}
