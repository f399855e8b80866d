package sim

import (
	"encoding/binary"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// The stamp is a 32x4 grid of black and white cells across the top eighth
// of the frame, one bit per cell, row by row, most significant bit first:
//
//	bits   0..15  sync pattern (stampSync): proves a stamp is there and gives
//	              the decoder the local black and white levels
//	bits  16..79  capture time, Unix nanoseconds (int64)
//	bits  80..111 frame counter, low 32 bits of Seq
//	bits 112..127 CRC-16/CCITT-FALSE of the 14 bytes before it
//
// Cells are fractions of the frame (1/32 of the width, 1/32 of the height),
// so the stamp survives scaling to any resolution; at 640x360 a cell is
// 20x11 pixels, large enough for H.264, VP8 or JPEG at ordinary bitrates to
// keep each cell's mean on the right side of mid-grey.
const (
	stampCols    = 32
	stampRows    = 4
	stampRowsDiv = 32 // cell height is frame height / stampRowsDiv
	stampBytes   = stampCols * stampRows / 8
	stampSync    = 0x5A3C // eight ones, eight zeros, no long runs
	// stampMinContrast is the least white-minus-black difference, in luma
	// levels, at which the decoder trusts what it sees.
	stampMinContrast = 40
)

func stampBandHeight(h int) int { return stampRows * h / stampRowsDiv }

func stampCell(col, row, w, h int) rect {
	return rect{col * w / stampCols, row * h / stampRowsDiv, (col + 1) * w / stampCols, (row + 1) * h / stampRowsDiv}
}

func encodeStamp(seq uint64, at time.Time) [stampBytes]byte {
	var b [stampBytes]byte
	binary.BigEndian.PutUint16(b[0:], stampSync)
	binary.BigEndian.PutUint64(b[2:], uint64(at.UnixNano()))
	binary.BigEndian.PutUint32(b[10:], uint32(seq))
	binary.BigEndian.PutUint16(b[14:], crc16(b[:14]))
	return b
}

func drawStamp(yp, up, vp []byte, w, h int, bits [stampBytes]byte) {
	for i := range stampCols * stampRows {
		c := stampCell(i%stampCols, i/stampCols, w, h)
		val := byte(yBlack)
		if bits[i/8]&(0x80>>(i%8)) != 0 {
			val = yWhite
		}
		fillY(yp, w, c.x0, c.y0, c.x1, c.y1, val)
	}
	fillC(up, vp, w/2, 0, 0, w/2, stampBandHeight(h)/2, cNeutral)
}

// DecodeStamp reads the frame counter and capture time that the simulated
// camera stamped into frame, also after scaling and lossy compression. It
// reads only the luma plane, so it accepts I420 and NV12. seq holds the low
// 32 bits of the original Seq. ok is false when there is no intact stamp:
// not a simulated frame, or too damaged (the CRC guards against misreads).
func DecodeStamp(frame hal.VideoFrame) (seq uint64, captured time.Time, ok bool) {
	w, h := frame.Width, frame.Height
	if frame.Format != hal.PixelI420 && frame.Format != hal.PixelNV12 {
		return 0, time.Time{}, false
	}
	if w < stampCols || h < stampRowsDiv || len(frame.Data) < w*h {
		return 0, time.Time{}, false
	}
	var means [stampCols * stampRows]float64
	for i := range means {
		means[i] = cellMean(frame.Data[:w*h], w, stampCell(i%stampCols, i/stampCols, w, h))
	}
	// Threshold halfway between the sync pattern's whites and blacks, so
	// an encoder's level shifts do not matter.
	var white, black float64
	for i := range 16 {
		if stampSync&(0x8000>>i) != 0 {
			white += means[i]
		} else {
			black += means[i]
		}
	}
	white, black = white/8, black/8
	if white-black < stampMinContrast {
		return 0, time.Time{}, false
	}
	threshold := (white + black) / 2
	var b [stampBytes]byte
	for i, m := range means {
		if m > threshold {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	if binary.BigEndian.Uint16(b[0:]) != stampSync || binary.BigEndian.Uint16(b[14:]) != crc16(b[:14]) {
		return 0, time.Time{}, false
	}
	return uint64(binary.BigEndian.Uint32(b[10:])), time.Unix(0, int64(binary.BigEndian.Uint64(b[2:]))), true
}

// cellMean averages the middle half of a cell in each direction, away from
// the edges that blur and ring under compression.
func cellMean(yp []byte, w int, c rect) float64 {
	cw, ch := c.x1-c.x0, c.y1-c.y0
	x0, x1 := c.x0+cw/4, c.x1-cw/4
	y0, y1 := c.y0+ch/4, c.y1-ch/4
	if x1 <= x0 {
		x0, x1 = c.x0+cw/2, c.x0+cw/2+1
	}
	if y1 <= y0 {
		y0, y1 = c.y0+ch/2, c.y0+ch/2+1
	}
	sum := 0
	for y := y0; y < y1; y++ {
		for _, v := range yp[y*w+x0 : y*w+x1] {
			sum += int(v)
		}
	}
	return float64(sum) / float64((x1-x0)*(y1-y0))
}

// crc16 is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF).
func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
