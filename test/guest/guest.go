// Package guest puts a real browser into a Janus VideoRoom, as the other
// participant of interop tests: roomd's media must reach a WebRTC stack that
// is not pion, and Chromium's media must reach roomd.
//
// A Guest is one headless Chromium (Debian's, at /usr/bin/chromium) with a
// fresh profile and fake capture devices. It loads a small page, embedded from
// page/ and served on 127.0.0.1 together with Debian's janus.js, that joins a
// room as a publisher, publishes the fake camera (1280x720 at 30 fps
// requested) and microphone, and subscribes to every other publisher,
// present or future, showing each in its own <video> element. The Go side
// reads the page's state and the RTCPeerConnection statistics.
//
// Media stays on this host: the page has no STUN or TURN server and
// Chromium's candidates are its host addresses (no mDNS names), so ICE can
// only pair them with Janus's, which janustest keeps on one of this host's
// own addresses. Stats.Paths shows the pairs in use.
//
// janus.js wants webrtc-adapter for adapter.browserDetails only; the page
// passes a stand-in built from the user agent instead of loading
// adapter.js, since the page runs in Chromium only (Debian packages the real
// one as libjs-webrtc-adapter).
//
// Start fails the test, rather than skipping it, when Chromium or janus.js is
// missing: a missing browser must not look like a passing suite.
package guest

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/atriumroom/atrium/test/chromium"
)

const (

	// JanusJSPath is janus.js from Debian's libjs-janus-gateway, the
	// version that matches Debian's janus.
	JanusJSPath = "/usr/share/javascript/janus-gateway/janus.js"

	// ViewportWidth and ViewportHeight are the page's size, at one device
	// pixel per CSS pixel, so that screenshots and VideoRect agree.
	ViewportWidth, ViewportHeight = 1280, 720

	// startTimeout bounds Start's own steps: launching the browser, loading
	// the page and starting to join. Joining itself is WaitJoined's.
	startTimeout = 30 * time.Second

	// pollInterval is how often the Wait methods look at the page.
	pollInterval = 100 * time.Millisecond
)

// The capture that the page asks the fake camera for.
const (
	captureWidth, captureHeight, captureFPS = 1280, 720, 30
)

//go:embed page
var pageFS embed.FS

// Options says where a guest joins and what it sends.
type Options struct {
	// JanusWS is the Janus WebSocket API, ws://127.0.0.1:PORT/.
	JanusWS string
	// Room is the VideoRoom to join.
	Room int
	// Pin is the room's PIN, if it has one.
	Pin string
	// Display is the name the guest joins with; other participants find the
	// guest's feed by it. Empty means "guest".
	Display string
	// Video and Audio choose what the guest publishes from its fake camera
	// and microphone. When both are false, as in the zero Options, the guest
	// publishes both: that is what a person in a meeting does, and a guest
	// that publishes nothing is not supported.
	Video, Audio bool
	// Screen also publishes a shared "screen": a second video track, a
	// moving 1280x720 canvas (white with dark blue bars, where the fake
	// camera is green) at 15 fps, which the publish request describes as
	// "screen" and the camera as "camera".
	Screen bool
	// Simulcast publishes the camera in three simulcast layers (full,
	// half and quarter size), as browsers in large meetings do.
	Simulcast bool
	// Artifacts is the directory for screenshots and the page's console
	// log; empty means a temporary directory of the test.
	Artifacts string
}

// Guest is one browser participant. Its methods are safe for concurrent
// use: each is a few evaluations in the page, which runs them one at a time.
type Guest struct {
	opts    Options
	dir     string
	browser *chromium.Browser
	tab     context.Context // the browser's tab
}

// Stats is what the guest's RTCPeerConnections report.
type Stats struct {
	// Publishing is true while the guest is joined, published and its
	// PeerConnection up: from WaitJoined's success until Leave or a failure.
	Publishing bool `json:"publishing"`
	// RemoteFeeds are the other publishers the guest subscribes to, in the
	// order it learnt of them.
	RemoteFeeds []Feed `json:"remoteFeeds"`
	// VideoFramesSent and AudioPacketsSent count what the guest published.
	VideoFramesSent  int `json:"videoFramesSent"`
	AudioPacketsSent int `json:"audioPacketsSent"`
	// VideoStreamsSent counts the outbound video RTP streams: one per video
	// track, three for a simulcast camera.
	VideoStreamsSent int `json:"videoStreamsSent"`
	// Paths are the ICE candidate pairs in use, one per connected
	// RTCPeerConnection, as "local-ip:port -> remote-ip:port".
	Paths []string `json:"paths"`
}

