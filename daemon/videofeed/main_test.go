package videofeed

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/daemon/meeting/rtc"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/test/syncbuf"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkLeaks fails the test if it leaves goroutines behind. Called first, it
// runs as the last cleanup, after the clients, the Feed and the server.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// testContext bounds a test.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// testLogger collects logs, printed only when the test fails (or with
// VIDEOFEED_TEST_LOGS set), so nothing logs through t after it ended.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	b := &syncbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("VIDEOFEED_TEST_LOGS") != "" {
			t.Logf("logs:\n%s", b.String())
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestFeed returns a Feed served by an httptest.Server; both close at
// cleanup. adjust, if not nil, changes the Feed's limits before use.
func newTestFeed(t *testing.T, adjust func(*Feed)) (*Feed, *httptest.Server) {
	t.Helper()
	f := New(testLogger(t))
	if adjust != nil {
		adjust(f)
	}
	srv := httptest.NewServer(f.Handler())
	t.Cleanup(func() {
		_ = f.Close()
		srv.Close()
	})
	return f, srv
}

func wsURL(srv *httptest.Server) string { return "ws" + strings.TrimPrefix(srv.URL, "http") + "/" }

// fakeTrack is a remote track whose keyframe requests are recorded.
type fakeTrack struct {
	info rtc.TrackInfo

	mu    sync.Mutex
	calls []time.Time
}

func newFakeTrack(peer, id, participant string, codec hal.Codec) *fakeTrack {
	ft := &fakeTrack{}
	ft.info = rtc.TrackInfo{ID: id, StreamID: participant, PeerLabel: peer, Kind: "video", Codec: codec, SSRC: 1234}
	ft.info.RequestKeyframe = func() error {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		ft.calls = append(ft.calls, time.Now())
		return nil
	}
	return ft
}

func (ft *fakeTrack) requests() []time.Time {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return slices.Clone(ft.calls)
}

// frameSize is the payload size of test frames.
const frameSize = 64

// testFrame is a frame whose first 4 bytes carry seq.
func testFrame(seq int, key bool, size int) hal.EncodedFrame {
	data := make([]byte, max(size, 4))
	binary.BigEndian.PutUint32(data, uint32(seq))
	for i := 4; i < len(data); i++ {
		data[i] = byte(seq + i)
	}
	return hal.EncodedFrame{
		Codec: hal.CodecVP8, Data: data, Keyframe: key,
		CapturedAt: time.UnixMicro(1_700_000_000_000_000 + int64(seq)*33_333), Duration: 33_333 * time.Microsecond,
	}
}

func write(t *testing.T, f *Feed, ft *fakeTrack, seq int, key bool) {
	t.Helper()
	if err := f.WriteVideo(ft.info, testFrame(seq, key, frameSize)); err != nil {
		t.Fatalf("WriteVideo: %v", err)
	}
}

// wsClient is a test WebSocket client; its reader, once started, queues
// every message it reads.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	msgs chan wsMessage
	stop chan struct{}
	done chan struct{}
	err  error // the read error, after done

	started   bool
	closeOnce sync.Once
}

type wsMessage struct {
	typ  websocket.MessageType
	data []byte
}

// dial connects to srv; the client does not read until start.
func dial(t *testing.T, ctx context.Context, srv *httptest.Server) *wsClient {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, wsURL(srv), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &wsClient{t: t, conn: conn, msgs: make(chan wsMessage, 1<<16), stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(c.close)
	return c
}

// connect dials and starts reading.
func connect(t *testing.T, ctx context.Context, srv *httptest.Server) *wsClient {
	t.Helper()
	c := dial(t, ctx, srv)
	c.start()
	return c
}

func (c *wsClient) start() {
	c.started = true
	go func() {
		defer close(c.done)
		for {
			typ, data, err := c.conn.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			select {
			case c.msgs <- wsMessage{typ, data}:
			case <-c.stop:
				return
			}
		}
	}()
}

func (c *wsClient) close() {
	c.closeOnce.Do(func() {
		close(c.stop)
		_ = c.conn.CloseNow()
		if c.started {
			<-c.done
		}
	})
}

func (c *wsClient) send(ctx context.Context, msg string) {
	c.t.Helper()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("send %s: %v", msg, err)
	}
}

func (c *wsClient) next(ctx context.Context) wsMessage {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-c.done:
		select {
		case m := <-c.msgs:
			return m
		default:
		}
		c.t.Fatalf("connection ended: %v", c.err)
	case <-ctx.Done():
		c.t.Fatalf("no message: %v", ctx.Err())
	}
	panic("unreachable")
}

// control reads the next message, which must be a control message.
func (c *wsClient) control(ctx context.Context) map[string]any {
	c.t.Helper()
	m := c.next(ctx)
	if m.typ != websocket.MessageText {
		c.t.Fatalf("got a frame (%s), want a control message", parseFrame(c.t, m.data))
	}
	var v map[string]any
	if err := json.Unmarshal(m.data, &v); err != nil {
		c.t.Fatalf("control message %s: %v", m.data, err)
	}
	return v
}

// frame reads the next message, which must be a frame.
func (c *wsClient) frame(ctx context.Context) gotFrame {
	c.t.Helper()
	m := c.next(ctx)
	if m.typ != websocket.MessageBinary {
		c.t.Fatalf("got control message %s, want a frame", m.data)
	}
	return parseFrame(c.t, m.data)
}

// closeStatus waits for the server to end the connection and returns the
// close status it sent.
func (c *wsClient) closeStatus(ctx context.Context) websocket.StatusCode {
	c.t.Helper()
	for {
		select {
		case <-c.msgs:
			continue
		case <-c.done:
		case <-ctx.Done():
			c.t.Fatalf("connection still open: %v", ctx.Err())
		}
		return websocket.CloseStatus(c.err)
	}
}

// gotFrame is a parsed frame message.
type gotFrame struct {
	version, flags byte
	n              uint16
	captured       int64
	duration       uint32
	data           []byte
}

func (g gotFrame) key() bool { return g.flags&FlagKeyframe != 0 }
func (g gotFrame) seq() int  { return int(binary.BigEndian.Uint32(g.data)) }

func (g gotFrame) String() string {
	kind := "delta"
	if g.key() {
		kind = "key"
	}
	return fmt.Sprintf("track %d %s %d", g.n, kind, g.seq())
}

func parseFrame(t *testing.T, b []byte) gotFrame {
	t.Helper()
	if len(b) < HeaderSize+4 {
		t.Fatalf("frame message of %d bytes", len(b))
	}
	return gotFrame{
		version:  b[0],
		flags:    b[1],
		n:        binary.BigEndian.Uint16(b[2:4]),
		captured: int64(binary.BigEndian.Uint64(b[4:12])),
		duration: binary.BigEndian.Uint32(b[12:16]),
		data:     b[HeaderSize:],
	}
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// waitClients waits until the Feed serves n attached clients.
func waitClients(t *testing.T, ctx context.Context, f *Feed, n int) {
	t.Helper()
	waitFor(t, ctx, fmt.Sprintf("%d clients", n), func() bool { return len(f.Stats()) == n })
}
