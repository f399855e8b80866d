package kioskbench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/atriumroom/atrium/test/chromium"
	"github.com/atriumroom/atrium/test/procstat"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// outPath overrides where BenchmarkKiosk writes its report.
var outPath = flag.String("kiosk.out", "", "file for BenchmarkKiosk's report (default: bench/results/kiosk.txt in the repository)")

// countsFlag narrows BenchmarkKiosk to some of its stream counts, e.g.
// -kiosk.counts=1 while working on the video path.
var countsFlag = flag.String("kiosk.counts", "", "comma-separated stream counts for BenchmarkKiosk (default: 1,4,9)")

// planFromFlags is benchPlan with -kiosk.counts applied.
func planFromFlags() (plan, error) {
	p := benchPlan
	if *countsFlag == "" {
		return p, nil
	}
	p.counts = nil
	for f := range strings.SplitSeq(*countsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > benchRoomSlots-2 {
			return plan{}, fmt.Errorf("-kiosk.counts: %q is not a stream count from 1 to %d", f, benchRoomSlots-2)
		}
		p.counts = append(p.counts, n)
	}
	p.delayRounds = p.counts
	return p, nil
}

// benchPlan is the published measurement. About 75 s a count on 2 cores.
var benchPlan = plan{
	counts:       []int{1, 4, 9},
	settle:       5 * time.Second,
	window:       20 * time.Second,
	delaySamples: 40,
	delayRounds:  []int{1, 4, 9},
}