// Feed is one remote publisher as the guest receives it.
type Feed struct {
	// ID is the publisher's Janus feed ID, as text.
	ID string `json:"id"`
	// Display is the publisher's display name.
	Display string `json:"display"`
	// VideoFramesDecoded, VideoWidth and VideoHeight describe the received
	// video; the size is the last decoded frame's.
	VideoFramesDecoded int `json:"videoFramesDecoded"`
	VideoWidth         int `json:"videoWidth"`
	VideoHeight        int `json:"videoHeight"`
	// AudioPacketsReceived counts received audio RTP packets.
	AudioPacketsReceived int `json:"audioPacketsReceived"`
	// AudioEnergy is the inbound audio's totalAudioEnergy: it grows only
	// while the received audio is not silent.
	AudioEnergy float64 `json:"audioEnergy"`
	// Codec is the video codec's name, such as "VP8", or the audio codec's
	// ("opus") for a feed without video; empty until media flows.
	Codec string `json:"codec"`
}

// pageStats is the page's window.atrium.stats(): Stats and whether the
// page failed, so that waits on a failed guest end at once.
type pageStats struct {
	Stats
	Phase string `json:"phase"`
	Error string `json:"error"`
}

func (s pageStats) failed() error {
	if s.Phase == "failed" {
		return fmt.Errorf("the guest failed: %s", s.Error)
	}
	return nil
}

// pageStatus is the page's window.atrium.status().
type pageStatus struct {
	Phase     string   `json:"phase"`
	Error     string   `json:"error"`
	Published bool     `json:"published"`
	WebRTCUp  bool     `json:"webrtcUp"`
	Events    []string `json:"events"`
}

func (s pageStatus) String() string {
	return fmt.Sprintf("phase %s, published %t, webrtcup %t; recent page events:\n\t%s",
		s.Phase, s.Published, s.WebRTCUp, strings.Join(s.Events, "\n\t"))
}

// Start launches the browser, loads the page and has it start joining. It
// returns once joining has begun: WaitJoined tells whether it worked. The
// browser, the page's server and the session in Janus end when the test
// ends; if the test failed, the page's console is added to its log.
func Start(t testing.TB, opts Options) *Guest {
	t.Helper()
	janusJS, err := os.ReadFile(JanusJSPath)
	if err != nil {
		t.Fatalf("guest: the browser tests need janus.js (apt-get install libjs-janus-gateway): %v", err)
	}
	if opts.Display == "" {
		opts.Display = "guest"
	}
	if !opts.Video && !opts.Audio {
		opts.Video, opts.Audio = true, true
	}
	dir := opts.Artifacts
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("guest: artifacts directory: %v", err)
	}

	srv := httptest.NewServer(pageHandler(janusJS))
	t.Cleanup(srv.Close)

	g := &Guest{opts: opts, dir: dir}
	// Registered before the browser starts, so it runs after the browser has
	// closed (cleanups run last-in first-out) with the whole console.
	t.Cleanup(func() {
		if err := g.writeConsoleLog(); err != nil {
			t.Errorf("guest %q: %v", opts.Display, err)
		}
	})
	g.browser = chromium.Start(t, chromium.Options{
		Name:  fmt.Sprintf("guest %q", opts.Display),
		Width: ViewportWidth, Height: ViewportHeight,
		Flags: []chromedp.ExecAllocatorOption{
			chromedp.Flag("use-fake-device-for-media-stream", "fps=30"), // its default is 20
			chromedp.Flag("use-fake-ui-for-media-stream", true),
			chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
			// No mDNS host names in candidates: Janus could not resolve them,
			// and their multicast queries would leave the machine.
			chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		},
	})
	g.tab = g.browser.Tab()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := g.startJoin(ctx, srv.URL); err != nil {
		t.Fatalf("guest %q: %v\n--- browser output ---\n%s", opts.Display, err, g.browser.Output())
	}
	return g
}

// pageHandler serves the embedded page and janus.js.
func pageHandler(janusJS []byte) http.Handler {
	page, err := fs.Sub(pageFS, "page")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(page))
	mux.HandleFunc("GET /janus.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "janus.js", time.Time{}, bytes.NewReader(janusJS))
	})
	return mux
}

