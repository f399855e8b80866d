package kioskbench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
	"github.com/atriumroom/atrium/test/proc"
)

// The X screen: the TV the kiosk fills.
const screenW, screenH = 1920, 1080

// requireTools fails (never skips) when the kiosk cannot be built or shown.
func requireTools(tb testing.TB) {
	tb.Helper()
	const pkgs = "apt-get install xvfb libwebkit2gtk-4.1-dev libgtk-3-dev pkg-config gcc"
	var missing []string
	for _, tool := range []string{"Xvfb", "pkg-config", "gcc", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		tb.Fatalf("kioskbench: missing %s (Debian: %s)", strings.Join(missing, ", "), pkgs)
	}
	if out, err := exec.Command("pkg-config", "--print-errors", "--exists", "gtk+-3.0", "webkit2gtk-4.1").CombinedOutput(); err != nil {
		tb.Fatalf("kioskbench: WebKitGTK 4.1 / GTK 3 development files missing (Debian: %s): %v\n%s", pkgs, err, out)
	}
}

// buildKiosk builds cmd/roomkiosk against webkit2gtk-4.1 through the
// repository's pkg-config alias (cmd/roomkiosk/pkgconfig).
func buildKiosk(tb testing.TB, root string) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "roomkiosk")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/roomkiosk")
	cmd.Dir = root
	pc := filepath.Join(root, "cmd", "roomkiosk", "pkgconfig")
	if old := os.Getenv("PKG_CONFIG_PATH"); old != "" {
		pc += string(os.PathListSeparator) + old
	}
	cmd.Env = append(os.Environ(), "PKG_CONFIG_PATH="+pc)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("kioskbench: go build ./cmd/roomkiosk: %v\n%s", err, out)
	}
	return bin
}

// startXvfb starts an X server on a display it picks (-displayfd), with
// no TCP and no authorization: only local processes reach it. It returns
// the display and the server's pid.
func startXvfb(tb testing.TB) (display string, pid int) {
	tb.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", fmt.Sprintf("%dx%dx24", screenW, screenH), "-nolisten", "tcp", "-noreset")
	cmd.ExtraFiles = []*os.File{w}
	p := proc.Start(tb, "Xvfb", cmd, 5*time.Second)
	w.Close() // EOF on r now means Xvfb is gone
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		if s == "" {
			tb.Fatalf("kioskbench: Xvfb reported no display: %v\n%s", p.Exited(), p.Log())
		}
		return ":" + s, cmd.Process.Pid
	case <-time.After(15 * time.Second):
		tb.Fatalf("kioskbench: Xvfb did not report its display within 15 s\n%s", p.Log())
	}
	return "", 0
}

