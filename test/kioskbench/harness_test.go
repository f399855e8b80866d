package kioskbench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/test/chromium"
	"github.com/atriumroom/atrium/test/guest"
	"github.com/atriumroom/atrium/test/janustest"
	"github.com/atriumroom/atrium/test/proc"
	"github.com/atriumroom/atrium/test/procstat"
	"github.com/atriumroom/atrium/test/roomdtest"
	"github.com/atriumroom/atrium/test/tbscope"
)

// plan is the shape of one run of the harness.
type plan struct {
	counts       []int         // how many remote streams, one round each
	settle       time.Duration // after the streams are on screen, before the window
	window       time.Duration // the resource measurement
	delaySamples int           // screenshots read for the delay, per round
	delayRounds  []int         // the counts at which the delay is measured
}

// Names in the room.
const (
	liveName     = "Live guest"
	chromiumName = "Chromium kiosk"
)

func replayName(i int) string { return fmt.Sprintf("Replay guest %d", i) }

// roomdEnv names a roomd binary to measure instead of building
// ./cmd/roomd, e.g. a release build.
const roomdEnv = "ATRIUM_KIOSKBENCH_ROOMD"

// Bounds of the harness's waits.
const (
	mediaTimeout = 30 * time.Second
	// displayTimeout bounds the wait for the kiosk to show what roomd
	// receives, and for its first page load.
	displayTimeout = 60 * time.Second
	// sampleEvery is the resource sampling interval.
	sampleEvery = time.Second
)

// harness holds what lives for the whole run: Janus and its room, the
// publishers, roomd with its kiosk on an X display.
type harness struct {
	tb     testing.TB
	ctx    context.Context
	logger *slog.Logger
	art    string // screenshots of failed delay measurements

	srv      *janustest.Server
	roomURL  string
	live     *liveSource
	clip     *replayClip
	pubs     []*publisher
	roomd    *roomdtest.Daemon
	kioskPID int
	kiosk    *proc.Process
	xvfbPID  int
	screen   *screen
}