// startJoin loads the page and calls its join.
func (g *Guest) startJoin(ctx context.Context, pageURL string) error {
	c, cancel := g.bind(ctx)
	defer cancel()
	if err := chromedp.Do(c,
		chromedp.EmulateViewport(ViewportWidth, ViewportHeight),
		chromedp.Navigate(pageURL+"/"),
	); err != nil {
		return fmt.Errorf("load the page: %w", err)
	}
	// A page whose scripts did not load has no atrium or no Janus; say which.
	loaded, err := chromedp.Run(c, chromedp.Evaluate[string](
		`typeof Janus === "undefined" ? "janus.js did not load" : typeof atrium === "undefined" ? "guest.js did not load" : ""`))
	if err != nil {
		return fmt.Errorf("inspect the page: %w", err)
	}
	if loaded != "" {
		return errors.New(loaded)
	}
	cfg, err := json.Marshal(map[string]any{
		"server":    g.opts.JanusWS,
		"room":      g.opts.Room,
		"pin":       g.opts.Pin,
		"display":   g.opts.Display,
		"video":     g.opts.Video,
		"audio":     g.opts.Audio,
		"screen":    g.opts.Screen,
		"simulcast": g.opts.Simulcast,
		"width":     captureWidth,
		"height":    captureHeight,
		"fps":       captureFPS,
	})
	if err != nil {
		return fmt.Errorf("encode the page's options: %w", err)
	}
	// join runs on in the page; the promise is not awaited.
	if err := chromedp.Do(c, chromedp.Evaluate[chromedp.Void](fmt.Sprintf("void atrium.join(%s)", cfg))); err != nil {
		return fmt.Errorf("start joining: %w", err)
	}
	return nil
}

// bind returns a context for one chromedp call on the guest's tab that ends
// when ctx does. chromedp needs its own tab context; the caller's only
// bounds the call.
func (g *Guest) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(g.tab)
	stop := context.AfterFunc(ctx, cancel)
	return c, func() {
		stop()
		cancel()
	}
}

// eval evaluates a JavaScript expression in the page, awaiting it if it is
// a promise, and decodes its value into T.
func eval[T any](ctx context.Context, g *Guest, expr string) (T, error) {
	c, cancel := g.bind(ctx)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil && ctx.Err() != nil {
		// The browser's error would only say the call was canceled.
		return v, ctx.Err()
	}
	return v, err
}

func (g *Guest) status(ctx context.Context) (pageStatus, error) {
	return eval[pageStatus](ctx, g, "atrium.status()")
}

// poll calls check every pollInterval until it reports done, fails, or ctx
// ends; then it returns check's error or ctx's, with what the page showed
// last.
func (g *Guest) poll(ctx context.Context, what string, check func(ctx context.Context) (bool, error)) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		done, err := check(ctx)
		if err == nil && done {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("guest %q: %s: %w", g.opts.Display, what, err)
		}
		select {
		case <-ctx.Done():
			// Report the page's state with a short grace period of its
			// own, since ctx is over.
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			st, serr := g.status(sctx)
			detail := st.String()
			if serr != nil {
				detail = "page state unavailable: " + serr.Error()
			}
			return fmt.Errorf("guest %q: %s: %w\n%s", g.opts.Display, what, ctx.Err(), detail)
		case <-tick.C:
		}
	}
}

// WaitJoined waits until the guest has joined the room, published, and
// Janus reported its PeerConnection up ("webrtcup"). An error that Janus
// answered, such as a wrong PIN, is returned with Janus's code and text.
func (g *Guest) WaitJoined(ctx context.Context) error {
	return g.poll(ctx, fmt.Sprintf("join room %d", g.opts.Room), func(ctx context.Context) (bool, error) {
		st, err := g.status(ctx)
		if err != nil {
			return false, err
		}
		switch st.Phase {
		case "joined":
			return true, nil
		case "failed":
			return false, fmt.Errorf("%s\n%s", st.Error, st)
		case "left":
			return false, errors.New("the guest has left")
		}
		return false, nil
	})
}

// Stats reads the statistics of all the page's RTCPeerConnections.
func (g *Guest) Stats(ctx context.Context) (Stats, error) {
	s, err := g.stats(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("guest %q: %w", g.opts.Display, err)
	}
	return s.Stats, nil
}

func (g *Guest) stats(ctx context.Context) (pageStats, error) {
	s, err := eval[pageStats](ctx, g, "atrium.stats()")
	if err != nil {
		return pageStats{}, fmt.Errorf("read stats: %w", err)
	}
	return s, nil
}

