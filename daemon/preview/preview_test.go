package preview

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/videofeed"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
	"github.com/atriumroom/atrium/hal/swcodec"
	"github.com/atriumroom/atrium/test/syncbuf"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkLeaks, called first, runs as the last cleanup.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	b := &syncbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("PREVIEW_TEST_LOGS") != "" {
			t.Logf("logs:\n%s", b.String())
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// countingCamera wraps the simulated camera and counts its open streams,
// to prove that capture stops and that two previews never overlap.
type countingCamera struct {
	*sim.Camera
	open, maxOpen, opens atomic.Int32
}

func (c *countingCamera) Open(ctx context.Context, mode hal.VideoMode) (hal.VideoStream, error) {
	s, err := c.Camera.Open(ctx, mode)
	if err != nil {
		return nil, err
	}
	c.opens.Add(1)
	n := c.open.Add(1)
	for {
		m := c.maxOpen.Load()
		if n <= m || c.maxOpen.CompareAndSwap(m, n) {
			break
		}
	}
	return &countingStream{VideoStream: s, cam: c}, nil
}

type countingStream struct {
	hal.VideoStream
	cam  *countingCamera
	once sync.Once
}

func (s *countingStream) Close() error {
	s.once.Do(func() { s.cam.open.Add(-1) })
	return s.VideoStream.Close()
}

type fixture struct {
	p      *Preview
	srv    *httptest.Server
	driver *sim.Driver
	cam    *countingCamera
	inCall atomic.Bool
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	drv, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{driver: drv, cam: &countingCamera{Camera: drv.Camera()}}
	f.p, err = New(Options{
		Logger: testLogger(t),
		Camera: func(id string) (Camera, bool) {
			if id == "" || id == sim.CameraID {
				return f.cam, true
			}
			return nil, false
		},
		Encoders: swcodec.NewVideoEncoders(nil),
		InCall:   f.inCall.Load,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(f.p.Handler())
	t.Cleanup(func() {
		_ = f.p.Close()
		f.srv.Close()
	})
	return f
}

func (f *fixture) url(query string) string {
	return "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/api/v1/media/preview" + query
}

// dial connects and reads the hello message.
func (f *fixture) dial(t *testing.T, ctx context.Context, query string) (*websocket.Conn, helloMessage) {
	t.Helper()
	conn, resp, err := websocket.Dial(ctx, f.url(query), nil)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", query, err, resp)
	}
	conn.SetReadLimit(4 << 20)
	t.Cleanup(func() { _ = conn.CloseNow() })
	typ, data, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("read hello: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("first message is %v, want text", typ)
	}
	var h helloMessage
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		t.Fatalf("hello %s: %v", data, err)
	}
	return conn, h
}

type frame struct {
	key      bool
	track    uint16
	captured time.Time
	duration time.Duration
	data     []byte
}

func readFrame(t *testing.T, ctx context.Context, conn *websocket.Conn) frame {
	t.Helper()
	typ, b, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if typ != websocket.MessageBinary {
		t.Fatalf("got a %v message %q, want a binary frame", typ, b)
	}
	if len(b) <= videofeed.HeaderSize {
		t.Fatalf("frame message of %d bytes", len(b))
	}
	if b[0] != videofeed.ProtocolVersion || b[1]&^videofeed.FlagKeyframe != 0 {
		t.Fatalf("header version %d flags %#x", b[0], b[1])
	}
	return frame{
		key:      b[1]&videofeed.FlagKeyframe != 0,
		track:    binary.BigEndian.Uint16(b[2:4]),
		captured: time.UnixMicro(int64(binary.BigEndian.Uint64(b[4:12]))),
		duration: time.Duration(binary.BigEndian.Uint32(b[12:16])) * time.Microsecond,
		data:     b[videofeed.HeaderSize:],
	}
}

// expectClose reads until the connection closes and returns its status
// and reason.
func expectClose(t *testing.T, ctx context.Context, conn *websocket.Conn) (websocket.StatusCode, string) {
	t.Helper()
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		t.Fatalf("connection ended without a close frame: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPreviewSendsPictures decodes the preview with the software VP8
// decoder: the frames are real pictures of the simulated camera, at the
// small mode, at about the preview's rate, each newer than the last.
func TestPreviewSendsPictures(t *testing.T) {
	checkLeaks(t)
	f := newFixture(t)
	ctx := testContext(t, 20*time.Second)

	conn, hello := f.dial(t, ctx, "?camera="+sim.CameraID)
	want := helloMessage{Type: "preview", Camera: sim.CameraID, Codec: "VP8", Width: 640, Height: 360, FPS: DefaultFPS}
	if hello != want {
		t.Fatalf("hello = %+v, want %+v", hello, want)
	}

	dec, err := swcodec.NewVideoDecoders(nil).NewVideoDecoder(ctx, hal.CodecVP8)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()

	const n = 30
	start := time.Now()
	var lastSeq uint64
	var firstY []byte
	changed := false
	for i := range n {
		fr := readFrame(t, ctx, conn)
		if i == 0 && !fr.key {
			t.Fatal("first frame is not a keyframe")
		}
		if fr.track != TrackNumber {
			t.Fatalf("frame %d on track %d, want %d", i, fr.track, TrackNumber)
		}
		if age := time.Since(fr.captured); age < 0 || age > 2*time.Second {
			t.Fatalf("frame %d captured %v ago", i, age)
		}
		if fr.duration <= 0 {
			t.Fatalf("frame %d has no duration", i)
		}
		pics, err := dec.Decode(ctx, hal.EncodedFrame{Codec: hal.CodecVP8, Data: fr.data, Keyframe: fr.key})
		if err != nil {
			t.Fatalf("decode frame %d: %v", i, err)
		}
		for _, pic := range pics {
			if pic.Width != 640 || pic.Height != 360 {
				t.Fatalf("frame %d is %dx%d, want 640x360", i, pic.Width, pic.Height)
			}
			y := pic.Data[:pic.Width*pic.Height]
			lo, hi := y[0], y[0]
			for _, v := range y {
				lo, hi = min(lo, v), max(hi, v)
			}
			if hi-lo < 100 {
				t.Fatalf("frame %d is nearly uniform: luma %d..%d", i, lo, hi)
			}
			seq, _, ok := sim.DecodeStamp(pic)
			if !ok {
				t.Fatalf("frame %d: no simulated-camera stamp in the decoded picture", i)
			}
			if i > 0 && seq <= lastSeq {
				t.Fatalf("frame %d has camera frame %d after %d", i, seq, lastSeq)
			}
			lastSeq = seq
			if firstY == nil {
				firstY = append([]byte(nil), y...)
			} else if string(firstY) != string(y) {
				changed = true
			}
		}
	}
	elapsed := time.Since(start)
	if !changed {
		t.Error("all decoded pictures are identical")
	}
	// 30 frames at 15 fps take 2 s; the camera runs at 30 fps, so without
	// decimation they would take 1 s.
	fps := float64(n-1) / elapsed.Seconds()
	t.Logf("%d frames in %v: %.1f fps, last camera frame %d", n, elapsed, fps, lastSeq)
	if fps < 10 || fps > 20 {
		t.Errorf("preview runs at %.1f fps, want about %d", fps, DefaultFPS)
	}

	// Closing the socket stops capture.
	_ = conn.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "the camera to be closed", func() bool { return f.cam.open.Load() == 0 })
}

// TestPreviewDefaultCamera previews the meeting's camera when none is named.
func TestPreviewDefaultCamera(t *testing.T) {
	checkLeaks(t)
	f := newFixture(t)
	ctx := testContext(t, 10*time.Second)
	conn, hello := f.dial(t, ctx, "")
	if hello.Camera != sim.CameraID {
		t.Fatalf("hello names camera %q, want %q", hello.Camera, sim.CameraID)
	}
	if fr := readFrame(t, ctx, conn); !fr.key {
		t.Fatal("first frame is not a keyframe")
	}
}

func getProblem(t *testing.T, ctx context.Context, url string, header http.Header) (int, apiv1.Problem) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.Replace(url, "ws", "http", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var p apiv1.Problem
	if ct := resp.Header.Get("Content-Type"); ct == "application/problem+json" {
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("problem body %q: %v", body, err)
		}
	}
	return resp.StatusCode, p
}

// wsHeader is a WebSocket handshake's headers, so that refusals are
// tested on real upgrade requests.
func wsHeader() http.Header {
	return http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
	}
}

