package audiotest

import (
	"math"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal/pulse"
	"github.com/atriumroom/atrium/test/pipewiretest"
)

// TestPipeWireEchoCanceller runs the self-test against a real PipeWire
// (test/pipewiretest) with the image's echo-canceller configuration: the
// room's raw speaker and microphone are joined by a perfect echo path, so
// the raw ERL is about 0 dB; through the canceller the far end must hear
// the echo much reduced.
func TestPipeWireEchoCanceller(t *testing.T) {
	srv := pipewiretest.Start(t)
	ctx := testContext(t)
	d, err := pulse.New(ctx, pulse.Options{Server: srv.PulseServer})
	if err != nil {
		t.Fatal(err)
	}
	devs, err := d.Enumerate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var raw Pair
	for _, dev := range devs {
		if s, ok := dev.(*pulse.Speaker); ok && s.NodeName() == pipewiretest.RoomSink {
			// The room's microphone is its speaker's monitor.
			raw = Pair{Speaker: s, Microphone: s.Monitor()}
		}
	}
	spk, mic, ok := pulse.EchoCancelledPair(devs)
	if raw.Speaker == nil || raw.Microphone == nil || !ok {
		t.Fatalf("devices missing from %v", devs)
	}
	start := time.Now()
	cmp, err := RunWithAndWithoutCanceller(ctx, raw, Pair{Speaker: spk, Microphone: mic}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v\n(took %v)", cmp, time.Since(start).Round(time.Millisecond))

	// The raw path is the null sink's own monitor: the echo is the signal
	// itself, so it is found and comes back at full level. (Its
	// correlation is 1 unless the server was starved for a moment and
	// played a gap, which cuts the burst in two: seen down to 0.7 under a
	// synthetic load before the harness had real-time scheduling, which
	// it has only as root.)
	r := cmp.Raw
	if !r.Detected || r.Correlation < 0.5 {
		t.Errorf("raw: echo not found (correlation %.2f)", r.Correlation)
	}
	if math.Abs(r.ERL) > 1 {
		t.Errorf("raw: ERL %.1f dB, want 0 ± 1 (a perfect echo path)", r.ERL)
	}
	// The delay is the output buffering (20 ms asked for) and the graph's
	// cycles; a delay outside this range means the clocks are wrong.
	if r.Delay < -20*time.Millisecond || r.Delay > 300*time.Millisecond {
		t.Errorf("raw: delay %v, not a plausible buffering delay", r.Delay)
	}
	// Through the canceller, 20 dB is the least a working canceller gives
	// (a disabled or misrouted one, whose reference is not what the room
	// plays, gives about 0). Measured here with the harness's real-time
	// scheduling: 68 to 70 dB, idle or with three CPU hogs on two cores;
	// without it, 19.8 to 53 dB under that load, as gaps make it re-learn.
	if c := cmp.Cancelled; c.ERL < 20 {
		t.Errorf("with canceller: ERL %.1f dB, want at least 20", c.ERL)
	}
	if cmp.Improvement < 20 {
		t.Errorf("the canceller removes %.1f dB, want at least 20", cmp.Improvement)
	}
}
