package webview

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/test/roomdtest"
	"github.com/atriumroom/atrium/test/syncbuf"
)

// Screen is the size of the Xvfb screen, the TV the kiosk must fill.
const (
	screenW = 1920
	screenH = 1080
)

// Colours of the test page (see testPage). Saturated and unlike anything in
// the offline page, so a pixel tells which page is on screen.
var (
	colBackground = rgb{0xff, 0x6a, 0x00} // orange
	colTopLeft    = rgb{0xff, 0x00, 0x00} // red
	colTopRight   = rgb{0x00, 0xff, 0x00} // green
	colBotLeft    = rgb{0x00, 0x00, 0xff} // blue
	colBotRight   = rgb{0xff, 0xff, 0x00} // yellow
)

// cornerSize is the side of the square panels pinned to the viewport's
// corners: found at the corners of the screenshot, they prove that the
// viewport is exactly the screen.
const cornerSize = 160

func TestRoomkiosk(t *testing.T) {
	requireTools(t)
	root := roomdtest.RepoRoot(t)
	art := artifactDir(t)
	bin := buildKiosk(t, root)
	display := startXvfb(t, art)

	evil := startRecorder(t, "127.0.0.2:0")
	roomd := newFakeRoomd(t, evil.url)
	roomd.start(t, "127.0.0.1:0")
	k := startKiosk(t, bin, display, roomd.url(), art)

	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"fills the screen with the UI", func(t *testing.T) {
			waitFor(t, "the page to render", 60*time.Second, func() bool { return roomd.hits("/rendered") > 0 })
			waitScreen(t, display, art, "01-ui", 30*time.Second, checkUI)
		}},
		{"refuses navigation to other origins", func(t *testing.T) {
			roomd.setCommand("attack")
			waitFor(t, "the page to run its navigation attempts, or to escape", 15*time.Second, func() bool {
				return roomd.hits("/ack/done") > 0 || evil.count() > 0
			})
			// The attempts are refused synchronously on the GTK thread, but a
			// request that got through would take a moment to arrive.
			polls := roomd.hits("/cmd")
			time.Sleep(2 * time.Second)
			if n := evil.count(); n != 0 {
				t.Fatalf("the other origin got %d requests: %q", n, evil.paths())
			}
			if roomd.hits("/cmd") <= polls {
				t.Error("the test page stopped polling: it was navigated away or unloaded")
			}
			waitScreen(t, display, art, "02-after-navigation-attempts", 10*time.Second, checkUI)
			// These vectors must have reached the guard: proves the guard
			// blocked them, not some accident of the page. window.open and
			// target=_blank without a user gesture stop earlier, at WebKit's
			// popup blocker; they stay in the page to show they do not escape.
			logs := k.logs()
			for _, p := range []string{"/location", "/link", "/frame", "/redirect"} {
				if !strings.Contains(logs, `uri=`+evil.url+p) {
					t.Errorf("no refusal logged for %s%s", evil.url, p)
				}
			}
		}},
		{"shows the offline page while roomd is down, then the UI again", func(t *testing.T) {
			roomd.stop()
			waitScreen(t, display, art, "03-offline", 20*time.Second, checkOffline)
			loads := roomd.hits("/")
			roomd.start(t, roomd.addr)
			waitScreen(t, display, art, "04-ui-again", 20*time.Second, checkUI)
			if roomd.hits("/") <= loads {
				t.Error("UI on screen without a new page load")
			}
		}},
		{"reloads when roomd's bootId changes", func(t *testing.T) {
			loads := roomd.hits("/")
			roomd.setBootID("y")
			waitFor(t, "a reload after the bootId changed", 10*time.Second, func() bool { return roomd.hits("/") > loads })
			waitScreen(t, display, art, "05-ui-after-boot-id-change", 20*time.Second, checkUI)
		}},
		{"shows the offline page when the page fails to load, and retries", func(t *testing.T) {
			// roomd answers its status but the page load breaks: the shell
			// must not leave WebKit's error page (or a stale page) up.
			roomd.setPageBroken(true)
			roomd.setBootID("z") // makes the shell reload now
			waitScreen(t, display, art, "06-offline-after-load-failure", 20*time.Second, checkOffline)
			roomd.setPageBroken(false)
			waitScreen(t, display, art, "07-ui-after-load-failure", 20*time.Second, checkUI)
			if !strings.Contains(k.logs(), "page failed") {
				t.Error(`no "page failed" in the log`)
			}
		}},
		{"exits 0 on SIGTERM within 5s", func(t *testing.T) {
			start := time.Now()
			if err := k.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-k.exited:
				if k.err != nil {
					t.Fatalf("roomkiosk exited with %v, want 0", k.err)
				}
				t.Logf("exited 0 after %v", time.Since(start).Round(time.Millisecond))
			case <-time.After(5 * time.Second):
				t.Fatal("roomkiosk still running 5s after SIGTERM")
			}
			if !strings.Contains(k.logs(), "roomkiosk stopped") {
				t.Error(`no "roomkiosk stopped" in the log`)
			}
		}},
	}
	for _, s := range steps {
		// The steps build on each other: stop at the first failure.
		if !t.Run(s.name, s.fn) {
			t.FailNow()
		}
	}
}

