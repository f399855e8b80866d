package devctl

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
)

type lister map[string]hal.Device

func (l lister) Lookup(id string) (hal.Device, bool) { d, ok := l[id]; return d, ok }

func fixedNow() time.Time { return time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC) }

func newSim(t *testing.T) *sim.Driver {
	t.Helper()
	d, err := sim.New(sim.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func value(t *testing.T, d hal.Device, id hal.ControlID) int64 {
	t.Helper()
	for _, c := range d.(hal.Controller).Controls() {
		if c.ID == id {
			return c.Value
		}
	}
	t.Fatalf("%s has no %s", d.Info().ID, id)
	return 0
}

func newController(t *testing.T, devs lister, path string) *Controller {
	t.Helper()
	store, err := OpenStore(path, fixedNow, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return New(devs, store, nil)
}

func TestSetAndNudge(t *testing.T) {
	ctx := context.Background()
	s := newSim(t)
	cam := s.Camera()
	c := newController(t, lister{sim.CameraID: cam, "sim:speaker": s.Speaker()}, filepath.Join(t.TempDir(), "presets.json"))
	id := sim.CameraID

	if _, err := c.Set(ctx, id, hal.CtrlBrightness, 200); err != nil {
		t.Fatal(err)
	}
	if v := value(t, cam, hal.CtrlBrightness); v != 200 {
		t.Errorf("brightness %d after Set 200", v)
	}
	for _, tc := range []struct {
		dev   string
		ctl   hal.ControlID
		v     int64
		want  error
		words string
	}{
		{id, hal.CtrlBrightness, 256, hal.ErrOutOfRange, "outside 0..255"},
		{id, hal.CtrlPan, 100, hal.ErrOutOfRange, "step 3600"},
		{id, hal.CtrlWhiteBalanceAuto, 2, hal.ErrOutOfRange, "not 0 or 1"},
		{id, "sharpness", 1, hal.ErrUnknownControl, "sharpness"},
		{"usb-nope", hal.CtrlZoom, 1, hal.ErrNotFound, "usb-nope"},
		{"sim:speaker", hal.CtrlZoom, 1, ErrNotControllable, "no controls"},
	} {
		_, err := c.Set(ctx, tc.dev, tc.ctl, tc.v)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("Set(%s, %s, %d) = %v, want %v mentioning %q", tc.dev, tc.ctl, tc.v, err, tc.want, tc.words)
		}
	}
	if v := value(t, cam, hal.CtrlBrightness); v != 200 {
		t.Errorf("a refused Set changed brightness to %d", v)
	}

	// Nudges move by steps and stop at the ends.
	if _, err := c.Nudge(ctx, id, hal.CtrlPan, 2); err != nil {
		t.Fatal(err)
	}
	if v := value(t, cam, hal.CtrlPan); v != 7200 {
		t.Errorf("pan %d after +2 steps of 3600, want 7200", v)
	}
	if _, err := c.Nudge(ctx, id, hal.CtrlZoom, 1000); err != nil {
		t.Fatal(err)
	}
	if v := value(t, cam, hal.CtrlZoom); v != 500 {
		t.Errorf("zoom %d after a nudge past the end, want the maximum 500", v)
	}
	if _, err := c.Nudge(ctx, id, hal.CtrlExposureAuto, 1); !errors.Is(err, hal.ErrUnknownControl) {
		t.Errorf("nudging a menu control = %v, want ErrUnknownControl", err)
	}
}

// relOnly is a camera with only relative pan, as some PTZ heads have.
type relOnly struct {
	moved []int64
}

func (r *relOnly) Info() hal.Info { return hal.Info{ID: "usb-rel", Kind: hal.KindCamera} }
func (r *relOnly) Controls() []hal.Control {
	return []hal.Control{{ID: hal.CtrlPanRelative, Type: hal.ControlInt, Min: -10, Max: 10, Step: 1}}
}
func (r *relOnly) SetControl(_ context.Context, id hal.ControlID, v int64) error {
	if id != hal.CtrlPanRelative {
		return hal.ErrUnknownControl
	}
	r.moved = append(r.moved, v)
	return nil
}

func TestNudgeRelativeOnly(t *testing.T) {
	r := &relOnly{}
	c := New(lister{"usb-rel": r}, nil, nil)
	if _, err := c.Nudge(context.Background(), "usb-rel", hal.CtrlPan, -3); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Nudge(context.Background(), "usb-rel", hal.CtrlPan, 50); err != nil {
		t.Fatal(err)
	}
	if len(r.moved) != 2 || r.moved[0] != -3 || r.moved[1] != 10 {
		t.Errorf("relative moves %v, want [-3 10]", r.moved)
	}
	if _, err := c.SavePreset("usb-rel", "Door"); !errors.Is(err, ErrNotPTZ) {
		t.Errorf("preset on a relative-only camera = %v, want ErrNotPTZ", err)
	}
}

func TestPresetsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state", "presets.json")
	s := newSim(t)
	cam := s.Camera()
	devs := lister{sim.CameraID: cam}
	c := newController(t, devs, path)
	id := sim.CameraID

	for _, set := range []struct {
		ctl hal.ControlID
		v   int64
	}{{hal.CtrlZoom, 250}, {hal.CtrlPan, -3600}, {hal.CtrlTilt, 7200}} {
		if _, err := c.Set(ctx, id, set.ctl, set.v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.SavePreset(id, "Whiteboard"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(ctx, id, hal.CtrlZoom, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SavePreset(id, "Wide (table)"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("presets file: %v, mode %v", err, fi.Mode())
	}

	// A new roomd reads the same file.
	c2 := newController(t, devs, path)
	ps, err := c2.Presets(id)
	if err != nil || len(ps) != 2 || ps[0].Name != "Whiteboard" || ps[1].Name != "Wide (table)" {
		t.Fatalf("presets after restart = %+v, %v", ps, err)
	}
	if _, err := c2.RecallPreset(ctx, id, "Whiteboard"); err != nil {
		t.Fatal(err)
	}
	if z, p, tl := value(t, cam, hal.CtrlZoom), value(t, cam, hal.CtrlPan), value(t, cam, hal.CtrlTilt); z != 250 || p != -3600 || tl != 7200 {
		t.Errorf("after recall: zoom %d pan %d tilt %d, want 250 -3600 7200", z, p, tl)
	}
	if _, err := c2.RecallPreset(ctx, id, "Nowhere"); !errors.Is(err, ErrNoPreset) {
		t.Errorf("recall of a missing preset = %v", err)
	}
	if err := c2.DeletePreset(id, "Whiteboard"); err != nil {
		t.Fatal(err)
	}
	if err := c2.DeletePreset(id, "Whiteboard"); !errors.Is(err, ErrNoPreset) {
		t.Errorf("second delete = %v, want ErrNoPreset", err)
	}
	for _, bad := range []string{"", strings.Repeat("x", 41), "a/b", "tab\there"} {
		if _, err := c2.SavePreset(id, bad); !errors.Is(err, ErrInvalidPreset) {
			t.Errorf("SavePreset(%q) = %v, want ErrInvalidPreset", bad, err)
		}
	}
	for i := range MaxPresets - 1 {
		if _, err := c2.SavePreset(id, "P"+string(rune('a'+i%26))+string(rune('a'+i/26))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c2.SavePreset(id, "One too many"); !errors.Is(err, ErrInvalidPreset) {
		t.Errorf("preset %d = %v, want ErrInvalidPreset", MaxPresets+1, err)
	}
}

func TestDamagedStoreIsKeptAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "presets.json")
	if err := os.WriteFile(path, []byte(`{"version":1,"devices":{"cam":[{"name":"a/b"}]}}`), 0o640); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(path, fixedNow, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.List("cam")) != 0 {
		t.Errorf("damaged store loaded presets")
	}
	kept, err := os.ReadFile(path + ".corrupt-20261121T090000Z")
	if err != nil || !strings.Contains(string(kept), "a/b") {
		t.Errorf("damaged file not kept aside: %v", err)
	}
}

func TestMeasureLevel(t *testing.T) {
	s := newSim(t)
	c := New(lister{sim.MicrophoneID: s.Microphone(), sim.CameraID: s.Camera()}, nil, nil)
	lvl, err := c.MeasureLevel(context.Background(), sim.MicrophoneID, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// The simulator plays a tone: well above silence, below full scale, and
	// a sine's peak is 3 dB over its RMS.
	if lvl.RMS < -40 || lvl.RMS > -1 || lvl.Peak < lvl.RMS+2.5 || lvl.Peak > 0 {
		t.Errorf("level of the simulated tone = %+v", lvl)
	}
	if _, err := c.MeasureLevel(context.Background(), sim.CameraID, time.Second); !errors.Is(err, ErrNotMicrophone) {
		t.Errorf("metering a camera = %v", err)
	}
	if _, err := c.MeasureLevel(context.Background(), sim.MicrophoneID, time.Minute); !errors.Is(err, hal.ErrOutOfRange) {
		t.Errorf("a minute-long window = %v", err)
	}
	if _, err := c.MeasureLevel(context.Background(), "nope", time.Second); !errors.Is(err, hal.ErrNotFound) {
		t.Errorf("metering a missing device = %v", err)
	}
}
