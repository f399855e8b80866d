package sim

import (
	"math"
	"strconv"
	"time"
)

// The picture, top to bottom: the stamp band (see stamp.go), then the scene
// (colour bars over a grey ramp, a grid, and a box bouncing in screen
// space), with the frame counter and capture time as digits in a black box
// at the bottom left. Brightness, contrast, zoom, pan and tilt change the
// scene only; the stamp and digits are burned in afterwards, like an OSD, so
// they stay decodable whatever the controls say.

// Video-range luma and neutral chroma (BT.601 limited range).
const (
	yBlack   = 16
	yWhite   = 235
	cNeutral = 128
)

// bar is one colour bar in Y'CbCr.
type bar struct{ y, u, v byte }

// bars75 are the 75% colour bars: white, yellow, cyan, green, magenta, red,
// blue.
var bars75 = [...]bar{
	{180, 128, 128}, {162, 44, 142}, {131, 156, 44}, {112, 72, 58},
	{84, 184, 198}, {65, 100, 212}, {35, 212, 114},
}

// Scene geometry in world units, where the whole scene spans 1x1 at zoom 1
// and repeats beyond, so panning never runs out of picture.
const (
	rampStart     = 2.0 / 3 // bars above, grey ramp below
	rampSteps     = 8
	gridColumns   = 8
	gridRows      = 6
	gridLineWidth = 0.004
	// panRange maps the pan/tilt controls' ±36000 arc seconds onto ±0.5
	// world units: full pan shows the neighbouring half of the scene.
	panRange = 72000.0
)

// pictureControls are the camera controls that change the scene.
type pictureControls struct {
	brightness, contrast, zoom, pan, tilt int
}

func i420Size(w, h int) int { return w*h + 2*(w/2)*(h/2) }

// renderFrame draws frame seq captured at into dst, an I420 buffer of w x h
// (both even).
func renderFrame(dst []byte, w, h int, seq uint64, at time.Time, pc pictureControls) {
	cw, ch := w/2, h/2
	yp := dst[:w*h]
	up := dst[w*h : w*h+cw*ch]
	vp := dst[w*h+cw*ch : w*h+2*cw*ch]
	top := stampBandHeight(h)
	renderScene(yp, up, vp, w, h, top, at, pc)
	drawStamp(yp, up, vp, w, h, encodeStamp(seq, at))
	drawDigits(yp, up, vp, w, h, top, strconv.FormatUint(seq, 10), strconv.FormatInt(at.UnixMilli(), 10))
}