func TestPreviewRefusals(t *testing.T) {
	checkLeaks(t)
	f := newFixture(t)
	ctx := testContext(t, 10*time.Second)

	f.inCall.Store(true)
	status, p := getProblem(t, ctx, f.url("?camera="+sim.CameraID), wsHeader())
	if status != http.StatusConflict || p.Detail != "camera in use by the meeting" || p.Status != 409 {
		t.Errorf("in a meeting: %d %+v, want 409 camera in use by the meeting", status, p)
	}
	f.inCall.Store(false)

	status, p = getProblem(t, ctx, f.url("?camera=v4l2:nope"), wsHeader())
	if status != http.StatusNotFound || !strings.Contains(p.Detail, `"v4l2:nope"`) {
		t.Errorf("unknown camera: %d %+v, want 404 naming it", status, p)
	}

	h := wsHeader()
	h.Set("Origin", "http://evil.example")
	status, p = getProblem(t, ctx, f.url("?camera="+sim.CameraID), h)
	if status != http.StatusForbidden || !strings.Contains(p.Detail, "evil.example") {
		t.Errorf("cross-origin: %d %+v, want 403 naming the origin", status, p)
	}
	status, _ = getProblem(t, ctx, f.url("?camera="+sim.CameraID), nil)
	if status != http.StatusUpgradeRequired {
		t.Errorf("plain GET: %d, want 426", status)
	}
	if n := f.cam.opens.Load(); n != 0 {
		t.Errorf("refused requests opened the camera %d times", n)
	}

	// A same-origin page is welcome.
	h = http.Header{"Origin": {f.srv.URL}}
	conn, resp, err := websocket.Dial(ctx, f.url("?camera="+sim.CameraID), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("same-origin dial: %v (%v)", err, resp)
	}
	_ = conn.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "the camera to be closed", func() bool { return f.cam.open.Load() == 0 })

	_ = f.p.Close()
	status, p = getProblem(t, ctx, f.url("?camera="+sim.CameraID), wsHeader())
	if status != http.StatusServiceUnavailable || p.Type != apiv1.ProblemUnavailable {
		t.Errorf("after Close: %d %+v, want 503", status, p)
	}
}

