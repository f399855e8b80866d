package preview

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/videofeed"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/pixconv"
)

// Defaults of Options.
const (
	DefaultWidth      = 640
	DefaultHeight     = 360
	DefaultFPS        = 15
	DefaultBitrateBps = 800_000
)

// KeyframeInterval bounds the wait of a page whose decoder failed.
const KeyframeInterval = 2 * time.Second

// TrackNumber is the track number in every frame header.
const TrackNumber = 1

// TokenParam is the query parameter that carries the admin token, since a
// browser cannot set headers on a WebSocket handshake.
const TokenParam = "admin"

// TokenHeader is the header that carries the admin token on other requests.
const TokenHeader = "X-Atrium-Admin"

// writeTimeout drops a client that does not read: a preview frame older
// than this is useless anyway.
const writeTimeout = 2 * time.Second

// closeTimeout bounds a close handshake, as a page that went away does
// not answer one.
const closeTimeout = time.Second

// Camera is what the preview needs of a camera; every hal.Camera is one.
type Camera interface {
	Info() hal.Info
	Modes() []hal.VideoMode
	Open(ctx context.Context, mode hal.VideoMode) (hal.VideoStream, error)
}

// Options configure a Preview. Camera, Encoders and InCall are required.
type Options struct {
	// Logger receives connects, disconnects and failures; nil discards.
	Logger *slog.Logger
	// Camera returns the camera with the given ID, or for "" the one a
	// meeting would use; false when there is none.
	Camera func(id string) (Camera, bool)
	// Encoders opens the VP8 encoder.
	Encoders hal.VideoEncoderFactory
	// InCall reports whether the room is in a meeting, whose call then
	// owns the camera.
	InCall func() bool
	// Width, Height and FPS bound the capture mode (hal.BestMode); zero
	// takes DefaultWidth, DefaultHeight, DefaultFPS. BitrateBps is the
	// encoder's rate (DefaultBitrateBps).
	Width, Height, FPS int
	BitrateBps         int
}

// Preview serves the camera preview; see the package documentation.
type Preview struct {
	log      *slog.Logger
	camera   func(string) (Camera, bool)
	encoders hal.VideoEncoderFactory
	inCall   func() bool
	limit    hal.VideoMode
	bitrate  int

	// turn serialises the hand-over between previews: a new one waits
	// for the old one's camera to close before opening it.
	turn sync.Mutex

	mu      sync.Mutex // guards the fields below
	closed  bool
	current *session
	wg      sync.WaitGroup // every handler that got past the checks
}

// session is one running preview.
type session struct {
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when its camera is closed
}

// Causes of a preview's end, as close reasons.
var (
	errReplaced = errors.New("replaced by another preview")
	errMeeting  = errors.New("the meeting needs the camera")
	errClosing  = errors.New("roomd is shutting down")
)

