package pipewiretest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestStart brings up the private PipeWire and checks the room and the
// repository's echo canceller are there, as the pulse protocol shows them
// to pactl, and that nothing of the host leaked in.
func TestStart(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	info, err := s.Pactl(ctx, "info")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "PipeWire") {
		t.Errorf("pactl info does not name PipeWire:\n%s", info)
	}
	// The canceller's nodes have the highest priority: they are the
	// defaults, as on the device.
	for _, want := range []string{"Default Sink: " + ECSink, "Default Source: " + ECSource} {
		if !strings.Contains(info, want) {
			t.Errorf("pactl info lacks %q:\n%s", want, info)
		}
	}
	sinks, err := s.Pactl(ctx, "list", "short", "sinks")
	if err != nil {
		t.Fatal(err)
	}
	sources, err := s.Pactl(ctx, "list", "short", "sources")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(sinks), []string{RoomSink, ECSink}; !sameSet(got, want) {
		t.Errorf("sinks = %v, want %v", got, want)
	}
	if got, want := names(sources), []string{RoomMonitor, ECSource, ECSink + ".monitor"}; !sameSet(got, want) {
		t.Errorf("sources = %v, want %v", got, want)
	}
	if err := s.Exited(); err != nil {
		t.Fatal(err)
	}
}

func names(short string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(short), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			out = append(out, f[1])
		}
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestLinked(t *testing.T) {
	out := `atrium-test-room:monitor_MONO
  |-> atrium-ec-capture:input_MONO
atrium-test-room:playback_MONO
  |<- atrium-ec-playback:output_MONO
atrium-ec-playback:output_MONO
  |-> atrium-test-room:playback_MONO
`
	for _, c := range []struct {
		from, to string
		want     bool
	}{
		{"atrium-test-room", "atrium-ec-capture", true},
		{"atrium-ec-playback", "atrium-test-room", true},
		{"atrium-test-room", "atrium-ec-playback", false}, // only the reverse direction
		{"atrium-ec-capture", "atrium-test-room", false},
	} {
		if got := linked(out, c.from, c.to); got != c.want {
			t.Errorf("linked(%s -> %s) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
}

func TestSourceOutput(t *testing.T) {
	out := `Source Output #41
	Driver: PipeWire
	Properties:
		media.name = "Echo-Cancel Capture"
		node.name = "atrium-ec-capture"

Source Output #57
	Properties:
		node.name = "roomd capture"
`
	if idx, ok := sourceOutput(out, "atrium-ec-capture"); !ok || idx != "41" {
		t.Errorf("sourceOutput = %q, %v; want 41", idx, ok)
	}
	if _, ok := sourceOutput(out, "atrium-ec-playback"); ok {
		t.Error("found a source output that is not there")
	}
}
