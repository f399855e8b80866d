package interop

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/url"
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

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/test/chromium"
	"github.com/atriumroom/atrium/test/guest"
	"github.com/atriumroom/atrium/test/janustest"
	"github.com/atriumroom/atrium/test/roomdtest"
	"github.com/atriumroom/atrium/test/tbscope"
)

// The benchmark's shape and bounds. On 2 cores it takes about 2 minutes;
// benchTimeout ends it if something hangs.
const (
	joinRuns     = 10
	callDuration = 60 * time.Second
	runTimeout   = 30 * time.Second
	benchTimeout = 6 * time.Minute
	// maxFailedRuns ends a part that keeps failing rather than report a
	// median of a few runs.
	maxFailedRuns = 3
	// statusPoll is how often roomd's status is read while waiting for its
	// first frame; the time itself is roomd's, so this only bounds latency
	// of noticing it.
	statusPoll = 50 * time.Millisecond
	// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
	// every Linux architecture Atrium runs on.
	clockTicks = 100
)

// Display names in the room. roomd joins as its room name (Daemon.Room).
const (
	farEndName  = "Chromium far end"
	callPartner = "Chromium call partner"
)

// BenchmarkJoin compares roomd with Chromium as guests of the same real
// Janus room: (1) the time from starting to join to the first remote
// video frame, 10 runs each, with a publishing Chromium already in the
// room; (2) CPU time and peak memory over a 60 s two-party call at 720p30
// between roomd and one Chromium. One invocation is the whole report:
//
//	go test -run '^$' -bench Join -benchtime 1x ./test/interop/
//
// It writes bench/results/join.txt and reports the key numbers as metrics.
func BenchmarkJoin(b *testing.B) {
	if b.N > 1 {
		b.Fatalf("BenchmarkJoin runs its %d runs itself: use -benchtime 1x", joinRuns)
	}
	ctx := roomdtest.Context(b, benchTimeout)
	rep := &joinReport{started: time.Now()}

	srv := janustest.Start(b)
	bin := roomdtest.Build(b, "./cmd/roomd")
	roomURL, err := janusRoomURLOf(srv, janustest.Room)
	if err != nil {
		b.Fatal(err)
	}
	rep.env = environment(ctx, srv)
	rep.loadStart = loadAverage()

	// Part 1: join times, roomd and Chromium runs interleaved so that any
	// drift in the far end or Janus touches both alike.
	func() {
		sc := tbscope.New(b)
		defer sc.Close()
		far := guest.Start(sc, guest.Options{JanusWS: srv.WSURL, Room: janustest.Room, Display: farEndName})
		if err := far.WaitJoined(ctx); err != nil {
			b.Fatal(err)
		}
		d := launchRoomd(sc, bin)
		for i := range joinRuns {
			r := roomdJoinRun(ctx, d, roomURL)
			if err := roomdLeave(ctx, d, far); err != nil {
				b.Fatalf("roomd run %d: leave: %v\n--- roomd ---\n%s", i+1, err, d.Log())
			}
			rep.roomd = append(rep.roomd, r)
			b.Logf("roomd run %d: %s", i+1, r)

			r = chromiumJoinRun(ctx, b, srv, far, fmt.Sprintf("Chromium joiner %d", i+1))
			rep.chromium = append(rep.chromium, r)
			b.Logf("Chromium run %d: %s", i+1, r)

			if f := max(failures(rep.roomd), failures(rep.chromium)); f >= maxFailedRuns {
				b.Fatalf("%d runs failed; last roomd: %s; last Chromium: %s\n--- roomd ---\n%s", f, rep.roomd[i], r, d.Log())
			}
		}
	}()

	// Part 2: a fresh roomd and a fresh Chromium in a call of two.
	rep.call = measureCall(ctx, b, bin, srv, roomURL)

	rep.loadEnd = loadAverage()
	path := filepath.Join(roomdtest.RepoRoot(b), "bench", "results", "join.txt")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(rep.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote %s", path)
	rep.reportMetrics(b)
}

func janusRoomURLOf(srv *janustest.Server, room int) (string, error) {
	u, err := url.Parse(srv.WSURL)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("janus+ws://%s/?room=%d", u.Host, room), nil
}

// launchRoomd starts roomd with a 1280x720 30 fps simulated camera (the
// meeting's maximum by default) and info-level logs.
func launchRoomd(tb testing.TB, bin string) *roomdtest.Daemon {
	tb.Helper()
	d := roomdtest.Launch(tb, bin, roomdtest.Options{Config: func(cfg *config.Config) {
		cfg.HAL.Simulated.CameraWidth, cfg.HAL.Simulated.CameraHeight, cfg.HAL.Simulated.CameraFPS = 1280, 720, 30
		cfg.Log.Level = "info"
	}})
	if err := d.WaitReady(roomdtest.ReadyTimeout); err != nil {
		tb.Fatalf("roomd: %v\n%s", err, d.Log())
	}
	return d
}

// joinRun is one measured join.
type joinRun struct {
	firstFrame time.Duration      // from the start of joining to the first remote video frame
	returned   time.Duration      // roomd only: until POST /meeting/join answered
	state      apiv1.MeetingState // roomd only: the state that POST answered with
	err        error
}

func (r joinRun) String() string {
	if r.err != nil {
		return "failed: " + r.err.Error()
	}
	s := "first frame " + ms(r.firstFrame)
	if r.returned > 0 {
		s += fmt.Sprintf(", POST answered %s (%s)", ms(r.returned), r.state)
	}
	return s
}

func failures(rs []joinRun) int {
	n := 0
	for _, r := range rs {
		if r.err != nil {
			n++
		}
	}
	return n
}

// roomdJoinRun times POST /meeting/join to the FirstFrameAt of the first
// remote video track in roomd's call status. Both times are this host's
// wall clock: the test's before the request, roomd's at the frame.
func roomdJoinRun(ctx context.Context, d *roomdtest.Daemon, roomURL string) joinRun {
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	start := time.Now()
	m, err := d.Client.Join(ctx, roomURL)
	returned := time.Since(start)
	if err != nil {
		return joinRun{err: fmt.Errorf("join: %w (meeting %+v)", err, m)}
	}
	for {
		st, err := d.Client.Status(ctx)
		if err == nil && st.Call != nil {
			if at := firstVideoFrame(st.Call); !at.IsZero() {
				return joinRun{firstFrame: at.Sub(start), returned: returned, state: m.State}
			}
		}
		select {
		case <-ctx.Done():
			return joinRun{err: fmt.Errorf("no remote video frame: %w (meeting %+v)", ctx.Err(), st.Meeting)}
		case <-time.After(statusPoll):
		}
	}
}

// firstVideoFrame is the earliest first-frame time of the call's received
// video tracks, or zero.
func firstVideoFrame(c *apiv1.Call) time.Time {
	var first time.Time
	for _, p := range c.Peers {
		for _, r := range p.Recv {
			if r.Kind == "video" && !r.FirstFrameAt.IsZero() && (first.IsZero() || r.FirstFrameAt.Before(first)) {
				first = r.FirstFrameAt
			}
		}
	}
	return first
}

// roomdLeave leaves and waits until the far end no longer sees roomd, so
// that the next run starts from the same room.
func roomdLeave(ctx context.Context, d *roomdtest.Daemon, far *guest.Guest) error {
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	st, err := d.Client.Status(ctx)
	if err != nil {
		return err
	}
	if st.Meeting.State == apiv1.MeetingJoining || st.Meeting.State == apiv1.MeetingConnected || st.Meeting.State == apiv1.MeetingReconnecting {
		m, err := d.Client.Leave(ctx)
		if err != nil {
			return err
		}
		if m.State != apiv1.MeetingLeft {
			return fmt.Errorf("after leave: %+v", m)
		}
	}
	return far.WaitFeedGone(ctx, d.Room)
}

// chromiumJoinRun starts a browser whose page joins the room, reads the
// page's time from the start of join to the first frame of the far end,
// leaves, and closes the browser.
func chromiumJoinRun(ctx context.Context, b *testing.B, srv *janustest.Server, far *guest.Guest, name string) joinRun {
	sc := tbscope.New(b)
	defer sc.Close()
	g := guest.Start(sc, guest.Options{JanusWS: srv.WSURL, Room: janustest.Room, Display: name})
	rctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	d, err := g.FirstRemoteFrame(rctx, farEndName)
	r := joinRun{firstFrame: d, err: err}
	if err := g.Leave(rctx); err != nil {
		b.Fatal(err)
	}
	if err := far.WaitFeedGone(rctx, name); err != nil {
		b.Fatalf("%s left, the far end still sees it: %v", name, err)
	}
	return r
}

// callResult is part 2's measurement.
type callResult struct {
	window time.Duration

	roomdCPU        time.Duration
	roomdHWM        int64 // bytes, VmHWM over the window (or the life, see hwmReset)
	hwmReset        bool  // VmHWM was reset at the window's start
	roomdRSSMax     int64 // bytes, the largest 1 s sample of VmRSS
	roomdPSSMax     int64
	chromiumCPU     time.Duration
	chromiumRSSMax  int64 // bytes, the largest 1 s sample of the tree's summed VmRSS
	chromiumPSSMax  int64
	chromiumProcs   int // processes seen in the tree
	samples         int
	roomdSentFPS    float64
	roomdRecvFPS    float64
	chromeSentFPS   float64
	chromeDecFPS    float64
	chromeSeesRoomd string // resolution and codec Chromium decodes from roomd
}

// measureCall puts a fresh roomd and a fresh Chromium in the room, alone,
// and measures both over the same callDuration once media flows both ways.
func measureCall(ctx context.Context, b *testing.B, bin string, srv *janustest.Server, roomURL string) callResult {
	sc := tbscope.New(b)
	defer sc.Close()

	before, err := browserRoots()
	if err != nil {
		b.Fatal(err)
	}
	g := guest.Start(sc, guest.Options{JanusWS: srv.WSURL, Room: janustest.Room, Display: callPartner})
	after, err := browserRoots()
	if err != nil {
		b.Fatal(err)
	}
	var browser []int
	for _, p := range after {
		if !slices.Contains(before, p) {
			browser = append(browser, p)
		}
	}
	if len(browser) != 1 {
		b.Fatalf("cannot tell the call partner's browser process: new chromium children %v", browser)
	}
	if err := g.WaitJoined(ctx); err != nil {
		b.Fatal(err)
	}
	d := launchRoomd(sc, bin)
	if _, err := d.Client.Join(ctx, roomURL); err != nil {
		b.Fatalf("roomd join: %v\n%s", err, d.Log())
	}
	mctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	if _, err := g.WaitFeed(mctx, d.Room, func(f guest.Feed) bool { return f.VideoFramesDecoded > 30 }); err != nil {
		b.Fatalf("Chromium does not receive roomd: %v", err)
	}
	for videoFrames(callOf(mctx, d), false) <= 30 {
		select {
		case <-mctx.Done():
			b.Fatalf("roomd does not receive Chromium's video: %v", mctx.Err())
		case <-time.After(statusPoll):
		}
	}

	// The window: counters at both ends, memory sampled every second.
	res := callResult{}
	gs0, err := g.Stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	st0, err := d.Client.Status(ctx) // also starts roomd's bit rate interval
	if err != nil || st0.Call == nil {
		b.Fatalf("roomd status: %v %+v", err, st0.Meeting)
	}
	res.hwmReset = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", d.PID()), []byte("5"), 0) == nil
	cpu := newTreeCPU()
	roomdCPU0, err := procCPU(d.PID())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	tick := time.NewTicker(time.Second)
	for {
		tree, err := processTree(browser[0])
		if err != nil {
			b.Fatal(err)
		}
		cpu.sample(tree)
		rss, pss := memory([]int{d.PID()})
		res.roomdRSSMax, res.roomdPSSMax = max(res.roomdRSSMax, rss), max(res.roomdPSSMax, pss)
		rss, pss = memory(tree)
		res.chromiumRSSMax, res.chromiumPSSMax = max(res.chromiumRSSMax, rss), max(res.chromiumPSSMax, pss)
		res.samples++
		if time.Since(start) >= callDuration {
			break
		}
		select {
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		case <-tick.C:
		}
	}
	tick.Stop()
	roomdCPU1, err := procCPU(d.PID())
	if err != nil {
		b.Fatal(err)
	}
	res.window = time.Since(start)
	res.roomdCPU = roomdCPU1 - roomdCPU0
	res.chromiumCPU, res.chromiumProcs = cpu.total()
	if res.roomdHWM, err = statusField(d.PID(), "VmHWM"); err != nil {
		b.Fatal(err)
	}

	st1, err := d.Client.Status(ctx)
	if err != nil || st1.Call == nil {
		b.Fatalf("roomd status: %v %+v", err, st1.Meeting)
	}
	gs1, err := g.Stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	secs := res.window.Seconds()
	res.roomdSentFPS = float64(videoFrames(st1.Call, true)-videoFrames(st0.Call, true)) / secs
	res.roomdRecvFPS = float64(videoFrames(st1.Call, false)-videoFrames(st0.Call, false)) / secs
	res.chromeSentFPS = float64(gs1.VideoFramesSent-gs0.VideoFramesSent) / secs
	f0, f1 := feedOf(gs0, d.Room), feedOf(gs1, d.Room)
	res.chromeDecFPS = float64(f1.VideoFramesDecoded-f0.VideoFramesDecoded) / secs
	res.chromeSeesRoomd = fmt.Sprintf("%dx%d %s", f1.VideoWidth, f1.VideoHeight, f1.Codec)

	if _, err := d.Client.Leave(ctx); err != nil {
		b.Fatalf("roomd leave: %v", err)
	}
	if err := g.Leave(ctx); err != nil {
		b.Fatal(err)
	}
	return res
}

// callOf is roomd's call status, or an empty call when it has none.
func callOf(ctx context.Context, d *roomdtest.Daemon) *apiv1.Call {
	if st, err := d.Client.Status(ctx); err == nil && st.Call != nil {
		return st.Call
	}
	return &apiv1.Call{}
}

// videoFrames sums the call's video frames: sent, or received.
func videoFrames(c *apiv1.Call, sent bool) uint64 {
	var n uint64
	for _, p := range c.Peers {
		if sent {
			for _, s := range p.Sent {
				if s.Kind == "video" {
					n += s.FramesSent
				}
			}
			continue
		}
		for _, r := range p.Recv {
			if r.Kind == "video" {
				n += r.Frames
			}
		}
	}
	return n
}

func feedOf(s guest.Stats, display string) guest.Feed {
	for _, f := range s.RemoteFeeds {
		if f.Display == display {
			return f
		}
	}
	return guest.Feed{}
}

// procStat is what this benchmark reads from /proc/PID/stat.
type procStat struct {
	ppid      int
	comm      string
	ticks     int64 // utime + stime
	startTime int64 // in ticks since boot: with the pid, names a process
}

func readStat(pid int) (procStat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	s := string(raw)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	// Fields from the third (state) on; utime and stime are the 14th and
	// 15th, starttime the 22nd (proc(5)).
	f := strings.Fields(s[end+1:])
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	num := func(i int) int64 {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return n
	}
	return procStat{ppid: int(num(1)), comm: s[open+1 : end], ticks: num(11) + num(12), startTime: num(19)}, nil
}

// procCPU is a process's user and system CPU time so far.
func procCPU(pid int) (time.Duration, error) {
	st, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	return ticksToDuration(st.ticks), nil
}

func ticksToDuration(t int64) time.Duration { return time.Duration(t) * time.Second / clockTicks }

// allProcs reads every process's stat.
func allProcs() (map[int]procStat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := map[int]procStat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil { // it may have exited
			out[pid] = st
		}
	}
	return out, nil
}