// New checks opts and returns a Preview.
func New(opts Options) (*Preview, error) {
	var missing []string
	if opts.Camera == nil {
		missing = append(missing, "Camera")
	}
	if opts.Encoders == nil {
		missing = append(missing, "Encoders")
	}
	if opts.InCall == nil {
		missing = append(missing, "InCall")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("new camera preview: missing %v", missing)
	}
	if opts.Width < 0 || opts.Height < 0 || opts.FPS < 0 || opts.BitrateBps < 0 {
		return nil, fmt.Errorf("new camera preview: negative size, rate or bitrate (%dx%d at %d fps, %d bps)",
			opts.Width, opts.Height, opts.FPS, opts.BitrateBps)
	}
	def := func(v, d int) int {
		if v == 0 {
			return d
		}
		return v
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Preview{
		log:      log,
		camera:   opts.Camera,
		encoders: opts.Encoders,
		inCall:   opts.InCall,
		limit: hal.VideoMode{
			Width: def(opts.Width, DefaultWidth), Height: def(opts.Height, DefaultHeight),
			FPS: def(opts.FPS, DefaultFPS), Format: hal.PixelI420,
		},
		bitrate: def(opts.BitrateBps, DefaultBitrateBps),
	}, nil
}

// AdminToken returns the admin token of r: the X-Atrium-Admin header, else
// the admin query parameter (the only way a page's WebSocket can send it).
func AdminToken(r *http.Request) string {
	if t := r.Header.Get(TokenHeader); t != "" {
		return t
	}
	return r.URL.Query().Get(TokenParam)
}

// Handler returns the WebSocket endpoint. It does not check the admin
// session; see the package documentation.
func (p *Preview) Handler() http.Handler { return http.HandlerFunc(p.serve) }

// Stop ends the preview in progress, if any: the daemon calls it when the
// room joins a meeting, whose call needs the camera. New previews are
// still accepted (and refused while InCall is true).
func (p *Preview) Stop() {
	p.mu.Lock()
	s := p.current
	p.mu.Unlock()
	if s != nil {
		s.cancel(errMeeting)
		<-s.done
	}
}

// Close ends the preview in progress, refuses new ones with 503, and
// returns when every handler has returned.
func (p *Preview) Close() error {
	p.mu.Lock()
	p.closed = true
	s := p.current
	p.mu.Unlock()
	if s != nil {
		s.cancel(errClosing)
	}
	p.wg.Wait()
	return nil
}

func (p *Preview) problem(w http.ResponseWriter, r *http.Request, status int, typ, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(apiv1.Problem{
		Type: typ, Title: title, Status: status, Detail: detail, Instance: r.URL.Path,
	})
}

// hijackWatcher keeps the connection websocket.Accept hijacks, so that a
// close handshake can be given a deadline.
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

// helloMessage is the first message of a preview.
type helloMessage struct {
	Type   string `json:"type"`
	Camera string `json:"camera"`
	Codec  string `json:"codec"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	FPS    int    `json:"fps"`
}

func (p *Preview) serve(w http.ResponseWriter, r *http.Request) {
	// Checked before the camera opens, so that a request that cannot
	// become a preview does not even light the camera. websocket.Accept
	// checks both again.
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		w.Header().Set("Upgrade", "websocket")
		p.problem(w, r, http.StatusUpgradeRequired, apiv1.ProblemBadRequest, "WebSocket required",
			"the camera preview is a WebSocket")
		return
	}
	if !sameOrigin(r) {
		p.problem(w, r, http.StatusForbidden, apiv1.ProblemUnauthorized, "Cross-origin request refused",
			fmt.Sprintf("a page from %q may not open the camera preview", r.Header.Get("Origin")))
		return
	}
	id := r.URL.Query().Get("camera")
	if p.inCall() {
		p.problem(w, r, http.StatusConflict, apiv1.ProblemUnavailable, "Camera in use",
			"camera in use by the meeting")
		return
	}
	cam, ok := p.camera(id)
	if !ok {
		detail := fmt.Sprintf("no camera %q", id)
		if id == "" {
			detail = "the room has no camera"
		}
		p.problem(w, r, http.StatusNotFound, apiv1.ProblemNotFound, "No such camera", detail)
		return
	}
	info := cam.Info()
	mode, ok := hal.BestMode(cam.Modes(), p.limit)
	if !ok {
		p.problem(w, r, http.StatusUnprocessableEntity, apiv1.ProblemInvalidValue, "Camera cannot be previewed",
			fmt.Sprintf("camera %q offers no raw (I420, NV12, YUYV, MJPG) mode", info.ID))
		return
	}

	s, err := p.begin()
	if err != nil {
		p.problem(w, r, http.StatusServiceUnavailable, apiv1.ProblemUnavailable, "Preview unavailable", err.Error())
		return
	}
	defer p.end(s)
	// From here until the camera is closed this is the one preview; a
	// newer request waits in begin for s.done.
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	s.cancel = cancel
	p.mu.Lock()
	p.current = s
	if p.closed {
		// Close ran while this request waited for the previous preview.
		cancel(errClosing)
	}
	p.mu.Unlock()
	p.turn.Unlock()

	stream, err := cam.Open(ctx, mode)
	if err != nil {
		p.problem(w, r, http.StatusServiceUnavailable, apiv1.ProblemUnavailable, "Camera unavailable",
			fmt.Sprintf("open camera %q at %dx%d %s: %v", info.ID, mode.Width, mode.Height, mode.Format, err))
		return
	}
	defer func() {
		if err := stream.Close(); err != nil {
			p.log.Warn("preview: close camera", "camera", info.ID, "err", err)
		}
	}()
	enc, err := p.encoders.NewVideoEncoder(ctx, hal.VideoEncoderConfig{
		Codec: hal.CodecVP8, Width: mode.Width, Height: mode.Height, FPS: min(mode.FPS, p.limit.FPS),
		BitrateBps: p.bitrate, KeyframeInterval: KeyframeInterval,
	})
	if err != nil {
		p.problem(w, r, http.StatusServiceUnavailable, apiv1.ProblemUnavailable, "Encoder unavailable",
			fmt.Sprintf("open a VP8 encoder for %dx%d: %v", mode.Width, mode.Height, err))
		return
	}
	defer func() {
		if err := enc.Close(); err != nil {
			p.log.Warn("preview: close encoder", "err", err)
		}
	}()

	hw := &hijackWatcher{ResponseWriter: w}
	conn, err := websocket.Accept(hw, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		// Accept wrote the answer (403 for another origin).
		p.log.Debug("preview client refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	// closeConn closes with a handshake bounded by closeTimeout:
	// coder/websocket would wait 5 s for a page that does not answer.
	closeConn := func(status websocket.StatusCode, reason string) error {
		if hw.conn != nil {
			_ = hw.conn.SetDeadline(time.Now().Add(closeTimeout))
		}
		return conn.Close(status, reason)
	}
	// The reader answers pings and closes and ends the preview when the
	// page goes away. It reads under a context of its own: cancelling a
	// read closes the connection at once, and the close handshake below
	// needs it open. (conn.CloseRead would do, but a data message makes
	// it wait for itself for 15 s.)
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	readCtx, stopRead := context.WithCancel(context.Background())
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer stopRun()
		_, _, err := conn.Read(readCtx)
		if err == nil {
			p.log.Info("preview client sent a message; closing", "remote", r.RemoteAddr)
			_ = closeConn(websocket.StatusPolicyViolation, "the preview accepts no messages")
		}
	}()
	p.log.Info("camera preview started", "camera", info.ID, "remote", r.RemoteAddr,
		"mode", fmt.Sprintf("%dx%d@%d %s", mode.Width, mode.Height, mode.FPS, mode.Format))

	sent, err := p.run(runCtx, conn, stream, enc, helloMessage{
		Type: "preview", Camera: info.ID, Codec: string(hal.CodecVP8), Width: mode.Width, Height: mode.Height,
		FPS: min(mode.FPS, p.limit.FPS),
	})
	cause := context.Cause(ctx)
	status, reason := websocket.StatusNormalClosure, ""
	switch {
	case errors.Is(cause, errReplaced), errors.Is(cause, errMeeting), errors.Is(cause, errClosing):
		status, reason = websocket.StatusGoingAway, cause.Error()
	case errors.Is(err, errMeeting):
		status, reason = websocket.StatusGoingAway, err.Error()
	case errors.Is(err, hal.ErrUnplugged):
		status, reason = websocket.StatusInternalError, "camera unplugged"
	case err != nil:
		status, reason = websocket.StatusInternalError, truncate("preview failed: "+err.Error(), 123)
	}
	var closeErr error
	select {
	case <-readDone:
		// The page left or broke the protocol: nothing to say to it.
		closeErr = conn.CloseNow()
	default:
		closeErr = closeConn(status, reason)
	}
	stopRead()
	<-readDone
	p.log.Info("camera preview ended", "camera", info.ID, "frames", sent, "err", err, "cause", cause, "close_err", closeErr)
}

// sameOrigin reports whether r comes from a page of the server's own
// origin, or from no page at all (no Origin header): the rule of
// coder/websocket's Accept without OriginPatterns.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// begin waits for the preview in progress to end, then makes s the next
// one. It returns with p.turn held; the caller releases it once s is
// current.
func (p *Preview) begin() (*session, error) {
	p.turn.Lock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.turn.Unlock()
		return nil, errClosing
	}
	old := p.current
	p.wg.Add(1)
	p.mu.Unlock()
	if old != nil {
		old.cancel(errReplaced)
		<-old.done
	}
	return &session{done: make(chan struct{})}, nil
}

// end releases s; the deferred closes of camera and encoder have run.
func (p *Preview) end(s *session) {
	p.mu.Lock()
	if p.current == s {
		p.current = nil
	}
	p.mu.Unlock()
	close(s.done)
	p.wg.Done()
}

// run sends the hello message, then captures, encodes and sends until ctx
// ends or something fails. It returns the number of frames sent.
func (p *Preview) run(ctx context.Context, conn *websocket.Conn, stream hal.VideoStream, enc hal.VideoEncoder, hello helloMessage) (int, error) {
	msg, err := json.Marshal(hello)
	if err != nil {
		return 0, fmt.Errorf("encode hello: %w", err)
	}
	if err := write(ctx, conn, websocket.MessageText, msg); err != nil {
		return 0, err
	}
	// The camera may run faster than the preview needs: frames closer
	// than this to the last one sent are dropped before encoding.
	minGap := time.Second/time.Duration(hello.FPS) - time.Second/time.Duration(4*hello.FPS)
	var last time.Time
	sent := 0
	for {
		if p.inCall() {
			return sent, errMeeting
		}
		f, err := stream.ReadFrame(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return sent, nil
			}
			return sent, fmt.Errorf("read camera frame: %w", err)
		}
		if !last.IsZero() && !f.CapturedAt.IsZero() && f.CapturedAt.Sub(last) < minGap {
			continue
		}
		i420, err := pixconv.ToI420(f)
		if err != nil {
			return sent, fmt.Errorf("convert %s %dx%d to I420: %w", f.Format, f.Width, f.Height, err)
		}
		out, err := enc.Encode(ctx, i420)
		if err != nil {
			return sent, fmt.Errorf("encode frame %d: %w", f.Seq, err)
		}
		last = f.CapturedAt
		for _, e := range out {
			if e.Duration == 0 {
				e.Duration = time.Second / time.Duration(hello.FPS)
			}
			if err := write(ctx, conn, websocket.MessageBinary, videofeed.EncodeFrame(TrackNumber, e)); err != nil {
				if ctx.Err() != nil {
					return sent, nil
				}
				return sent, err
			}
			sent++
		}
	}
}

// write writes one message. Only the timeout ends it: coder/websocket
// closes the connection when a write's context is cancelled, and the
// preview's end wants to close it with a reason.
func write(ctx context.Context, conn *websocket.Conn, typ websocket.MessageType, data []byte) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := conn.Write(wctx, typ, data); err != nil {
		return fmt.Errorf("write to preview client: %w", err)
	}
	return nil
}

// truncate shortens s to at most n bytes (a close reason's limit),
// keeping whole UTF-8 sequences.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