// requireTools fails the test (not skips: see the package comment) when
// something the test needs is not installed.
func requireTools(t *testing.T) {
	t.Helper()
	const pkgs = "apt-get install xvfb imagemagick libwebkit2gtk-4.1-dev libgtk-3-dev pkg-config g++"
	var missing []string
	for _, tool := range []string{"Xvfb", "import", "pkg-config", "ldd", "gcc", "g++", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("missing %s (Debian: %s)", strings.Join(missing, ", "), pkgs)
	}
	if out, err := exec.Command("pkg-config", "--print-errors", "--exists", "gtk+-3.0", "webkit2gtk-4.1").CombinedOutput(); err != nil {
		t.Fatalf("WebKitGTK 4.1 / GTK 3 development files missing (Debian: %s): %v\n%s", pkgs, err, out)
	}
}

// artifactDir is where screenshots and logs go: $ATRIUM_ARTIFACTS/webview
// for CI to collect, else a directory removed after the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("ATRIUM_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, "webview")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildKiosk builds cmd/roomkiosk against webkit2gtk-4.1 through the
// repository's pkg-config alias, and checks the result links 4.1 only.
func buildKiosk(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "roomkiosk")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/roomkiosk")
	cmd.Dir = root
	pcPath := filepath.Join(root, "cmd", "roomkiosk", "pkgconfig")
	if old := os.Getenv("PKG_CONFIG_PATH"); old != "" {
		pcPath += string(os.PathListSeparator) + old
	}
	cmd.Env = append(os.Environ(), "PKG_CONFIG_PATH="+pcPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/roomkiosk: %v\n%s", err, out)
	}

	out, err := exec.CommandContext(ctx, "ldd", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("ldd %s: %v\n%s", bin, err, out)
	}
	if !bytes.Contains(out, []byte("libwebkit2gtk-4.1.so")) || bytes.Contains(out, []byte("libwebkit2gtk-4.0.so")) {
		t.Fatalf("roomkiosk must link libwebkit2gtk-4.1 and not 4.0; ldd says:\n%s", out)
	}
	return bin
}

// startXvfb starts an X server on a display number it picks itself
// (-displayfd), so parallel runs do not collide, and returns the display.
func startXvfb(t *testing.T, art string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	logf, err := os.Create(filepath.Join(art, "xvfb.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	// No -auth: with TCP off, only local processes (ours) can connect.
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", fmt.Sprintf("%dx%dx24", screenW, screenH), "-nolisten", "tcp", "-noreset")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = logf, logf
	_, err = startProcess(t, "Xvfb", cmd)
	w.Close() // Xvfb has its own copy: EOF on r now means Xvfb is gone
	if err != nil {
		t.Fatal(err)
	}

	line := make(chan string, 1)
	go func() {
		// Ends with the line, or at EOF when Xvfb dies.
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		s = strings.TrimSpace(s)
		if s == "" {
			t.Fatalf("Xvfb reported no display (see %s)", logf.Name())
		}
		return ":" + s
	case <-time.After(15 * time.Second):
		t.Fatalf("Xvfb did not report its display within 15s (see %s)", logf.Name())
	}
	return ""
}

// process is a child process the test started and must end.
type process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result, once exited is closed
}

// startProcess starts cmd and makes sure it is gone when the test ends.
func startProcess(t *testing.T, name string, cmd *exec.Cmd) (*process, error) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p, nil
}

