package rtc

import (
	"testing"
	"time"
)

func TestRateMeterWindows(t *testing.T) {
	var m rateMeter
	t0 := time.Unix(1_000_000, 0)
	steps := []struct {
		at              time.Duration
		in, out         uint64
		wantIn, wantOut int
	}{
		{0, 0, 0, 0, 0}, // first reading: no rate yet
		{500 * time.Millisecond, 50_000, 0, 0, 0},                   // within the window: still none
		{time.Second, 125_000, 250_000, 1_000_000, 2_000_000},       // window done: 125 kB in 1 s
		{1500 * time.Millisecond, 999_999, 0, 1_000_000, 2_000_000}, // within: last rate, window kept
		{3 * time.Second, 375_000, 250_000, 1_000_000, 0},           // 250 kB in 2 s
	}
	for _, s := range steps {
		in, out := m.update(t0.Add(s.at), s.in, s.out)
		if in != s.wantIn || out != s.wantOut {
			t.Errorf("at %v: rates %d/%d, want %d/%d", s.at, in, out, s.wantIn, s.wantOut)
		}
	}
}