// TestSecondPreviewReplacesFirst: one preview at a time, and the camera is
// never open twice.
func TestSecondPreviewReplacesFirst(t *testing.T) {
	checkLeaks(t)
	f := newFixture(t)
	ctx := testContext(t, 15*time.Second)

	a, _ := f.dial(t, ctx, "?camera="+sim.CameraID)
	readFrame(t, ctx, a)
	b, _ := f.dial(t, ctx, "?camera="+sim.CameraID)
	if fr := readFrame(t, ctx, b); !fr.key {
		t.Fatal("the new preview's first frame is not a keyframe")
	}
	code, reason := expectClose(t, ctx, a)
	if code != websocket.StatusGoingAway || reason != errReplaced.Error() {
		t.Errorf("first preview closed with %v %q, want 1001 %q", code, reason, errReplaced)
	}
	for range 5 {
		readFrame(t, ctx, b)
	}
	if m := f.cam.maxOpen.Load(); m != 1 {
		t.Errorf("camera open %d times at once, want 1", m)
	}
}

// TestPreviewEnds covers the ends other than the client's: a meeting
// starting, Stop, the camera unplugged, Close.
func TestPreviewEnds(t *testing.T) {
	checkLeaks(t)
	cases := []struct {
		name       string
		end        func(f *fixture)
		wantCode   websocket.StatusCode
		wantReason string
	}{
		{"meeting starts", func(f *fixture) { f.inCall.Store(true) }, websocket.StatusGoingAway, errMeeting.Error()},
		{"Stop", func(f *fixture) { f.p.Stop() }, websocket.StatusGoingAway, errMeeting.Error()},
		{"unplugged", func(f *fixture) {
			if err := f.driver.SetPresent(hal.KindCamera, false); err != nil {
				panic(err)
			}
		}, websocket.StatusInternalError, "camera unplugged"},
		{"Close", func(f *fixture) { _ = f.p.Close() }, websocket.StatusGoingAway, errClosing.Error()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := testContext(t, 10*time.Second)
			conn, _ := f.dial(t, ctx, "?camera="+sim.CameraID)
			readFrame(t, ctx, conn)
			tc.end(f)
			code, reason := expectClose(t, ctx, conn)
			if code != tc.wantCode || reason != tc.wantReason {
				t.Errorf("closed with %v %q, want %v %q", code, reason, tc.wantCode, tc.wantReason)
			}
			waitFor(t, "the camera to be closed", func() bool { return f.cam.open.Load() == 0 })
		})
	}
}

// TestClientMessageCloses: the client has nothing to say.
func TestClientMessageCloses(t *testing.T) {
	checkLeaks(t)
	f := newFixture(t)
	ctx := testContext(t, 10*time.Second)
	conn, _ := f.dial(t, ctx, "?camera="+sim.CameraID)
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"keyframe"}`)); err != nil {
		t.Fatal(err)
	}
	code, _ := expectClose(t, ctx, conn)
	if code != websocket.StatusPolicyViolation {
		t.Errorf("closed with %v, want 1008", code)
	}
	waitFor(t, "the camera to be closed", func() bool { return f.cam.open.Load() == 0 })
}

func TestAdminToken(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/api/v1/media/preview?camera=x&admin=fromquery", nil)
	if got := AdminToken(r); got != "fromquery" {
		t.Errorf("AdminToken from query = %q", got)
	}
	r.Header.Set(TokenHeader, "fromheader")
	if got := AdminToken(r); got != "fromheader" {
		t.Errorf("AdminToken with header = %q", got)
	}
}

func TestNewChecksOptions(t *testing.T) {
	_, err := New(Options{})
	if err == nil || !strings.Contains(err.Error(), "Camera") || !strings.Contains(err.Error(), "Encoders") || !strings.Contains(err.Error(), "InCall") {
		t.Errorf("New(Options{}) = %v, want an error naming the missing options", err)
	}
}
