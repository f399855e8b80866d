package kioskbench

import (
	"context"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
)

// TestFindStamps draws simulated-camera frames into a screenshot the way
// the kiosk shows them (scaled, full-range RGB, on a dark page) and checks
// that the stamped one is found and decoded wherever it is and whatever its
// size, and that a frame with its stamp band painted grey is not.
func TestFindStamps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	devs, err := sim.New(sim.Config{CameraWidth: videoW, CameraHeight: videoH, CameraFPS: videoFPS})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := devs.Camera().Open(ctx, hal.VideoMode{Width: videoW, Height: videoH, FPS: videoFPS, Format: hal.PixelI420})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	stamped, err := stream.ReadFrame(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blank, err := stream.ReadFrame(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range videoW * stampBand(videoH) {
		blank.Data[i] = 128
	}

	for _, tc := range []struct {
		name   string
		at     stampRect // where the stamped frame goes
		blankX int       // where the blanked one goes, beside it
	}{
		{"full screen", stampRect{x: 38, y: 12, w: 1844, h: 1037}, -1},
		{"2x2 grid", stampRect{x: 17, y: 40, w: 941, h: 529}, 963},
		{"3x3 grid", stampRect{x: 651, y: 371, w: 617, h: 347}, 1290},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := shot{luma: make([]byte, screenW*screenH), w: screenW, h: screenH}
			for i := range s.luma {
				s.luma[i] = 20 // the call screen's dark background
			}
			draw(s, stamped, tc.at)
			if tc.blankX >= 0 {
				draw(s, blank, stampRect{x: tc.blankX, y: tc.at.y, w: tc.at.w, h: tc.at.h})
			}
			found := findStamps(s)
			if len(found) != 1 {
				t.Fatalf("found %d stamps (%+v), want 1 at %+v", len(found), found, tc.at)
			}
			seq, captured, r, ok := decodeAt(s, found[0])
			if !ok {
				t.Fatalf("stamp found at %+v (drawn at %+v) does not decode", found[0], tc.at)
			}
			if seq != stamped.Seq || !captured.Equal(stamped.CapturedAt) {
				t.Errorf("decoded frame %d captured %v, want %d captured %v", seq, captured, stamped.Seq, stamped.CapturedAt)
			}
			if abs(r.x-tc.at.x) > 3 || abs(r.y-tc.at.y) > 3 || abs(r.w-tc.at.w) > 6 {
				t.Errorf("decoded at %+v, drawn at %+v", r, tc.at)
			}
		})
	}

	// The copy across the middle of the frame decodes as the top of a
	// picture of the frame's width.
	moved := hal.VideoFrame{Width: videoW, Height: videoH, Format: hal.PixelI420, Data: append([]byte(nil), stamped.Data...)}
	copyStamp(moved)
	for i := range videoW * stampBand(videoH) {
		moved.Data[i] = 128 // only the copy is left
	}
	at := stampCopyRow(videoH)
	if seq, captured, ok := sim.DecodeStamp(hal.VideoFrame{Width: videoW, Height: videoH, Format: hal.PixelI420, Data: moved.Data[at*videoW:]}); !ok || seq != stamped.Seq || !captured.Equal(stamped.CapturedAt) {
		t.Errorf("the stamp's copy at row %d decodes as %d %v %t, want %d %v", at, seq, captured, ok, stamped.Seq, stamped.CapturedAt)
	}
	s := shot{luma: make([]byte, screenW*screenH), w: screenW, h: screenH}
	draw(s, moved, stampRect{x: 200, y: 100, w: 1280, h: 720})
	if found := findStamps(s); len(found) != 1 || found[0].y < 100+at-3 || found[0].y > 100+at+3 {
		t.Errorf("the stamp's copy drawn at y %d: found %+v", 100+at, found)
	} else if seq, _, _, ok := decodeAt(s, found[0]); !ok || seq != stamped.Seq {
		t.Errorf("the stamp's copy on screen decodes as %d %t", seq, ok)
	}

	live := &liveSource{}
	if live.isLive(stamped.Seq, stamped.CapturedAt) {
		t.Error("a frame counts as live before the live camera captured any")
	}
	live.origin.Store(stamped.CapturedAt.Add(-time.Duration(stamped.Seq) * framePeriod).UnixNano())
	if !live.isLive(blank.Seq, blank.CapturedAt) {
		t.Error("the camera's next frame does not count as live")
	}
	if live.isLive(blank.Seq, blank.CapturedAt.Add(time.Millisecond)) {
		t.Error("a frame of another camera (1 ms apart) counts as live")
	}
}

// draw scales f's luma into s at r (nearest neighbour), mapping video
// range to full range as the kiosk's canvas shows it.
func draw(s shot, f hal.VideoFrame, r stampRect) {
	for y := range r.h {
		sy := y * f.Height / r.h
		for x := range r.w {
			v := (int(f.Data[sy*f.Width+x*f.Width/r.w]) - 16) * 255 / 219
			s.luma[(r.y+y)*s.w+r.x+x] = byte(min(max(v, 0), 255))
		}
	}
}