// renderScene fills rows top..h. The scene is separable (columns decide the
// bar, rows decide bars/ramp/grid line), so it builds one template row per
// row class and copies it; that keeps 1080p well under a millisecond per
// frame plus the copy.
func renderScene(yp, up, vp []byte, w, h, top int, at time.Time, pc pictureControls) {
	cw, ch := w/2, h/2
	lut := toneCurve(pc.brightness, pc.contrast)
	zoom := float64(pc.zoom) / 100
	cu := 0.5 + float64(pc.pan)/panRange
	cv := 0.5 - float64(pc.tilt)/panRange // tilting up shows what is above
	sh := h - top

	worldU := func(x float64) float64 { return frac(cu + (x/float64(w)-0.5)/zoom) }
	worldV := func(y float64) float64 { return frac(cv + ((y-float64(top))/float64(sh)-0.5)/zoom) }
	onLine := func(p float64, n int) bool {
		d := frac(p * float64(n))
		return math.Min(d, 1-d)/float64(n) < gridLineWidth/2
	}

	barsY := make([]byte, w)
	rampY := make([]byte, w)
	lineY := make([]byte, w)
	for x := range w {
		u := worldU(float64(x) + 0.5)
		lineY[x] = lut[yBlack]
		if onLine(u, gridColumns) {
			barsY[x], rampY[x] = lut[yBlack], lut[yBlack]
			continue
		}
		barsY[x] = lut[bars75[min(int(u*float64(len(bars75))), len(bars75)-1)].y]
		step := min(int(u*rampSteps), rampSteps-1)
		rampY[x] = lut[yBlack+step*(yWhite-yBlack)/(rampSteps-1)]
	}
	barsU := make([]byte, cw)
	barsV := make([]byte, cw)
	neutral := make([]byte, cw)
	for x := range cw {
		neutral[x] = cNeutral
		u := worldU(float64(2*x) + 1)
		if onLine(u, gridColumns) {
			barsU[x], barsV[x] = cNeutral, cNeutral
			continue
		}
		b := bars75[min(int(u*float64(len(bars75))), len(bars75)-1)]
		barsU[x], barsV[x] = b.u, b.v
	}

	for y := top; y < h; y++ {
		v := worldV(float64(y) + 0.5)
		row := yp[y*w : (y+1)*w]
		switch {
		case onLine(v, gridRows):
			copy(row, lineY)
		case v < rampStart:
			copy(row, barsY)
		default:
			copy(row, rampY)
		}
	}
	for y := top / 2; y < ch; y++ {
		v := worldV(float64(2*y) + 1)
		uRow, vRow := up[y*cw:(y+1)*cw], vp[y*cw:(y+1)*cw]
		if v < rampStart && !onLine(v, gridRows) {
			copy(uRow, barsU)
			copy(vRow, barsV)
		} else {
			copy(uRow, neutral)
			copy(vRow, neutral)
		}
	}

	// The box moves in screen space, so every frame differs even when the
	// camera is zoomed into a flat area. Its path depends on capture time,
	// not Seq, so two streams of the camera agree like a real scene would.
	size := max(sh/4&^1, 2)
	bx := int(triangle(at, 4*time.Second)*float64(w-size)) &^ 1
	by := top + int(triangle(at, 3*time.Second)*float64(sh-size))
	fillY(yp, w, bx, by, bx+size, by+size, lut[yWhite])
	fillY(yp, w, bx+size/4, by+size/4, bx+size-size/4, by+size-size/4, lut[yBlack])
	fillC(up, vp, cw, bx/2, (by+1)/2, (bx+size)/2, (by+size)/2, cNeutral)
}

// toneCurve maps scene luma through brightness and contrast; at the
// defaults (128, 128) it is the identity.
func toneCurve(brightness, contrast int) (lut [256]byte) {
	for i := range lut {
		v := 128 + (i-128)*contrast/128 + (brightness - 128)
		lut[i] = byte(min(max(v, yBlack), yWhite))
	}
	return lut
}

// triangle goes 0→1→0 once per period of wall time.
func triangle(at time.Time, period time.Duration) float64 {
	p := at.UnixNano() % int64(period)
	if p < 0 {
		p += int64(period)
	}
	x := 2 * float64(p) / float64(period)
	if x > 1 {
		x = 2 - x
	}
	return x
}

func frac(x float64) float64 { return x - math.Floor(x) }

// fillY sets luma in [x0,x1)×[y0,y1), clipped to the plane.
func fillY(yp []byte, w, x0, y0, x1, y1 int, val byte) {
	h := len(yp) / w
	x0, x1 = max(x0, 0), min(x1, w)
	y0, y1 = max(y0, 0), min(y1, h)
	for y := y0; y < y1; y++ {
		row := yp[y*w+x0 : y*w+max(x1, x0)]
		for i := range row {
			row[i] = val
		}
	}
}

// fillC sets both chroma planes in [x0,x1)×[y0,y1) of the half-size grid.
func fillC(up, vp []byte, cw, x0, y0, x1, y1 int, val byte) {
	fillY(up, cw, x0, y0, x1, y1, val)
	fillY(vp, cw, x0, y0, x1, y1, val)
}

// Seven-segment digits. Segment bits: a top, b upper right, c lower right,
// d bottom, e lower left, f upper left, g middle.
const (
	segA = 1 << iota
	segB
	segC
	segD
	segE
	segF
	segG
)

