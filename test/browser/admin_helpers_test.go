package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"net"
	"net/http"
	"strings"

	"github.com/chromedp/chromedp"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// lastNetworkTest reads GET /network/test over roomd's unix socket (the
// Go client has no call for it).
func lastNetworkTest(ctx context.Context, d *roomdtest.Daemon) (apiv1.NetworkTest, error) {
	var out apiv1.NetworkTest
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", d.Socket)
	}}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://roomd"+apiv1.BasePath+"/network/test", nil)
	if err != nil {
		return out, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return out, fmt.Errorf("GET /network/test: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("GET /network/test: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("GET /network/test: %w", err)
	}
	return out, nil
}

// elementShot takes a screenshot, saves it under name and returns the
// pixels of the element sel: what a person in the room sees of it.
func (k *kiosk) elementShot(name, sel string) image.Image {
	k.t.Helper()
	var r struct{ X, Y, W, H float64 }
	js := `JSON.stringify((() => { const b = el(` + jsQuote(sel) + `).getBoundingClientRect(); return {X: b.x, Y: b.y, W: b.width, H: b.height}; })())`
	if err := json.Unmarshal([]byte(k.eval(js)), &r); err != nil {
		k.fatalf("rectangle of %s: %v", sel, err)
	}
	buf, err := chromedp.Run(k.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		k.fatalf("screenshot: %v", err)
	}
	k.save(name, buf)
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		k.t.Fatalf("screenshot %s: %v", name, err)
	}
	rect := image.Rect(int(r.X)+4, int(r.Y)+4, int(r.X+r.W)-4, int(r.Y+r.H)-4).Intersect(img.Bounds())
	if rect.Dx() < 100 || rect.Dy() < 50 {
		k.fatalf("%s is only %v on screen", sel, rect)
	}
	return img.(interface {
		SubImage(image.Rectangle) image.Image
	}).SubImage(rect)
}

// changedPixels counts the pixels whose luma differs by more than 16
// between a and b.
func changedPixels(a, b image.Image) (changed, total int) {
	r := a.Bounds().Intersect(b.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			total++
			if math.Abs(luma(a, x, y)-luma(b, x, y)) > 16 {
				changed++
			}
		}
	}
	return changed, total
}

// jsQuote returns s as a JavaScript string literal.
func jsQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// click clicks the element sel, failing the test with the page's state.
func (k *kiosk) click(sel string) {
	k.t.Helper()
	k.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// setValue replaces the value of the field sel and types text into it, as
// a person would after clearing it.
func (k *kiosk) setValue(sel, text string) {
	k.t.Helper()
	k.do("fill "+sel,
		chromedp.Evaluate[chromedp.Void](`document.querySelector(`+jsQuote(sel)+`).value = ""`),
		chromedp.SendKeys(chromedp.CSS(sel), text),
	)
}

// pressPIN taps the PIN pad's digits.
func (k *kiosk) pressPIN(pin string) {
	k.t.Helper()
	for _, d := range strings.Split(pin, "") {
		k.click(`#admin-pin-pad [data-digit="` + d + `"]`)
	}
}

// checkTargets fails the test if a visible control in sel is smaller than
// a finger's 64 px or lies outside the viewport.
func (k *kiosk) checkTargets(what, sel string) {
	k.t.Helper()
	got := k.eval(`(() => {
		const bad = [];
		for (const e of document.querySelectorAll(` + jsQuote(sel) + `)) {
			if (!e.checkVisibility()) continue;
			const r = e.getBoundingClientRect();
			if (r.left < -1 || r.top < -1 || r.right > innerWidth + 1 || r.bottom > innerHeight + 1) continue; // scrolled away in a pane
			const name = e.id || e.dataset.digit || e.dataset.pane || e.textContent.trim().slice(0, 20) || e.className;
			if (r.width < 64 || r.height < 64) bad.push(name + " is " + Math.round(r.width) + "x" + Math.round(r.height));
		}
		return bad.join("; ");
	})()`)
	if got != "" {
		k.fatalf("%s: small touch targets: %s", what, got)
	}
}