// browserRoots lists this process's children named chromium: the browsers
// the guests started (Debian's /usr/bin/chromium script execs the browser
// in place).
func browserRoots() ([]int, error) {
	procs, err := allProcs()
	if err != nil {
		return nil, err
	}
	var out []int
	for pid, st := range procs {
		if st.ppid == os.Getpid() && st.comm == "chromium" {
			out = append(out, pid)
		}
	}
	return out, nil
}

// processTree is root and all its descendants, by parent pid.
func processTree(root int) ([]int, error) {
	procs, err := allProcs()
	if err != nil {
		return nil, err
	}
	if _, ok := procs[root]; !ok {
		return nil, fmt.Errorf("process %d is gone", root)
	}
	children := map[int][]int{}
	for pid, st := range procs {
		children[st.ppid] = append(children[st.ppid], pid)
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree, nil
}

// treeCPU adds up the CPU time a changing set of processes spends from its
// first sample on: each process counts from its first sample, or from 0 if
// it started after the first sample, to its last sample.
type treeCPU struct {
	first   bool
	startAt map[procKey]int64
	lastAt  map[procKey]int64
}

type procKey struct {
	pid   int
	start int64
}

func newTreeCPU() *treeCPU {
	return &treeCPU{first: true, startAt: map[procKey]int64{}, lastAt: map[procKey]int64{}}
}

func (c *treeCPU) sample(pids []int) {
	for _, pid := range pids {
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		k := procKey{pid, st.startTime}
		if _, ok := c.startAt[k]; !ok {
			c.startAt[k] = 0
			if c.first {
				c.startAt[k] = st.ticks
			}
		}
		c.lastAt[k] = st.ticks
	}
	c.first = false
}

func (c *treeCPU) total() (time.Duration, int) {
	var t int64
	for k, last := range c.lastAt {
		t += last - c.startAt[k]
	}
	return ticksToDuration(t), len(c.lastAt)
}

// memory sums VmRSS and Pss (from smaps_rollup) over pids, in bytes.
func memory(pids []int) (rss, pss int64) {
	for _, pid := range pids {
		if v, err := statusField(pid, "VmRSS"); err == nil {
			rss += v
		}
		if v, err := kBField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss"); err == nil {
			pss += v
		}
	}
	return rss, pss
}