var digitSegments = [10]uint8{
	segA | segB | segC | segD | segE | segF,
	segB | segC,
	segA | segB | segD | segE | segG,
	segA | segB | segC | segD | segG,
	segB | segC | segF | segG,
	segA | segC | segD | segF | segG,
	segA | segC | segD | segE | segF | segG,
	segA | segB | segC,
	segA | segB | segC | segD | segE | segF | segG,
	segA | segB | segC | segD | segF | segG,
}

type rect struct{ x0, y0, x1, y1 int }

// digitLayout places the digit box: two lines (counter, then capture time
// in milliseconds since the epoch) of digits a tenth of the frame tall,
// smaller only if the longer line would not fit the width.
type digitLayout struct {
	dh, dw, thick, gap, pad, lineGap int
	box                              rect
}

// layoutDigits returns false when the frame is too small for legible
// digits, or they would cover the stamp band.
func layoutDigits(w, h, top, maxDigits int) (digitLayout, bool) {
	margin := max(h/40, 1)
	// Width in digit heights: 2 pads of 1/4, digits of 0.55, gaps of 0.2.
	perDH := 0.5 + 0.55*float64(maxDigits) + 0.2*float64(maxDigits-1)
	dh := min(h/10, int(float64(w-2*margin)/perDH))
	if dh < 10 {
		return digitLayout{}, false
	}
	l := digitLayout{dh: dh, dw: dh * 11 / 20, thick: max(dh/8, 1), gap: dh / 5, pad: dh / 4, lineGap: dh / 3}
	bw := 2*l.pad + maxDigits*l.dw + (maxDigits-1)*l.gap
	bh := 2*l.pad + 2*dh + l.lineGap
	l.box = rect{margin, h - margin - bh, margin + bw, h - margin}
	if l.box.y0 < top {
		return digitLayout{}, false
	}
	return l, true
}

// digitOrigin is the top-left corner of digit i on line (0 or 1).
func (l digitLayout) digitOrigin(line, i int) (x, y int) {
	return l.box.x0 + l.pad + i*(l.dw+l.gap), l.box.y0 + l.pad + line*(l.dh+l.lineGap)
}

// segmentRects returns the seven segments of a digit at (x, y), indexed
// a..g. Horizontal segments span the full width; vertical ones stop short of
// them, so segments stay separate blobs after scaling and compression.
func (l digitLayout) segmentRects(x, y int) [7]rect {
	w, h, t := l.dw, l.dh, l.thick
	g := max(t/4, 1)
	mt := y + (h-t)/2 // top of the middle segment
	return [7]rect{
		{x, y, x + w, y + t},                          // a
		{x + w - t, y + t + g, x + w, mt - g},         // b
		{x + w - t, mt + t + g, x + w, y + h - t - g}, // c
		{x, y + h - t, x + w, y + h},                  // d
		{x, mt + t + g, x + t, y + h - t - g},         // e
		{x, y + t + g, x + t, mt - g},                 // f
		{x, mt, x + w, mt + t},                        // g
	}
}

func drawDigits(yp, up, vp []byte, w, h, top int, lines ...string) {
	maxDigits := 0
	for _, s := range lines {
		maxDigits = max(maxDigits, len(s))
	}
	l, ok := layoutDigits(w, h, top, maxDigits)
	if !ok {
		return
	}
	b := l.box
	fillY(yp, w, b.x0, b.y0, b.x1, b.y1, yBlack)
	fillC(up, vp, w/2, b.x0/2, b.y0/2, (b.x1+1)/2, (b.y1+1)/2, cNeutral)
	for line, s := range lines {
		for i, c := range []byte(s) {
			x, y := l.digitOrigin(line, i)
			var on uint8
			switch {
			case c >= '0' && c <= '9':
				on = digitSegments[c-'0']
			case c == '-': // a clock before 1970
				on = segG
			}
			for k, r := range l.segmentRects(x, y) {
				if on&(1<<k) != 0 {
					fillY(yp, w, r.x0, r.y0, r.x1, r.y1, yWhite)
				}
			}
		}
	}
}