// newHarness starts everything but the publishers. It fails the test when
// a piece is missing.
func newHarness(tb testing.TB, ctx context.Context) *harness {
	tb.Helper()
	requireTools(tb)
	if _, err := os.Stat(chromium.Path); err != nil {
		tb.Fatalf("kioskbench: the alternative needs Chromium at %s (apt-get install chromium): %v", chromium.Path, err)
	}
	h := &harness{tb: tb, ctx: ctx, logger: slog.New(slog.DiscardHandler), art: tb.TempDir()}
	if dir := os.Getenv("ATRIUM_ARTIFACTS"); dir != "" {
		h.art = filepath.Join(dir, "kioskbench")
		if err := os.MkdirAll(h.art, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	root := roomdtest.RepoRoot(tb)

	// The clip is encoded while the programs build and start.
	var clipErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.clip, clipErr = encodeReplayClip(ctx, h.logger)
	}()
	tb.Cleanup(wg.Wait) // when a Fatal below skips the Wait

	h.srv = janustest.Start(tb)
	js, err := dialJanus(ctx, h.srv.WSURL)
	if err != nil {
		tb.Fatal(err)
	}
	err = js.createRoom(ctx)
	js.close()
	if err != nil {
		tb.Fatalf("kioskbench: %v", err)
	}
	u, err := url.Parse(h.srv.WSURL)
	if err != nil {
		tb.Fatal(err)
	}
	h.roomURL = fmt.Sprintf("janus+ws://%s/?room=%d", u.Host, benchRoom)

	roomdBin := os.Getenv(roomdEnv)
	if roomdBin == "" {
		roomdBin = roomdtest.Build(tb, "./cmd/roomd")
	} else if _, err := os.Stat(roomdBin); err != nil {
		tb.Fatalf("kioskbench: roomd from %s: %v", roomdEnv, err)
	}
	kioskBin := buildKiosk(tb, root)
	h.roomd = roomdtest.Launch(tb, roomdBin, roomdtest.Options{Config: func(cfg *config.Config) {
		cfg.HAL.Simulated.CameraWidth, cfg.HAL.Simulated.CameraHeight, cfg.HAL.Simulated.CameraFPS = videoW, videoH, videoFPS
	}})
	if err := h.roomd.WaitReady(roomdtest.ReadyTimeout); err != nil {
		tb.Fatalf("kioskbench: roomd: %v\n%s", err, h.roomd.Log())
	}
	display, xvfb := startXvfb(tb)
	h.xvfbPID = xvfb
	h.kiosk, h.kioskPID = startKiosk(tb, kioskBin, display, h.roomd.URL+"/")
	h.screen, err = openScreen(display)
	if err != nil {
		tb.Fatalf("kioskbench: %v", err)
	}
	tb.Cleanup(h.screen.close)
	tb.Cleanup(h.closePublishers)
	h.waitKioskUp()

	wg.Wait()
	if clipErr != nil {
		tb.Fatalf("kioskbench: %v", clipErr)
	}
	h.live = &liveSource{logger: h.logger}
	return h
}

// waitKioskUp waits for the kiosk's first page on the screen: the root
// window is black until roomkiosk draws, and the UI has light text.
func (h *harness) waitKioskUp() {
	h.tb.Helper()
	deadline := time.Now().Add(displayTimeout)
	for {
		s, err := h.screen.grab()
		if err != nil {
			h.tb.Fatalf("kioskbench: %v", err)
		}
		light := 0
		for _, v := range s.luma {
			if v > 160 {
				light++
			}
		}
		if light > 2000 {
			return
		}
		if time.Now().After(deadline) {
			h.saveShot("kiosk-not-up")
			h.tb.Fatalf("kioskbench: roomkiosk drew nothing within %s (screenshot in %s)", displayTimeout, h.art)
		}
		sleep(h.ctx, 500*time.Millisecond)
	}
}

// setPublishers makes the room hold n guests: the live one first, then
// replaying ones.
func (h *harness) setPublishers(n int) {
	h.tb.Helper()
	for len(h.pubs) < n {
		var p *publisher
		var err error
		if len(h.pubs) == 0 {
			p, err = startPublisher(h.ctx, h.srv.WSURL, h.srv.ICEAddr, liveName, h.live)
		} else {
			p, err = startPublisher(h.ctx, h.srv.WSURL, h.srv.ICEAddr, replayName(len(h.pubs)+1), replaySource{h.clip})
		}
		if err != nil {
			h.tb.Fatalf("kioskbench: %v\n--- janus ---\n%s", err, h.srv.Log())
		}
		h.pubs = append(h.pubs, p)
	}
	for len(h.pubs) > n {
		p := h.pubs[len(h.pubs)-1]
		h.pubs = h.pubs[:len(h.pubs)-1]
		if err := p.close(); err != nil {
			h.tb.Errorf("kioskbench: %v", err)
		}
	}
}

func (h *harness) closePublishers() {
	for _, p := range slices.Backward(h.pubs) {
		if err := p.close(); err != nil {
			h.tb.Errorf("kioskbench: %v", err)
		}
	}
	h.pubs = nil
}

// publisherNames are the display names of the guests in the room.
func (h *harness) publisherNames() []string {
	var out []string
	for _, p := range h.pubs {
		out = append(out, p.name)
	}
	return out
}

// round is one count's measurements.
type round struct {
	n        int
	kiosk    usage // roomd + roomkiosk and WebKit's processes
	roomd    usage // roomd alone, part of kiosk
	webview  usage // roomkiosk and WebKit's processes, part of kiosk
	chromium usage // the alternative
	// roomdFPS is the frames per second roomd reassembled, per remote
	// video track; chromiumFPS what Chromium decoded, per feed.
	roomdFPS, chromiumFPS []float64
	delay                 delayResult
	// page is what the kiosk's page reported about its tiles during the
	// resource window and the delay measurement.
	page []pageStats
}

// usage is one measurement window of a set of processes, and what else
// ran on the machine meanwhile.
type usage struct {
	window       time.Duration
	cpu          time.Duration
	rssMax       int64
	pssMax       int64
	procs        string // process names seen, with counts
	publishers   time.Duration
	janus        time.Duration
	xvfb         time.Duration // the X server the kiosk draws on
	machineTicks int64         // all CPUs, every process, from /proc/stat
	// keyRequests reached the live guest during the window.
	keyRequests int64
}

// measureKiosk has roomd join the room with the n guests, waits for the
// live guest on the kiosk's screen, and measures roomd with its kiosk.
func (h *harness) measureKiosk(p plan, r *round) {
	h.tb.Helper()
	ctx, tb := h.ctx, h.tb
	if m, err := h.roomd.Client.Join(ctx, h.roomURL); err != nil {
		tb.Fatalf("kioskbench: roomd join: %v (%+v)\n%s", err, m, h.roomd.Log())
	}
	mctx, cancel := context.WithTimeout(ctx, mediaTimeout)
	defer cancel()
	for {
		c := h.callStatus(mctx)
		if tracks := videoTracks(c); len(tracks) >= r.n && !slices.ContainsFunc(tracks, func(t apiv1.ReceivedTrack) bool { return t.Frames == 0 }) {
			break
		}
		select {
		case <-mctx.Done():
			tb.Fatalf("kioskbench: roomd does not receive %d video tracks: %v; status: %+v\n%s", r.n, mctx.Err(), h.callStatus(ctx), h.roomd.Log())
		case <-time.After(100 * time.Millisecond):
		}
	}
	// On screen: the live guest's stamp decodes in a screenshot.
	deadline := time.Now().Add(displayTimeout)
	for {
		if d := h.sampleDelay(); d.ok {
			break
		}
		if time.Now().After(deadline) {
			h.saveShot(fmt.Sprintf("no-live-tile-n%d", r.n))
			st, err := h.roomd.Client.Status(ctx)
			tb.Fatalf("kioskbench: the live guest's picture is not on the kiosk's screen %s after roomd received %d streams (screenshot in %s; roomd's meeting: %+v %v)",
				displayTimeout, r.n, h.art, st.Meeting, err)
		}
		sleep(ctx, 200*time.Millisecond)
	}
	sleep(ctx, p.settle)

	logFrom := len(h.kiosk.Log())
	st0 := h.callStatus(ctx)
	roomdOnly := func(procs map[int]procstat.Stat) []int { return []int{h.roomd.PID()} }
	webview := func(procs map[int]procstat.Stat) []int { return procstat.Tree(procs, h.kioskPID) }
	us := h.window(p.window, roomdOnly, webview)
	st1 := h.callStatus(ctx)
	r.roomd, r.webview = us[0], us[1]
	r.kiosk = combine(us[0], us[1])
	r.roomdFPS = trackRates(st0, st1, us[0].window)

	if slices.Contains(p.delayRounds, r.n) {
		r.delay = h.measureDelay(p.delaySamples, r.n)
	}
	r.page = parsePageStats(h.kiosk.Log()[logFrom:])
	for _, ps := range r.page {
		h.tb.Logf("N=%d page: %+v decode %+v wait %+v draw %+v", r.n, ps, ps.DecodeMs, ps.WaitMs, ps.DrawMs)
	}

	if _, err := h.roomd.Client.Leave(ctx); err != nil {
		tb.Fatalf("kioskbench: roomd leave: %v", err)
	}
}

// measureChromium puts a headless Chromium in the room with the n guests
// and measures it once it decodes them all.
func (h *harness) measureChromium(p plan, r *round) {
	h.tb.Helper()
	ctx, tb := h.ctx, h.tb
	sc := tbscope.New(tb)
	defer sc.Close()
	procs, err := procstat.All()
	if err != nil {
		tb.Fatal(err)
	}
	before := childrenNamed(procs, os.Getpid(), "chromium")
	g := guest.Start(sc, guest.Options{JanusWS: h.srv.WSURL, Room: benchRoom, Display: chromiumName, Artifacts: filepath.Join(h.art, fmt.Sprintf("chromium-n%d", r.n))})
	if procs, err = procstat.All(); err != nil {
		tb.Fatal(err)
	}
	var browser []int
	for _, pid := range childrenNamed(procs, os.Getpid(), "chromium") {
		if !slices.Contains(before, pid) {
			browser = append(browser, pid)
		}
	}
	if len(browser) != 1 {
		tb.Fatalf("kioskbench: cannot tell Chromium's browser process: new chromium children %v", browser)
	}
	if err := g.WaitJoined(ctx); err != nil {
		tb.Fatalf("kioskbench: Chromium join: %v", err)
	}
	mctx, cancel := context.WithTimeout(ctx, mediaTimeout)
	defer cancel()
	for _, name := range h.publisherNames() {
		if _, err := g.WaitFeed(mctx, name, func(f guest.Feed) bool { return f.VideoFramesDecoded > 0 }); err != nil {
			tb.Fatalf("kioskbench: Chromium does not decode %q: %v", name, err)
		}
	}
	sleep(ctx, p.settle)
	s0, err := g.Stats(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	us := h.window(p.window, func(procs map[int]procstat.Stat) []int { return procstat.Tree(procs, browser[0]) })
	s1, err := g.Stats(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	r.chromium = us[0]
	for _, name := range h.publisherNames() {
		f0, f1 := feedOf(s0, name), feedOf(s1, name)
		r.chromiumFPS = append(r.chromiumFPS, float64(f1.VideoFramesDecoded-f0.VideoFramesDecoded)/us[0].window.Seconds())
	}
	if err := g.Leave(ctx); err != nil {
		tb.Fatalf("kioskbench: Chromium leave: %v", err)
	}
}

func feedOf(s guest.Stats, display string) guest.Feed {
	for _, f := range s.RemoteFeeds {
		if f.Display == display {
			return f
		}
	}
	return guest.Feed{}
}

// window samples the process sets every second for d: CPU from the first
// sample to the last, the largest summed Rss and Pss. The test process
// (the publishers) and Janus are measured alongside.
func (h *harness) window(d time.Duration, sets ...func(map[int]procstat.Stat) []int) []usage {
	h.tb.Helper()
	meters := make([]*cpuMeter, len(sets))
	for i := range meters {
		meters[i] = newCPUMeter()
	}
	out := make([]usage, len(sets))
	self, janus, xvfb := newCPUMeter(), newCPUMeter(), newCPUMeter()
	keys0 := h.pubs[0].keyRequests.Load()
	machine0 := machineTicks()
	start := time.Now()
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for {
		procs, err := procstat.All()
		if err != nil {
			h.tb.Fatal(err)
		}
		for i, set := range sets {
			pids := set(procs)
			meters[i].sample(procs, pids)
			rss, pss := memory(pids)
			out[i].rssMax, out[i].pssMax = max(out[i].rssMax, rss), max(out[i].pssMax, pss)
		}
		self.sample(procs, []int{os.Getpid()})
		janus.sample(procs, childrenNamed(procs, os.Getpid(), "janus"))
		xvfb.sample(procs, []int{h.xvfbPID})
		if time.Since(start) >= d {
			break
		}
		select {
		case <-h.ctx.Done():
			h.tb.Fatal(h.ctx.Err())
		case <-tick.C:
		}
	}
	elapsed := time.Since(start)
	pubCPU, _ := self.total()
	janusCPU, _ := janus.total()
	xvfbCPU, _ := xvfb.total()
	all := machineTicks() - machine0
	keys := h.pubs[0].keyRequests.Load() - keys0
	for i, m := range meters {
		out[i].cpu, out[i].procs = m.total()
		out[i].window, out[i].publishers, out[i].janus, out[i].xvfb, out[i].machineTicks = elapsed, pubCPU, janusCPU, xvfbCPU, all
		out[i].keyRequests = keys
	}
	return out
}

// combine adds two process sets measured over the same window.
func combine(a, b usage) usage {
	c := a
	c.cpu += b.cpu
	c.rssMax += b.rssMax
	c.pssMax += b.pssMax
	c.procs = a.procs + ", " + b.procs
	return c
}

func (h *harness) callStatus(ctx context.Context) *apiv1.Call {
	st, err := h.roomd.Client.Status(ctx)
	if err != nil || st.Call == nil {
		return &apiv1.Call{}
	}
	return st.Call
}

func videoTracks(c *apiv1.Call) []apiv1.ReceivedTrack {
	var out []apiv1.ReceivedTrack
	for _, p := range c.Peers {
		for _, t := range p.Recv {
			if t.Kind == "video" {
				out = append(out, t)
			}
		}
	}
	return out
}

// trackRates is the frames per second of each video track present in both
// statuses.
func trackRates(c0, c1 *apiv1.Call, d time.Duration) []float64 {
	var out []float64
	before := map[string]uint64{}
	for _, t := range videoTracks(c0) {
		before[t.ID] = t.Frames
	}
	for _, t := range videoTracks(c1) {
		if f0, ok := before[t.ID]; ok {
			out = append(out, float64(t.Frames-f0)/d.Seconds())
		}
	}
	return out
}

// delayResult is the capture-to-display delay of one round.
type delayResult struct {
	samples   []time.Duration // screenshot request minus the stamp's capture time
	grabs     []time.Duration // each screenshot's round trip
	attempts  int
	distinct  int // distinct frames among the samples
	tileWidth int // the live tile's picture width on screen, pixels
	// burst is a run of back-to-back screenshots: how long it lasted, how
	// many read a stamp, and how often the frame changed between them.
	burst                            time.Duration
	burstTaken, burstShots, burstNew int
}

// delaySample is one screenshot read for the live guest's stamp.
type delaySample struct {
	ok    bool
	delay time.Duration
	grab  time.Duration
	seq   uint64
	width int
}

// sampleDelay takes a screenshot and reads the live guest's stamp from it.
func (h *harness) sampleDelay() delaySample {
	s, err := h.screen.grab()
	if err != nil {
		h.tb.Fatalf("kioskbench: %v", err)
	}
	for _, r := range findStamps(s) {
		seq, captured, at, ok := decodeAt(s, r)
		if ok && h.live.isLive(seq, captured) {
			return delaySample{ok: true, delay: s.sent.Sub(captured), grab: s.done.Sub(s.sent), seq: seq, width: at.w}
		}
	}
	return delaySample{grab: s.done.Sub(s.sent)}
}

// measureDelay reads the live guest's stamp from want screenshots, spaced
// 100-200 ms apart at random so as not to lock to the frame rate.
func (h *harness) measureDelay(want, n int) delayResult {
	var res delayResult
	seen := map[uint64]bool{}
	for len(res.samples) < want {
		res.attempts++
		if res.attempts > 3*want {
			h.saveShot(fmt.Sprintf("delay-n%d", n))
			h.tb.Fatalf("kioskbench: only %d of %d screenshots showed a readable stamp of the live guest (last screenshot in %s)", len(res.samples), res.attempts-1, h.art)
		}
		d := h.sampleDelay()
		res.grabs = append(res.grabs, d.grab)
		if d.ok {
			res.samples = append(res.samples, d.delay)
			res.tileWidth = d.width
			seen[d.seq] = true
		}
		sleep(h.ctx, 100*time.Millisecond+rand.N(100*time.Millisecond))
	}
	res.distinct = len(seen)

	// The displayed frame rate: screenshots as fast as X answers, and
	// the number of times the live tile showed a new frame.
	start := time.Now()
	var last uint64
	for time.Since(start) < burstLength {
		d := h.sampleDelay()
		res.burstTaken++
		if !d.ok {
			continue
		}
		res.burstShots++
		if res.burstShots > 1 && d.seq != last {
			res.burstNew++
		}
		last = d.seq
	}
	res.burst = time.Since(start)
	return res
}

// burstLength is how long measureDelay takes back-to-back screenshots.
const burstLength = 3 * time.Second

func (h *harness) saveShot(name string) {
	s, err := h.screen.grab()
	if err == nil {
		err = s.save(filepath.Join(h.art, name+".png"))
	}
	if err != nil {
		h.tb.Logf("kioskbench: screenshot %s: %v", name, err)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// run measures every count of the plan: roomd with its kiosk, then
// Chromium, with the same guests in the room.
func (h *harness) run(p plan) []round {
	var rounds []round
	for _, n := range p.counts {
		r := round{n: n}
		h.setPublishers(n)
		h.measureKiosk(p, &r)
		h.measureChromium(p, &r)
		h.tb.Logf("N=%d: kiosk CPU %.2fs (roomd %.2fs, webview %.2fs), Chromium CPU %.2fs, delay samples %d",
			n, r.kiosk.cpu.Seconds(), r.roomd.cpu.Seconds(), r.webview.cpu.Seconds(), r.chromium.cpu.Seconds(), len(r.delay.samples))
		rounds = append(rounds, r)
	}
	return rounds
}