func statusField(pid int, name string) (int64, error) {
	return kBField(fmt.Sprintf("/proc/%d/status", pid), name)
}

// kBField reads a "Name:   123 kB" line of a /proc file, in bytes.
func kBField(path, name string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", path, name, err)
		}
		return n << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s", path, name)
}

// env describes where the benchmark ran.
type env struct {
	nproc                  int
	cpu, goVersion         string
	janusVersion, chromium string
}

func environment(ctx context.Context, srv *janustest.Server) env {
	e := env{nproc: runtime.NumCPU(), cpu: "unknown", goVersion: runtime.Version(), janusVersion: "unknown", chromium: "unknown"}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if info, err := srv.Info(ctx); err == nil {
		if v, ok := info["version_string"].(string); ok {
			e.janusVersion = v
		}
	}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Debian's wrapper script may print shell noise before the version.
	if out, err := exec.CommandContext(vctx, chromium.Path, "--version").CombinedOutput(); err == nil {
		for line := range strings.Lines(string(out)) {
			if strings.HasPrefix(line, "Chromium ") {
				e.chromium = strings.TrimSpace(line)
			}
		}
	}
	return e
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(raw)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// joinReport is everything join.txt says.
type joinReport struct {
	started            time.Time
	env                env
	loadStart, loadEnd string // /proc/loadavg: other work on the machine skews both sides
	roomd, chromium    []joinRun
	call               callResult
}

// summary is the median and p90 of the successful runs.
type summary struct {
	n           int
	median, p90 time.Duration
}

// summarize takes the median (the mean of the middle two of an even
// count) and the nearest-rank 90th percentile.
func summarize(rs []joinRun) summary {
	var ds []time.Duration
	for _, r := range rs {
		if r.err == nil {
			ds = append(ds, r.firstFrame)
		}
	}
	if len(ds) == 0 {
		return summary{}
	}
	slices.Sort(ds)
	n := len(ds)
	s := summary{n: n, median: ds[n/2]}
	if n%2 == 0 {
		s.median = (ds[n/2-1] + ds[n/2]) / 2
	}
	s.p90 = ds[int(math.Ceil(0.9*float64(n)))-1]
	return s
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func (r *joinReport) String() string {
	var b strings.Builder
	e := r.env
	fmt.Fprintf(&b, "# Join time and call resources: roomd versus Chromium in the same Janus room\n")
	fmt.Fprintf(&b, "# go test -run '^$' -bench Join -benchtime 1x ./test/interop/  (test/interop/join_bench_test.go)\n\n")
	fmt.Fprintf(&b, "date:     %s\n", r.started.Format(time.RFC3339))
	fmt.Fprintf(&b, "machine:  %d CPUs (nproc), %s\n", e.nproc, e.cpu)
	fmt.Fprintf(&b, "go:       %s\n", e.goVersion)
	fmt.Fprintf(&b, "janus:    %s (janus.plugin.videoroom, room %d: VP8/Opus, bitrate cap 256 kbit/s per publisher)\n", e.janusVersion, janustest.Room)
	fmt.Fprintf(&b, "chromium: %s, headless, fake camera and microphone\n", e.chromium)
	fmt.Fprintf(&b, "load:     %s at the start, %s at the end (1, 5, 15 min; other work on this machine\n", r.loadStart, r.loadEnd)
	fmt.Fprintf(&b, "          competes with both sides alike)\n")
	fmt.Fprintf(&b, "network:  one private veth address in the test's own network namespace; no loss, no delay\n\n")

	rs, cs := summarize(r.roomd), summarize(r.chromium)
	fmt.Fprintf(&b, "## 1. Join: start of joining -> first remote video frame (%d runs each, interleaved)\n\n", joinRuns)
	fmt.Fprintf(&b, "The room already holds %q, publishing 720p30 fake camera and audio. roomd (simulated\n", farEndName)
	fmt.Fprintf(&b, "1280x720@30 camera) and a second Chromium each join, publish and subscribe to it.\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "run\troomd first frame\troomd POST answered\tChromium first frame\t\n")
	for i := range max(len(r.roomd), len(r.chromium)) {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t\n", i+1, runCell(r.roomd, i, false), runCell(r.roomd, i, true), runCell(r.chromium, i, false))
	}
	fmt.Fprintf(tw, "median\t%s\t\t%s\t\n", ms(rs.median), ms(cs.median))
	fmt.Fprintf(tw, "p90\t%s\t\t%s\t\n", ms(rs.p90), ms(cs.p90))
	tw.Flush()
	fmt.Fprintf(&b, "\nsuccessful runs: roomd %d/%d, Chromium %d/%d\n", rs.n, len(r.roomd), cs.n, len(r.chromium))
	fmt.Fprintf(&b, "ratio roomd/Chromium: median %s, p90 %s\n\n", ratio(float64(rs.median), float64(cs.median)), ratio(float64(rs.p90), float64(cs.p90)))
	fmt.Fprintf(&b, "Method, roomd: from just before POST /api/v1/meeting/join (Go client, unix socket) to the\n")
	fmt.Fprintf(&b, "  firstFrameAt of the received video track in GET /status: when roomd had reassembled the\n")
	fmt.Fprintf(&b, "  first complete remote video frame (from a keyframe) and handed it to its sinks. roomd does\n")
	fmt.Fprintf(&b, "  not decode video in the daemon: no decode or display is included. Both times are this host's\n")
	fmt.Fprintf(&b, "  wall clock. \"POST answered\" is when the request returned; it answers once the join has\n")
	fmt.Fprintf(&b, "  started (meeting state %s), before media. Between runs roomd leaves and the far end is seen\n", answeredStates(r.roomd))
	fmt.Fprintf(&b, "  to drop its feed; the same roomd process serves all runs.\n")
	fmt.Fprintf(&b, "Method, Chromium: test/guest's FirstRemoteFrame: from the page's call to join (getUserMedia,\n")
	fmt.Fprintf(&b, "  Janus session, publish, subscribe all count) to the first far-end frame presented, by\n")
	fmt.Fprintf(&b, "  requestVideoFrameCallback: decoded and composited, which is more than roomd's end point.\n")
	fmt.Fprintf(&b, "  Each run is a new browser whose page starts joining as soon as it has loaded (browser\n")
	fmt.Fprintf(&b, "  start and page load are not counted; a just-started browser may still be busy); it leaves,\n")
	fmt.Fprintf(&b, "  the far end sees it go, and the browser is closed before the next run.\n")
	fmt.Fprintf(&b, "Statistics: median of the successful runs (mean of the middle two), p90 by nearest rank.\n\n")

	c := r.call
	fmt.Fprintf(&b, "## 2. Resources over a %.0f s two-party call at 720p30\n\n", c.window.Seconds())
	fmt.Fprintf(&b, "A fresh roomd and a fresh Chromium, alone in the room, each sending 720p30 video and audio\n")
	fmt.Fprintf(&b, "and receiving the other's; both measured over the same window, which starts once each has\n")
	fmt.Fprintf(&b, "received 30 video frames from the other.\n\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\troomd\tChromium\troomd/Chromium\t\n")
	fmt.Fprintf(tw, "CPU time (user+system)\t%.2f s\t%.2f s\t%s\t\n", c.roomdCPU.Seconds(), c.chromiumCPU.Seconds(), ratio(c.roomdCPU.Seconds(), c.chromiumCPU.Seconds()))
	fmt.Fprintf(tw, "CPU, share of one core\t%.0f%%\t%.0f%%\t\t\n", 100*c.roomdCPU.Seconds()/c.window.Seconds(), 100*c.chromiumCPU.Seconds()/c.window.Seconds())
	fmt.Fprintf(tw, "peak memory, headline\t%s (VmHWM)\t%s (max of summed VmRSS)\t%s\t\n", mib(c.roomdHWM), mib(c.chromiumRSSMax), ratio(float64(c.roomdHWM), float64(c.chromiumRSSMax)))
	fmt.Fprintf(tw, "max sampled VmRSS (sum)\t%s\t%s\t%s\t\n", mib(c.roomdRSSMax), mib(c.chromiumRSSMax), ratio(float64(c.roomdRSSMax), float64(c.chromiumRSSMax)))
	fmt.Fprintf(tw, "max sampled Pss (sum)\t%s\t%s\t%s\t\n", mib(c.roomdPSSMax), mib(c.chromiumPSSMax), ratio(float64(c.roomdPSSMax), float64(c.chromiumPSSMax)))
	fmt.Fprintf(tw, "processes\t1\t%d\t\t\n", c.chromiumProcs)
	fmt.Fprintf(tw, "video sent, frames/s\t%.1f\t%.1f\t\t\n", c.roomdSentFPS, c.chromeSentFPS)
	fmt.Fprintf(tw, "video received, frames/s\t%.1f (reassembled)\t%.1f (decoded)\t\t\n", c.roomdRecvFPS, c.chromeDecFPS)
	tw.Flush()
	fmt.Fprintf(&b, "\nChromium decodes roomd's video as %s. Memory samples: %d, one a second.\n\n", c.chromeSeesRoomd, c.samples)
	fmt.Fprintf(&b, "Method, CPU: utime+stime from /proc/PID/stat at the window's start and end; for Chromium summed\n")
	fmt.Fprintf(&b, "  over the browser process and all its descendants (found by parent pid every second; a\n")
	fmt.Fprintf(&b, "  process counts from its first sample to its last, so one that exits loses at most 1 s).\n")
	if c.hwmReset {
		fmt.Fprintf(&b, "Method, memory: roomd's VmHWM from /proc/PID/status, its peak reset (clear_refs 5) at the\n")
		fmt.Fprintf(&b, "  window's start, so the peak within the window; Chromium's VmRSS summed over its processes\n")
	} else {
		fmt.Fprintf(&b, "Method, memory: roomd's VmHWM from /proc/PID/status over its whole life (resetting it through\n")
		fmt.Fprintf(&b, "  clear_refs failed); Chromium's VmRSS summed over its processes\n")
	}
	fmt.Fprintf(&b, "  every second, and the largest sum. Summed RSS counts pages shared between Chromium's\n")
	fmt.Fprintf(&b, "  processes more than once; summed Pss (smaps_rollup) divides them, and is shown for both.\n")
	fmt.Fprintf(&b, "Not identical workloads: Chromium also runs the page (janus.js, the DOM) and renders and\n")
	fmt.Fprintf(&b, "  composites both videos (headless, software); it decodes the video it receives, which roomd\n")
	fmt.Fprintf(&b, "  only reassembles (roomd decodes audio). Each side's camera is fake: roomd's draws a test\n")
	fmt.Fprintf(&b, "  pattern, Chromium's its own; Chromium may lower its sending resolution under the room's\n")
	fmt.Fprintf(&b, "  256 kbit/s cap, which test/guest does not show. Janus and the test process are not counted.\n")
	return b.String()
}

// answeredStates lists the meeting states POST /meeting/join answered with.
func answeredStates(rs []joinRun) string {
	var states []string
	for _, r := range rs {
		if r.err == nil && !slices.Contains(states, string(r.state)) {
			states = append(states, string(r.state))
		}
	}
	return strings.Join(states, ", ")
}

func runCell(rs []joinRun, i int, returned bool) string {
	if i >= len(rs) {
		return ""
	}
	r := rs[i]
	switch {
	case r.err != nil && returned:
		return ""
	case r.err != nil:
		return "failed: " + firstLine(r.err)
	case returned:
		return ms(r.returned)
	}
	return ms(r.firstFrame)
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func (r *joinReport) reportMetrics(b *testing.B) {
	rs, cs := summarize(r.roomd), summarize(r.chromium)
	c := r.call
	b.ReportMetric(0, "ns/op") // one op is the whole report
	b.ReportMetric(float64(rs.median)/1e6, "roomd-join-ms")
	b.ReportMetric(float64(rs.p90)/1e6, "roomd-join-p90-ms")
	b.ReportMetric(float64(cs.median)/1e6, "chromium-join-ms")
	b.ReportMetric(float64(cs.p90)/1e6, "chromium-join-p90-ms")
	if cs.median > 0 {
		b.ReportMetric(float64(rs.median)/float64(cs.median), "join-roomd/chromium")
	}
	b.ReportMetric(c.roomdCPU.Seconds(), "roomd-cpu-s")
	b.ReportMetric(c.chromiumCPU.Seconds(), "chromium-cpu-s")
	if c.chromiumCPU > 0 {
		b.ReportMetric(c.roomdCPU.Seconds()/c.chromiumCPU.Seconds(), "cpu-roomd/chromium")
	}
	b.ReportMetric(float64(c.roomdHWM)/(1<<20), "roomd-peak-MiB")
	b.ReportMetric(float64(c.chromiumRSSMax)/(1<<20), "chromium-peak-MiB")
	if c.chromiumRSSMax > 0 {
		b.ReportMetric(float64(c.roomdHWM)/float64(c.chromiumRSSMax), "mem-roomd/chromium")
	}
}