// BenchmarkKiosk measures roomd with its kiosk, and Chromium as the
// alternative, showing 1, 4 and 9 remote 720p streams of one Janus room,
// and the capture-to-display delay on the kiosk. One invocation is the
// whole report:
//
//	go test -run '^$' -bench Kiosk -benchtime 1x -timeout 20m ./test/kioskbench/
func BenchmarkKiosk(b *testing.B) {
	if b.N > 1 {
		b.Fatal("BenchmarkKiosk runs its rounds itself: use -benchtime 1x")
	}
	p, err := planFromFlags()
	if err != nil {
		b.Fatal(err)
	}
	ctx := roomdtest.Context(b, 15*time.Minute)
	rep := &report{started: time.Now(), plan: p, loadStart: loadAverage()}
	h := newHarness(b, ctx)
	rep.env = environment(ctx, h)
	rep.rounds = h.run(p)
	rep.loadEnd = loadAverage()

	path := *outPath
	if path == "" {
		path = filepath.Join(roomdtest.RepoRoot(b), "bench", "results", "kiosk.txt")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(rep.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote %s", path)
	b.ReportMetric(0, "ns/op") // one op is the whole report
	for _, r := range rep.rounds {
		b.ReportMetric(cpuShare(r.kiosk), fmt.Sprintf("kiosk-cpu%%-n%d", r.n))
		b.ReportMetric(cpuShare(r.chromium), fmt.Sprintf("chromium-cpu%%-n%d", r.n))
		if len(r.delay.samples) > 0 {
			b.ReportMetric(float64(percentile(r.delay.samples, 50))/1e6, fmt.Sprintf("delay-ms-n%d", r.n))
		}
	}
}

// TestKioskHarness runs the harness briefly with two streams so that the
// benchmark cannot rot: every piece must work, the kiosk must show the
// live guest and Chromium must decode both guests, and every measured
// process must have used CPU and memory.
func TestKioskHarness(t *testing.T) {
	ctx := roomdtest.Context(t, 3*time.Minute)
	p := plan{counts: []int{2}, settle: time.Second, window: 3 * time.Second, delaySamples: 5, delayRounds: []int{2}}
	h := newHarness(t, ctx)
	rounds := h.run(p)
	r := rounds[0]
	for name, u := range map[string]usage{"roomd": r.roomd, "roomkiosk and WebKit": r.webview, "Chromium": r.chromium} {
		if u.cpu <= 0 || u.pssMax <= 0 || u.rssMax < u.pssMax {
			t.Errorf("%s: CPU %v, Rss %d, Pss %d: not measured", name, u.cpu, u.rssMax, u.pssMax)
		}
	}
	if !strings.Contains(r.webview.procs, "WebKitWebProces") {
		t.Errorf("the webview's processes %q lack WebKit's web process", r.webview.procs)
	}
	if len(r.roomdFPS) != 2 || len(r.chromiumFPS) != 2 {
		t.Errorf("frame rates for roomd %v, Chromium %v: want one per guest", r.roomdFPS, r.chromiumFPS)
	}
	if len(r.delay.samples) != p.delaySamples {
		t.Errorf("%d delay samples, want %d", len(r.delay.samples), p.delaySamples)
	}
	for _, d := range r.delay.samples {
		// A stamp from the future, or one older than the whole run, is a
		// misread (slow is not: a loaded CI machine may show old frames).
		if d <= 0 || d > time.Minute {
			t.Errorf("capture-to-display delay %v", d)
		}
	}
	t.Logf("delay samples %v; displayed fps %.1f", r.delay.samples, float64(r.delay.burstNew)/r.delay.burst.Seconds())
	rep := &report{started: time.Now(), plan: p, rounds: rounds}
	if s := rep.String(); !strings.Contains(s, "\n 2 |") {
		t.Errorf("the report has no row for N=2:\n%s", s)
	}
	t.Logf("N=2 delay median %v over %d samples", percentile(r.delay.samples, 50), len(r.delay.samples))
}

// env describes the machine and the programs.
type env struct {
	nproc                 int
	cpu                   string
	goVersion             string
	janus, chromium, gtk4 string
	source, roomd         string
}

func environment(ctx context.Context, h *harness) env {
	e := env{nproc: runtime.NumCPU(), goVersion: runtime.Version(), cpu: cpuModel(), source: "unknown", roomd: "built from ./cmd/roomd of this tree"}
	if bin := os.Getenv(roomdEnv); bin != "" {
		e.roomd = bin + " (from " + roomdEnv + ")"
	}
	git := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty")
	git.Dir = roomdtest.RepoRoot(h.tb)
	if out, err := git.Output(); err == nil {
		e.source = strings.TrimSpace(string(out))
	}
	if info, err := h.srv.Info(ctx); err == nil {
		e.janus, _ = info["version_string"].(string)
	}
	if out, err := exec.CommandContext(ctx, chromium.Path, "--version").Output(); err == nil {
		e.chromium = strings.TrimSpace(string(out))
	}
	if out, err := exec.CommandContext(ctx, "pkg-config", "--modversion", "webkit2gtk-4.1").Output(); err == nil {
		e.gtk4 = strings.TrimSpace(string(out))
	}
	return e
}

func cpuModel() string {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// percentile by nearest rank; p=50 is the median (the mean of the middle
// two for an even count).
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if p == 50 {
		if len(s)%2 == 0 {
			return (s[len(s)/2-1] + s[len(s)/2]) / 2
		}
		return s[len(s)/2]
	}
	i := (p*len(s) + 99) / 100
	return s[max(i, 1)-1]
}

func cpuShare(u usage) float64 {
	if u.window <= 0 {
		return 0
	}
	return 100 * u.cpu.Seconds() / u.window.Seconds()
}

func ratio(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

func ms(d time.Duration) string {
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
}

func rates(fps []float64) string {
	if len(fps) == 0 {
		return "-"
	}
	lo, hi := slices.Min(fps), slices.Max(fps)
	return fmt.Sprintf("%.1f-%.1f", lo, hi)
}

// report is the result file.
type report struct {
	started            time.Time
	plan               plan
	env                env
	loadStart, loadEnd string
	rounds             []round
}

func (r *report) String() string {
	var b strings.Builder
	e := r.env
	p := r.plan
	fmt.Fprintf(&b, "# Kiosk in a meeting: roomd + roomkiosk (WebKitGTK) versus Chromium, 1/4/9 remote 720p streams\n")
	fmt.Fprintf(&b, "# go test -run '^$' -bench Kiosk -benchtime 1x -timeout 20m ./test/kioskbench/  (test/kioskbench)\n\n")
	fmt.Fprintf(&b, "date:      %s\n", r.started.Format(time.RFC3339))
	fmt.Fprintf(&b, "machine:   %d CPUs (nproc), %s\n", e.nproc, e.cpu)
	fmt.Fprintf(&b, "go:        %s\n", e.goVersion)
	fmt.Fprintf(&b, "source:    %s (git describe); roomd %s, roomkiosk built from ./cmd/roomkiosk\n", e.source, e.roomd)
	fmt.Fprintf(&b, "janus:     %s (janus.plugin.videoroom, room %d created by the bench: VP8, %d publishers, REMB cap %d kbit/s)\n", e.janus, benchRoom, benchRoomSlots, benchRoomBitrate/1000)
	fmt.Fprintf(&b, "webview:   roomkiosk on WebKitGTK %s (webkit2gtk-4.1), Xvfb %dx%d, no window manager\n", e.gtk4, screenW, screenH)
	fmt.Fprintf(&b, "chromium:  %s, headless (test/guest)\n", e.chromium)
	fmt.Fprintf(&b, "load:      %s at the start, %s at the end (1, 5, 15 min)\n", r.loadStart, r.loadEnd)
	fmt.Fprintf(&b, "network:   one private veth address in the test's own network namespace; no loss, no delay\n\n")

	fmt.Fprintf(&b, "## Setup\n\n")
	fmt.Fprintf(&b, "N far-end guests publish %dx%d@%d VP8 (no audio) into one Janus room. Guest 1 (%q) sends\n", videoW, videoH, videoFPS, liveName)
	fmt.Fprintf(&b, "hal/sim's camera, encoded live by hal/swcodec (libvpx, %d kbit/s CBR): its frames carry the\n", videoBitrate/1000)
	fmt.Fprintf(&b, "burned-in capture time (hal/sim's stamp, repeated by the bench across the middle of the\n")
	fmt.Fprintf(&b, "picture, as the call screen's overlays may cover the top-left corner). Guests 2..N replay %s\n", replayLength)
	fmt.Fprintf(&b, "of the same camera (stamp band painted grey), encoded once at the start with a keyframe every\n")
	fmt.Fprintf(&b, "%s, in a loop, so that N streams do not cost N live encoders. All guests are pion peers in the\n", replayKeyframes)
	fmt.Fprintf(&b, "test process with their own Janus sessions, each sending one layer (no simulcast): every\n")
	fmt.Fprintf(&b, "subscriber receives 720p from each.\n")
	fmt.Fprintf(&b, "For each N, first roomd joins (its simulated %dx%d@%d camera published, as in a real meeting)\n", videoW, videoH, videoFPS)
	fmt.Fprintf(&b, "and the kiosk shows the N tiles; roomd leaves; then a headless Chromium (test/guest: janus.js,\n")
	fmt.Fprintf(&b, "publishing its fake 720p camera and microphone, one <video> per remote feed) joins the same\n")
	fmt.Fprintf(&b, "room with the same N guests; it leaves and closes. roomd and roomkiosk keep running (idle, on\n")
	fmt.Fprintf(&b, "the home screen) during Chromium's window and are not counted in it.\n\n")

	fmt.Fprintf(&b, "## 1. CPU and memory (%s window, %s after every stream is on screen)\n\n", p.window, p.settle)
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintf(tw, " N\t kiosk CPU\t roomd\t webview\t Chromium CPU\t CPU kiosk/Chromium\t kiosk Pss\t Chromium Pss\t Pss ratio\t kiosk Rss\t Chromium Rss\t Rss ratio\t\n")
	for _, x := range r.rounds {
		fmt.Fprintf(tw, " %d\t %.0f%%\t %.0f%%\t %.0f%%\t %.0f%%\t %s\t %s\t %s\t %s\t %s\t %s\t %s\t\n", x.n,
			cpuShare(x.kiosk), cpuShare(x.roomd), cpuShare(x.webview), cpuShare(x.chromium),
			ratio(x.kiosk.cpu.Seconds(), x.chromium.cpu.Seconds()),
			mib(x.kiosk.pssMax), mib(x.chromium.pssMax), ratio(float64(x.kiosk.pssMax), float64(x.chromium.pssMax)),
			mib(x.kiosk.rssMax), mib(x.chromium.rssMax), ratio(float64(x.kiosk.rssMax), float64(x.chromium.rssMax)))
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nCPU is a share of one core (100%% = one core busy for the whole window). Memory is the largest\n")
	fmt.Fprintf(&b, "1 s sample of the processes' summed Pss (shared pages divided among their users) and Rss\n")
	fmt.Fprintf(&b, "(counted in every process that maps them).\n\n")

	fmt.Fprintf(&b, "Frames per second, and what else ran in each window (share of one core):\n\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintf(tw, " N\t roomd received fps (min-max per track)\t Chromium decoded fps\t Xvfb, kiosk window\t guests (test process), kiosk / Chromium window\t Janus, kiosk / Chromium window\t machine busy, kiosk / Chromium window\t keyframe requests to the live guest, kiosk / Chromium window\t\n")
	for _, x := range r.rounds {
		fmt.Fprintf(tw, " %d\t %s\t %s\t %.0f%%\t %.0f%% / %.0f%%\t %.0f%% / %.0f%%\t %s / %s\t %d / %d\t\n", x.n, rates(x.roomdFPS), rates(x.chromiumFPS),
			share(x.kiosk.xvfb, x.kiosk.window),
			share(x.kiosk.publishers, x.kiosk.window), share(x.chromium.publishers, x.chromium.window),
			share(x.kiosk.janus, x.kiosk.window), share(x.chromium.janus, x.chromium.window),
			busy(x.kiosk, e.nproc), busy(x.chromium, e.nproc), x.kiosk.keyRequests, x.chromium.keyRequests)
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nProcesses counted:\n")
	for _, x := range r.rounds {
		fmt.Fprintf(&b, "  N=%d kiosk: %s\n", x.n, x.kiosk.procs)
		fmt.Fprintf(&b, "  N=%d Chromium: %s\n", x.n, x.chromium.procs)
	}
	fmt.Fprintf(&b, "\n")

	fmt.Fprintf(&b, "## 2. Capture -> display delay on the kiosk (live guest)\n\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintf(tw, " N\t samples\t distinct frames\t tile width\t median\t p90\t min\t max\t screenshot round trip (median)\t displayed fps (burst)\t\n")
	for _, x := range r.rounds {
		d := x.delay
		if len(d.samples) == 0 {
			fmt.Fprintf(tw, " %d\t not measured\t\t\t\t\t\t\t\t\t\n", x.n)
			continue
		}
		fmt.Fprintf(tw, " %d\t %d/%d\t %d\t %d px\t %s\t %s\t %s\t %s\t %s\t %.1f (%d/%d shots)\t\n", x.n, len(d.samples), d.attempts, d.distinct, d.tileWidth,
			ms(percentile(d.samples, 50)), ms(percentile(d.samples, 90)), ms(slices.Min(d.samples)), ms(slices.Max(d.samples)), ms(percentile(d.grabs, 50)),
			float64(d.burstNew)/d.burst.Seconds(), d.burstShots, d.burstTaken)
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nMethod: after the resource window, screenshots of the X root window (X11 GetImage over the\n")
	fmt.Fprintf(&b, "  unix socket, github.com/jezek/xgb) 100-200 ms apart at random. In each, the bench looks for\n")
	fmt.Fprintf(&b, "  the first row of hal/sim's stamp (its sync pattern) line by line, takes the 16:9 picture it\n")
	fmt.Fprintf(&b, "  would top, and decodes the stamp with sim.DecodeStamp (CRC-checked). Only the live guest's frames\n")
	fmt.Fprintf(&b, "  count: their capture times are exactly the live camera's start plus a whole number of frame\n")
	fmt.Fprintf(&b, "  periods (roomd's own camera, in a self-view, is not). Delay = the moment the GetImage request\n")
	fmt.Fprintf(&b, "  was sent minus the stamped capture time. Both are this host's clock. It covers the guest's\n")
	fmt.Fprintf(&b, "  VP8 encode, pion -> Janus -> roomd (RTP reassembly), roomd's WebSocket feed to the page,\n")
	fmt.Fprintf(&b, "  WebKit's WebCodecs decode, the canvas draw and WebKit's compositing into the X window.\n")
	fmt.Fprintf(&b, "  The stamp says when the camera was due to capture the frame (hal/sim renders it then), so a\n")
	fmt.Fprintf(&b, "  frame shown for a while counts from its capture: the delay includes up to one frame period\n")
	fmt.Fprintf(&b, "  (%s) of a picture that is simply still on screen; the X server copies the screen when it\n", framePeriod.Round(time.Millisecond))
	fmt.Fprintf(&b, "  handles the request, within the round trip shown. Screenshots that caught no readable stamp\n")
	fmt.Fprintf(&b, "  (a tile mid-repaint) are retried and counted in \"samples\" as attempts.\n")
	fmt.Fprintf(&b, "Displayed fps: then %s of back-to-back screenshots; the number of times the live tile's\n", burstLength)
	fmt.Fprintf(&b, "  frame changed between consecutive readable ones, per second (shots: readable/taken). A\n")
	fmt.Fprintf(&b, "  lower bound when the kiosk shows frames faster than the screenshots come (see the round\n")
	fmt.Fprintf(&b, "  trip); the screenshots also load Xvfb and so compete with the kiosk.\n\n")

	fmt.Fprintf(&b, "## 3. Inside the kiosk's page (WebKit's own timings, from ui/web/call.js)\n\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintf(tw, " N\t fps received / decoded / drawn\t decode / wait / draw (median)\t skipped / superseded / flushes / resets\t decode queue max\t canvas\t\n")
	for _, x := range r.rounds {
		fmt.Fprintf(tw, " %d\t %s\t\n", x.n, pageSummary(x.page))
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nMethod: the page, loaded with ?videostats, logs one line per tile every 5 s (roomkiosk\n")
	fmt.Fprintf(&b, "  -console copies it to its output) over the resource window and the delay measurement.\n")
	fmt.Fprintf(&b, "  Rates are per tile, the median over all lines; times are the median of each line's median.\n")
	fmt.Fprintf(&b, "  decode: VideoDecoder.decode() to its output callback; wait: output to the\n")
	fmt.Fprintf(&b, "  requestAnimationFrame that draws it; draw: the drawImage call. skipped: chunks not decoded\n")
	fmt.Fprintf(&b, "  while waiting for a keyframe; superseded: decoded frames closed undrawn because a newer one\n")
	fmt.Fprintf(&b, "  came before the next animation frame; flushes: decoder backlogs dropped at a keyframe.\n\n")

	fmt.Fprintf(&b, "Method, CPU: utime+stime from /proc/PID/stat at 1 s samples over the window; the kiosk is roomd\n")
	fmt.Fprintf(&b, "  plus roomkiosk and all its descendants (WebKitWebProcess, WebKitNetworkProcess, any GPU\n")
	fmt.Fprintf(&b, "  process), Chromium is the browser process and all its descendants; a process counts from its\n")
	fmt.Fprintf(&b, "  first sample to its last. \"guests\" is this test process (the N publishers, the live encoder,\n")
	fmt.Fprintf(&b, "  the sampling), Janus its janus child; Xvfb, the X server the kiosk draws on, is not counted\n")
	fmt.Fprintf(&b, "  in the kiosk (a device has a display server too; headless Chromium needs none);\n")
	fmt.Fprintf(&b, "  \"machine busy\" is /proc/stat's non-idle time of all CPUs as a share of all CPUs,\n")
	fmt.Fprintf(&b, "  including other work on this machine. Keyframe requests are the PLIs and FIRs that reached\n")
	fmt.Fprintf(&b, "  the live guest from Janus, which relays its subscribers' (the room has fir_freq 10 s, whose\n")
	fmt.Fprintf(&b, "  own requests would show in both columns). roomd asks when the kiosk's page does, and the\n")
	fmt.Fprintf(&b, "  page asks when its decoder fails, or when it fell behind and no keyframe came within 1 s.\n")
	fmt.Fprintf(&b, "Method, memory: Rss and Pss from /proc/PID/smaps_rollup, summed over the set, sampled each\n")
	fmt.Fprintf(&b, "  second; the largest sum.\n")
	fmt.Fprintf(&b, "Not identical workloads: both publish a 720p camera and receive N streams. roomd reassembles\n")
	fmt.Fprintf(&b, "  the video and forwards it to the page, which decodes it with WebCodecs (backed by GStreamer\n")
	fmt.Fprintf(&b, "  in WebKitGTK) and draws it into canvases on a %dx%d X screen; Chromium decodes it itself\n", screenW, screenH)
	fmt.Fprintf(&b, "  and shows it in <video> elements, headless (it renders, but to no screen). roomd receives no\n")
	fmt.Fprintf(&b, "  audio from the guests (they send none); Chromium sends its fake microphone, roomd its\n")
	fmt.Fprintf(&b, "  simulated one. Janus and the guests are not counted on either side.\n")
	return b.String()
}

func share(d, window time.Duration) float64 {
	if window <= 0 {
		return 0
	}
	return 100 * d.Seconds() / window.Seconds()
}

func busy(u usage, nproc int) string {
	if u.machineTicks <= 0 || u.window <= 0 || nproc <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(u.machineTicks)/procstat.ClockTicks/u.window.Seconds()/float64(nproc))
}