// WaitFeed polls Stats until a remote feed named display satisfies cond,
// and returns it. A nil cond accepts any feed.
func (g *Guest) WaitFeed(ctx context.Context, display string, cond func(Feed) bool) (Feed, error) {
	var found, last Feed
	var seen bool
	err := g.poll(ctx, fmt.Sprintf("wait for feed %q", display), func(ctx context.Context) (bool, error) {
		s, err := g.stats(ctx)
		if err != nil {
			return false, err
		}
		if err := s.failed(); err != nil {
			return false, err
		}
		for _, f := range s.RemoteFeeds {
			if f.Display != display {
				continue
			}
			seen, last = true, f
			if cond == nil || cond(f) {
				found = f
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil && seen {
		return Feed{}, fmt.Errorf("%w\nlast stats of the feed: %+v", err, last)
	}
	return found, err
}

// WaitFeedGone polls Stats until no remote feed is named display.
func (g *Guest) WaitFeedGone(ctx context.Context, display string) error {
	return g.poll(ctx, fmt.Sprintf("wait for feed %q to go", display), func(ctx context.Context) (bool, error) {
		s, err := g.stats(ctx)
		if err != nil {
			return false, err
		}
		if err := s.failed(); err != nil {
			return false, err
		}
		for _, f := range s.RemoteFeeds {
			if f.Display == display {
				return false, nil
			}
		}
		return true, nil
	})
}

// FirstRemoteFrame waits until the page has shown a video frame of the
// feed named display, and returns the time from when the page began to
// join (getUserMedia, the Janus session, publishing, subscribing all
// count) to that frame. The frame is timed by requestVideoFrameCallback,
// when the compositor presents it. A feed that arrives after the guest
// joined is timed from the join too, so time a feed that was in the room
// first.
func (g *Guest) FirstRemoteFrame(ctx context.Context, display string) (time.Duration, error) {
	var ms float64
	err := g.poll(ctx, fmt.Sprintf("wait for the first frame of %q", display), func(ctx context.Context) (bool, error) {
		v, err := eval[float64](ctx, g, fmt.Sprintf("atrium.firstFrame(%s)", chromium.JSString(display)))
		ms = v
		return err == nil && v >= 0, err
	})
	if err != nil {
		return 0, err
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

// VideoRect returns where the page shows the remote feed named display, in
// the pixels of a Screenshot.
func (g *Guest) VideoRect(ctx context.Context, display string) (image.Rectangle, error) {
	r, err := eval[*struct{ X, Y, Width, Height int }](ctx, g, fmt.Sprintf("atrium.videoRect(%s)", chromium.JSString(display)))
	if err != nil {
		return image.Rectangle{}, fmt.Errorf("guest %q: locate the video of %q: %w", g.opts.Display, display, err)
	}
	if r == nil {
		return image.Rectangle{}, fmt.Errorf("guest %q: no video of %q on the page", g.opts.Display, display)
	}
	return image.Rect(r.X, r.Y, r.X+r.Width, r.Y+r.Height), nil
}

// Screenshot saves the page's viewport as a PNG named name (".png" is added
// when missing) in the artifacts directory, and returns its path.
func (g *Guest) Screenshot(ctx context.Context, name string) (string, error) {
	c, cancel := g.bind(ctx)
	defer cancel()
	buf, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return "", fmt.Errorf("guest %q: screenshot %s: %w", g.opts.Display, name, err)
	}
	if filepath.Ext(name) != ".png" {
		name += ".png"
	}
	path := filepath.Join(g.dir, name)
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		return "", fmt.Errorf("guest %q: %w", g.opts.Display, err)
	}
	return path, nil
}

// Leave leaves the room and ends the guest's Janus session; the other
// participants see its feed go. The browser stays open until the test ends,
// so Stats still answers (with no feeds and Publishing false).
func (g *Guest) Leave(ctx context.Context) error {
	if _, err := eval[chromedp.Void](ctx, g, "atrium.leave()"); err != nil {
		return fmt.Errorf("guest %q: leave: %w", g.opts.Display, err)
	}
	return nil
}

// ConsoleErrors returns the errors and uncaught exceptions the page has
// logged so far.
func (g *Guest) ConsoleErrors() []string {
	var errs []string
	for _, m := range g.browser.Console() {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			errs = append(errs, m.String())
		}
	}
	return errs
}

// writeConsoleLog keeps the page's whole console in the artifacts
// directory: the test log shows it only when the test failed.
func (g *Guest) writeConsoleLog() error {
	if g.browser == nil {
		return nil // the browser never started; Start has failed the test
	}
	var b strings.Builder
	for _, m := range g.browser.Console() {
		fmt.Fprintf(&b, "%s %s\n", m.Time.Format(time.TimeOnly+".000"), m)
	}
	path := filepath.Join(g.dir, fileName(g.opts.Display)+"-console.log")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write the console log: %w", err)
	}
	return nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// fileName makes a display name safe to use in a file name.
func fileName(display string) string {
	return unsafeName.ReplaceAllString(display, "_")
}