// startKiosk runs roomkiosk on display, showing url, with WebKit's caches
// in a temporary home. It returns the process, whose pid roots the tree
// of WebKit processes measured with it.
func startKiosk(tb testing.TB, bin, display, url string) (*proc.Process, int) {
	tb.Helper()
	home := tb.TempDir()
	// -console: the page's video statistics (see pagestats_test.go) come
	// out on roomkiosk's standard output.
	cmd := exec.Command(bin, "-url", url+"?videostats", "-console", "-log-level", "info")
	cmd.Env = append(envWithout("DISPLAY", "WAYLAND_DISPLAY", "GDK_BACKEND", "XDG_RUNTIME_DIR"),
		"DISPLAY="+display,
		"GDK_BACKEND=x11",
		"NO_AT_BRIDGE=1",
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"),
		"XDG_DATA_HOME="+filepath.Join(home, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_RUNTIME_DIR="+home,
	)
	p := proc.Start(tb, "roomkiosk", cmd, 5*time.Second)
	return p, cmd.Process.Pid
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

// screen grabs the X root window with GetImage: one request, no helper
// process, so the moment of the grab is known to a few milliseconds.
type screen struct {
	conn *xgb.Conn
	root xproto.Window
	w, h int
}

func openScreen(display string) (*screen, error) {
	conn, err := xgb.NewConnDisplay(display)
	if err != nil {
		return nil, fmt.Errorf("connect to X display %s: %w", display, err)
	}
	s := xproto.Setup(conn).DefaultScreen(conn)
	if s.RootDepth != 24 {
		conn.Close()
		return nil, fmt.Errorf("X display %s: root depth %d, want 24", display, s.RootDepth)
	}
	return &screen{conn: conn, root: s.Root, w: int(s.WidthInPixels), h: int(s.HeightInPixels)}, nil
}

func (s *screen) close() { s.conn.Close() }

// shot is one screenshot's luma (BT.601 weights on the displayed RGB),
// with when the request was sent and when the answer arrived.
type shot struct {
	luma       []byte
	w, h       int
	sent, done time.Time
}

func (s *screen) grab() (shot, error) {
	sent := time.Now()
	img, err := xproto.GetImage(s.conn, xproto.ImageFormatZPixmap, xproto.Drawable(s.root), 0, 0, uint16(s.w), uint16(s.h), 0xffffffff).Reply()
	done := time.Now()
	if err != nil {
		return shot{}, fmt.Errorf("X GetImage: %w", err)
	}
	if len(img.Data) < s.w*s.h*4 {
		return shot{}, fmt.Errorf("X GetImage: %d bytes for %dx%d, want 32 bits a pixel", len(img.Data), s.w, s.h)
	}
	luma := make([]byte, s.w*s.h)
	for i := range luma {
		p := img.Data[4*i : 4*i+3] // B, G, R (little-endian 0x00RRGGBB)
		luma[i] = byte((29*int(p[0]) + 150*int(p[1]) + 77*int(p[2])) >> 8)
	}
	return shot{luma: luma, w: s.w, h: s.h, sent: sent, done: done}, nil
}

// The first row of hal/sim's stamp: bits 0..15 are the sync pattern
// 0x5A3C. Its white runs, in cells from the stamp's left edge, are what
// findStamps looks for on each line of a screenshot.
var syncWhiteRuns = [4][2]int{{1, 2}, {3, 5}, {6, 7}, {10, 14}} // [start, end) in cells

// stampRect is where a video frame, as scaled on screen, is: its stamp is
// at its top. h follows from w as the video is 16:9 and shown whole
// (object-fit: contain).
type stampRect struct{ x, y, w, h int }

// findStamps returns the rectangles of the 16:9 pictures on the screenshot
// whose top line shows the stamp's sync pattern, topmost line of each.
func findStamps(s shot) []stampRect {
	var found []stampRect
	var runs [][2]int
	for y := range s.h {
		row := s.luma[y*s.w : (y+1)*s.w]
		runs = runs[:0]
		for x := 0; x < s.w; {
			if row[x] < 128 {
				x++
				continue
			}
			start := x
			for x < s.w && row[x] >= 128 {
				x++
			}
			runs = append(runs, [2]int{start, x})
		}
		for i := 0; i+4 <= len(runs); i++ {
			r, ok := matchSync(runs[i:i+4], runs, i)
			if !ok {
				continue
			}
			r.y = y
			dup := false
			for _, f := range found {
				if abs(f.x-r.x) <= 3 && abs(f.w-r.w) <= 6 && y-f.y <= f.h/32+2 {
					dup = true
				}
			}
			if !dup {
				found = append(found, r)
			}
		}
	}
	return found
}

// matchSync checks four consecutive white runs against syncWhiteRuns, and
// that the cells before and after the pattern are black.
func matchSync(four [][2]int, all [][2]int, i int) (stampRect, bool) {
	span := four[3][1] - four[0][0] // cells 1..14: 13 cells
	cell := float64(span) / 13
	if cell < 3 {
		return stampRect{}, false
	}
	x0 := float64(four[0][0]) - cell
	near := func(got int, wantCells int) bool {
		want := float64(wantCells)*cell + x0
		return abs(got-int(want+0.5)) <= int(cell/4)+2
	}
	for k, run := range four {
		if !near(run[0], syncWhiteRuns[k][0]) || !near(run[1], syncWhiteRuns[k][1]) {
			return stampRect{}, false
		}
	}
	if x0 < 0 {
		return stampRect{}, false
	}
	// Cell 0 is black: no white run may end inside it.
	if i > 0 && float64(all[i-1][1]) > x0+cell/4 {
		return stampRect{}, false
	}
	// Cells 14 and 15 are black.
	if i+4 < len(all) && float64(all[i+4][0]) < x0+16*cell-cell/4 {
		return stampRect{}, false
	}
	w := int(32*cell + 0.5)
	return stampRect{x: int(x0 + 0.5), w: w, h: w * 9 / 16}, true
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// decodeAt reads the stamp of the picture at r, trying small shifts for
// the rounding of r; ok is false when none decodes (the CRC guards against
// a misread).
func decodeAt(s shot, r stampRect) (seq uint64, captured time.Time, at stampRect, ok bool) {
	// One buffer for every try: frameAt rewrites all the rows DecodeStamp
	// reads, and the rest stays zero.
	w, h := (r.w+2)&^1, ((r.w+2)*9/16)&^1
	buf := make([]byte, w*h+2*(w/2)*(h/2))
	for _, dw := range []int{0, -2, 2} {
		for _, dy := range []int{0, 1, 2, -1} {
			for _, dx := range []int{0, -1, 1, -2, 2} {
				c := stampRect{x: r.x + dx, y: r.y + dy, w: r.w + dw, h: (r.w + dw) * 9 / 16}
				if seq, captured, ok := sim.DecodeStamp(frameAt(s, c, buf)); ok {
					return seq, captured, c, true
				}
			}
		}
	}
	return 0, time.Time{}, r, false
}

// frameAt cuts the picture at r out of the screenshot as an I420 frame of
// r's size in buf, which must be large enough and zero beyond the stamp
// band; only the luma of the stamp band is copied, as that is all
// DecodeStamp reads (off-screen pixels read as black).
func frameAt(s shot, r stampRect, buf []byte) hal.VideoFrame {
	w, h := r.w&^1, r.h&^1
	data := buf[:w*h+2*(w/2)*(h/2)]
	for y := range stampBand(h) + 1 {
		sy := r.y + y
		row := data[y*w : (y+1)*w]
		for x := range row {
			row[x] = 0
			if sx := r.x + x; sy >= 0 && sy < s.h && sx >= 0 && sx < s.w {
				row[x] = s.luma[sy*s.w+sx]
			}
		}
	}
	return hal.VideoFrame{Width: w, Height: h, Format: hal.PixelI420, Data: data}
}

// save writes the screenshot's luma as a grey PNG, for a failed
// measurement to show what was on screen.
func (s shot) save(path string) error {
	img := &image.Gray{Pix: s.luma, Stride: s.w, Rect: image.Rect(0, 0, s.w, s.h)}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return fmt.Errorf("encode screenshot: %w", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("save screenshot: %w", err)
	}
	return nil
}