// stop ends the process if it still runs: SIGTERM, then SIGKILL after 5s.
func (p *process) stop(t *testing.T) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		t.Logf("%s ignored SIGTERM: killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// kiosk is a running roomkiosk.
type kiosk struct {
	*process
	log *syncbuf.Buffer
}

func (k *kiosk) logs() string { return k.log.String() }

func startKiosk(t *testing.T, bin, display, url, art string) *kiosk {
	t.Helper()
	logPath := filepath.Join(art, "roomkiosk.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	t.Logf("roomkiosk log: %s", logPath)

	// Registered before the process starts, so removed after it stopped.
	home := t.TempDir()
	log := &syncbuf.Buffer{}
	cmd := exec.Command(bin, "-url", url, "-log-level", "debug")
	cmd.Env = append(envWithout("DISPLAY", "WAYLAND_DISPLAY", "GDK_BACKEND", "XDG_RUNTIME_DIR"),
		"DISPLAY="+display,
		"GDK_BACKEND=x11", // never a Wayland session the test runs inside
		"NO_AT_BRIDGE=1",  // no accessibility bus here; silences its warnings
		// WebKit's caches and storage go to the test, not to the user.
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"),
		"XDG_DATA_HOME="+filepath.Join(home, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_RUNTIME_DIR="+home,
	)
	cmd.Stdout = io.MultiWriter(logf, log)
	cmd.Stderr = cmd.Stdout
	t.Cleanup(func() {
		// Runs after the process's own cleanup stopped it.
		if t.Failed() {
			t.Logf("roomkiosk log:\n%s", log.String())
		}
	})
	p, err := startProcess(t, "roomkiosk", cmd)
	if err != nil {
		t.Fatal(err)
	}
	return &kiosk{process: p, log: log}
}

func envWithout(names ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

// testPage is what the fake roomd serves at /: coloured corner panels and
// big text on orange, plus a script that reports rendering and, on command,
// tries every way out of the origin it can (each step acknowledged first).
var testPage = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>roomkiosk test page</title>
<style>
  html, body { margin: 0; height: 100%; overflow: hidden; background: #ff6a00;
    font-family: "DejaVu Sans", sans-serif; cursor: none; }
  .c { position: fixed; width: 160px; height: 160px; }
  #tl { left: 0; top: 0; background: #ff0000; }
  #tr { right: 0; top: 0; background: #00ff00; }
  #bl { left: 0; bottom: 0; background: #0000ff; }
  #br { right: 0; bottom: 0; background: #ffff00; }
  h1 { position: absolute; left: 0; right: 0; top: 50%; transform: translateY(-50%);
    margin: 0; text-align: center; font-size: 140px; color: #ffffff; }
  iframe { position: fixed; width: 1px; height: 1px; border: 0; left: 50%; top: 0; opacity: 0; }
</style></head>
<body>
<div class="c" id="tl"></div><div class="c" id="tr"></div>
<div class="c" id="bl"></div><div class="c" id="br"></div>
<h1>ATRIUM KIOSK<br>TEST PAGE</h1>
<script>
const evil = {{.Evil}};
const ack = (s) => fetch("/ack/" + s).catch(() => {});
function click(href, target) {
  const a = document.createElement("a");
  a.href = href;
  if (target) a.target = target;
  document.body.appendChild(a);
  a.click();
}
const attacks = [
  ["location", () => { location.href = evil + "/location"; }],
  ["open", () => { window.open(evil + "/open"); }],
  ["link", () => click(evil + "/link")],
  ["blank", () => click(evil + "/blank", "_blank")],
  ["frame", () => { const f = document.createElement("iframe"); f.src = evil + "/frame"; document.body.appendChild(f); }],
  ["redirect", () => { location.href = "/redirect"; }],
];
async function attack() {
  for (const [name, fn] of attacks) {
    await ack(name);
    fn();
    await new Promise((r) => setTimeout(r, 400));
  }
  await ack("done");
}
let attacked = false;
setInterval(async () => {
  try {
    const cmd = await (await fetch("/cmd")).text();
    if (cmd === "attack" && !attacked) { attacked = true; attack(); }
  } catch (e) { /* roomd down: the shell handles that */ }
}, 250);
requestAnimationFrame(() => requestAnimationFrame(() => fetch("/rendered")));
</script>
</body></html>
`))

// fakeRoomd stands in for roomd: the test page, its status endpoint, and
// a command channel to the page. It can stop and start again on one port,
// as roomd does when it restarts.
type fakeRoomd struct {
	handler http.Handler
	addr    string // set by the first start

	mu         sync.Mutex
	bootID     string
	pageBroken bool // "/" drops the connection instead of answering
	cmd        string
	hitsBy     map[string]int
	srv        *http.Server
	served     chan struct{} // closed when srv's Serve returned
}

func newFakeRoomd(t *testing.T, evilURL string) *fakeRoomd {
	f := &fakeRoomd{bootID: "x", hitsBy: map[string]int{}}
	var page bytes.Buffer
	if err := testPage.Execute(&page, struct{ Evil string }{evilURL}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		broken := f.pageBroken
		f.mu.Unlock()
		if broken {
			panic(http.ErrAbortHandler) // net/http drops the connection, quietly
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(page.Bytes())
	})
	mux.HandleFunc("GET "+apiv1.BasePath+"/status", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		st := apiv1.Status{BootID: f.bootID, State: apiv1.DaemonReady}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("GET /cmd", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		cmd := f.cmd
		f.cmd = "" // once: a reloaded page must not attack again
		f.mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, cmd)
	})
	mux.HandleFunc("GET /redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evilURL+"/redirect", http.StatusFound)
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent) // /rendered, /ack/*: only counted
	})
	f.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hitsBy[r.URL.Path]++
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
	t.Cleanup(f.stop)
	return f
}

func (f *fakeRoomd) url() string { return "http://" + f.addr + "/" }

// start serves on addr; after a stop, on the same address again.
func (f *fakeRoomd) start(t *testing.T, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	// The port was just released: retry briefly in case it lingers.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("fake roomd: %v", err)
	}
	srv := &http.Server{Handler: f.handler, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	f.mu.Lock()
	f.addr, f.srv, f.served = ln.Addr().String(), srv, served
	f.mu.Unlock()
}

// stop closes the listener and every connection, like a roomd that died.
func (f *fakeRoomd) stop() {
	f.mu.Lock()
	srv, served := f.srv, f.served
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
		<-served
	}
}

func (f *fakeRoomd) setCommand(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmd = c
}

func (f *fakeRoomd) setBootID(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bootID = id
}

func (f *fakeRoomd) setPageBroken(b bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pageBroken = b
}

func (f *fakeRoomd) hits(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hitsBy[path]
}

// recorder is the origin the kiosk must never reach: it records every request.
type recorder struct {
	url string
	mu  sync.Mutex
	got []string
}

func startRecorder(t *testing.T, addr string) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("recorder: %v", err)
	}
	r := &recorder{url: "http://" + ln.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.got = append(r.got, req.URL.Path)
		r.mu.Unlock()
		_, _ = io.WriteString(w, "<body style='background:#000'>you should not be here</body>")
	})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
	})
	return r
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *recorder) paths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// waitFor polls cond every 100ms and fails the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitScreen takes screenshots of the whole X screen into art/name.png until
// check accepts one, and fails the test with check's last complaint after
// timeout. The last screenshot stays as the artifact either way.
func waitScreen(t *testing.T, display, art, name string, timeout time.Duration, check func(image.Image) error) {
	t.Helper()
	path := filepath.Join(art, name+".png")
	deadline := time.Now().Add(timeout)
	for {
		img, err := screenshot(t.Context(), display, path)
		if err == nil {
			err = check(img)
		}
		if err == nil {
			t.Logf("screenshot %s", path)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after %v: %v (last screenshot: %s)", name, timeout, err, path)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func screenshot(ctx context.Context, display, path string) (image.Image, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "import", "-display", display, "-window", "root", path).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("import: %w: %s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}

type rgb struct{ r, g, b uint8 }

func rgbAt(img image.Image, x, y int) rgb {
	r, g, b, _ := img.At(x, y).RGBA()
	return rgb{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
}

// near allows for blending at edges; the page's flat colours come out exact.
func (c rgb) near(d rgb) bool {
	diff := func(a, b uint8) int {
		if a > b {
			return int(a - b)
		}
		return int(b - a)
	}
	return diff(c.r, d.r)+diff(c.g, d.g)+diff(c.b, d.b) <= 24
}

// stats summarises a screenshot: distinct colours, and the share of pixels
// near each of the given colours and of dark pixels.
type stats struct {
	distinct int
	share    map[rgb]float64
	dark     float64
}

func measure(img image.Image, colours ...rgb) stats {
	b := img.Bounds()
	seen := map[rgb]struct{}{}
	counts := map[rgb]int{}
	dark := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := rgbAt(img, x, y)
			seen[c] = struct{}{}
			for _, want := range colours {
				if c.near(want) {
					counts[want]++
				}
			}
			// Rec. 601 luma below ~20%.
			if 299*int(c.r)+587*int(c.g)+114*int(c.b) < 50*1000 {
				dark++
			}
		}
	}
	n := float64(b.Dx() * b.Dy())
	s := stats{distinct: len(seen), share: map[rgb]float64{}, dark: float64(dark) / n}
	for c, k := range counts {
		s.share[c] = float64(k) / n
	}
	return s
}

// regionShare is the share of pixels in r near colour c.
func regionShare(img image.Image, r image.Rectangle, c rgb) float64 {
	k := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if rgbAt(img, x, y).near(c) {
				k++
			}
		}
	}
	return float64(k) / float64(r.Dx()*r.Dy())
}

func checkSize(img image.Image) error {
	if b := img.Bounds(); b.Dx() != screenW || b.Dy() != screenH {
		return fmt.Errorf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), screenW, screenH)
	}
	return nil
}

// corners are the test page's corner panels, inset a little from their edge.
func corners() map[rgb]image.Rectangle {
	const in = 8 // stay clear of anti-aliased edges
	s := cornerSize - in
	return map[rgb]image.Rectangle{
		colTopLeft:  image.Rect(0, 0, s, s),
		colTopRight: image.Rect(screenW-s, 0, screenW, s),
		colBotLeft:  image.Rect(0, screenH-s, s, screenH),
		colBotRight: image.Rect(screenW-s, screenH-s, screenW, screenH),
	}
}

// checkUI accepts a screenshot of the test page covering the whole screen:
// the page's corner panels sit in the screen's corners, its background
// covers most of the rest, and the text makes it far from uniform.
func checkUI(img image.Image) error {
	if err := checkSize(img); err != nil {
		return err
	}
	var errs []error
	for c, r := range corners() {
		if s := regionShare(img, r, c); s < 0.99 {
			errs = append(errs, fmt.Errorf("corner %v: only %.1f%% is %v", r, 100*s, c))
		}
	}
	st := measure(img, colBackground)
	if s := st.share[colBackground]; s < 0.6 {
		errs = append(errs, fmt.Errorf("page background covers %.1f%% of the screen, want at least 60%%", 100*s))
	}
	if st.distinct < 32 {
		errs = append(errs, fmt.Errorf("only %d distinct colours: text not rendered", st.distinct))
	}
	return errors.Join(errs...)
}

// checkOffline accepts the shell's offline page: none of the test page's
// colours, a dark screen, and text on it.
func checkOffline(img image.Image) error {
	if err := checkSize(img); err != nil {
		return err
	}
	var errs []error
	st := measure(img, colBackground, colTopLeft, colTopRight, colBotLeft, colBotRight)
	for c, s := range st.share {
		if s > 0.001 {
			errs = append(errs, fmt.Errorf("%.1f%% of the screen is the test page's %v", 100*s, c))
		}
	}
	if st.dark < 0.85 {
		errs = append(errs, fmt.Errorf("only %.1f%% of the screen is dark, want at least 85%%", 100*st.dark))
	}
	if st.distinct < 16 {
		errs = append(errs, fmt.Errorf("only %d distinct colours: no text on the offline page", st.distinct))
	}
	return errors.Join(errs...)
}
