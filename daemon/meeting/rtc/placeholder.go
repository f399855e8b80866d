package rtc

import "github.com/atriumroom/atrium/hal"

// The "camera unavailable" card is what the far end sees while the room's
// camera is gone (unplugged, or failed); the "camera off" card while people
// in the room switched it off. Sending a picture rather than
// nothing keeps the stream, its SSRC and the far end's layout in place, so
// video resumes without renegotiation, and tells people why the picture
// froze.

// placeholderFPS is the card's frame rate: it does not move, and a few
// frames a second keep receivers' freeze detectors quiet at little cost.
const placeholderFPS = 5

// glyphs is a 5×7 bitmap font with just the letters the card needs; each
// row's low five bits are its pixels, leftmost in bit 4.
var glyphs = map[rune][7]byte{
	'A': {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11},
	'B': {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e},
	'F': {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10},
	'O': {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e},
	'C': {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e},
	'E': {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f},
	'I': {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e},
	'L': {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f},
	'M': {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11},
	'N': {0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x11},
	'R': {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11},
	'U': {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e},
	'V': {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04},
	' ': {},
}

// The cards' texts; every letter must be in glyphs.
const (
	cardUnavailable = "CAMERA UNAVAILABLE"
	cardOff         = "CAMERA OFF"
)

// placeholderFrame renders a card as I420 at w×h (even sizes; odd ones are
// rounded down for chroma as everywhere else in the HAL).
func placeholderFrame(w, h int, text string) hal.VideoFrame {
	cw, ch := w/2, h/2
	data := make([]byte, w*h+2*cw*ch)
	yp, up, vp := data[:w*h], data[w*h:w*h+cw*ch], data[w*h+cw*ch:]
	fill(yp, 40) // dark grey: readable text, no glare on a TV
	fill(up, 128)
	fill(vp, 128)

	// The text spans about 70% of the width, centred a little below the
	// middle; a struck-through frame (the "camera") sits above it.
	// Cells are sized for the longer text, so both cards look alike.
	cell := max(1, w*7/10/(len(cardUnavailable)*6))
	textW := len(text) * 6 * cell
	x0, y0 := (w-textW)/2, h/2+cell*2
	for i, r := range text {
		g := glyphs[r]
		for row := range 7 {
			for col := range 5 {
				if g[row]&(1<<(4-col)) != 0 {
					box(yp, w, h, x0+(i*6+col)*cell, y0+row*cell, cell, cell, 220)
				}
			}
		}
	}
	iw, ih := 16*cell, 10*cell
	ix, iy := (w-iw)/2, y0-4*cell-ih
	t := max(1, cell/2)
	box(yp, w, h, ix, iy, iw, t, 160)
	box(yp, w, h, ix, iy+ih-t, iw, t, 160)
	box(yp, w, h, ix, iy, t, ih, 160)
	box(yp, w, h, ix+iw-t, iy, t, ih, 160)
	for k := range iw { // the strike, corner to corner
		box(yp, w, h, ix+k, iy+k*ih/iw, t, t, 220)
	}
	return hal.VideoFrame{Width: w, Height: h, Format: hal.PixelI420, Data: data}
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

// box paints a luma rectangle, clipped to the picture.
func box(yp []byte, w, h, x, y, bw, bh int, v byte) {
	for r := max(0, y); r < min(h, y+bh); r++ {
		for c := max(0, x); c < min(w, x+bw); c++ {
			yp[r*w+c] = v
		}
	}
}
