package webview

import (
	"errors"
	"fmt"
	"image"
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/roomdtest"
)

// Colours of the kiosk UI's stylesheet (ui/web/style.css).
var (
	uiBackground = rgb{0x0a, 0x0e, 0x15} // --bg
	uiAccent     = rgb{0x1f, 0x63, 0xd6} // --accent: the Join button
)

// TestRoomkioskShowsRoomdUI runs the shell against a real roomd and judges
// the screen by its pixels: the kiosk's dark background fills most of it,
// the Join button's blue is where the join panel is, text makes it far from
// uniform, and the clock changes it from one second to the next.
func TestRoomkioskShowsRoomdUI(t *testing.T) {
	requireTools(t)
	root := roomdtest.RepoRoot(t)
	art := artifactDir(t)
	bin := buildKiosk(t, root)
	display := startXvfb(t, art)
	d := roomdtest.Start(t, roomdtest.Options{})
	k := startKiosk(t, bin, display, d.URL+"/", art)

	var first image.Image
	waitScreen(t, display, art, "10-roomd-home", 60*time.Second, func(img image.Image) error {
		first = img
		return checkHome(img)
	})
	time.Sleep(1500 * time.Millisecond)
	waitScreen(t, display, art, "11-roomd-home-later", 10*time.Second, func(img image.Image) error {
		if err := checkHome(img); err != nil {
			return err
		}
		if changed := changedPixels(first, img); changed < 200 {
			return fmt.Errorf("only %d pixels changed in 1.5 s: the clock is not ticking on screen", changed)
		}
		return nil
	})
	if t.Failed() {
		t.Logf("roomkiosk log:\n%s", k.logs())
	}
}

func checkHome(img image.Image) error {
	if err := checkSize(img); err != nil {
		return err
	}
	var errs []error
	st := measure(img, uiBackground, uiAccent)
	if st.dark < 0.6 {
		errs = append(errs, fmt.Errorf("only %.1f%% of the screen is dark: not the kiosk's dark theme", 100*st.dark))
	}
	if st.distinct < 64 {
		errs = append(errs, fmt.Errorf("only %d distinct colours: the UI did not render", st.distinct))
	}
	// The Join button spans most of the right-hand panel's width.
	right := image.Rect(screenW/2, 0, screenW, screenH)
	if s := regionShare(img, right, uiAccent); s < 0.01 {
		errs = append(errs, fmt.Errorf("the Join button's blue covers %.2f%% of the right half, want at least 1%%", 100*s))
	}
	if s := regionShare(img, image.Rect(0, 0, screenW/2, screenH), uiAccent); s > 0.01 {
		errs = append(errs, fmt.Errorf("the Join button's blue covers %.2f%% of the left half: layout broken", 100*s))
	}
	return errors.Join(errs...)
}

func changedPixels(a, b image.Image) int {
	n := 0
	r := a.Bounds().Intersect(b.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if rgbAt(a, x, y) != rgbAt(b, x, y) {
				n++
			}
		}
	}
	return n
}
