package kioskbench

import (
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/procstat"
)

func TestParseRollup(t *testing.T) {
	raw := "55d0c0000000-7ffd5c9fe000 ---p 00000000 00:00 0    [rollup]\nRss:              102400 kB\nPss:               51200 kB\nPss_Anon:          40000 kB\n"
	rss, pss := parseRollup([]byte(raw))
	if rss != 100<<20 || pss != 50<<20 {
		t.Errorf("Rss %d, Pss %d; want %d, %d", rss, pss, 100<<20, 50<<20)
	}
}

func TestParseMachineTicks(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	n, err := parseMachineTicks("cpu  100 2 30 5000 40 5 6 70 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if n != 143 {
		t.Errorf("busy %d, want 143 (user+nice+system+irq+softirq)", n)
	}
	if _, err := parseMachineTicks("intr 1 2 3"); err == nil {
		t.Error("a file without the cpu line was accepted")
	}
}

func TestCPUMeter(t *testing.T) {
	m := newCPUMeter()
	// a runs through the window; b exits after the first sample; c starts
	// within the window; a's pid is then reused by d.
	m.sample(map[int]procstat.Stat{1: {Comm: "a", Ticks: 100, Start: 5}, 2: {Comm: "b", Ticks: 50, Start: 6}}, []int{1, 2})
	m.sample(map[int]procstat.Stat{1: {Comm: "a", Ticks: 130, Start: 5}, 3: {Comm: "c", Ticks: 20, Start: 9}}, []int{1, 2, 3})
	m.sample(map[int]procstat.Stat{1: {Comm: "d", Ticks: 7, Start: 12}, 3: {Comm: "c", Ticks: 25, Start: 9}}, []int{1, 3})
	cpu, names := m.total()
	if want := 62 * time.Second / procstat.ClockTicks; cpu != want { // a 30 + b 0 + c 25 + d 7
		t.Errorf("CPU %v, want %v", cpu, want)
	}
	if names != "a x1, b x1, c x1, d x1" {
		t.Errorf("names %q", names)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 10; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got := percentile(ds, 50); got != 5500*time.Microsecond {
		t.Errorf("median %v, want 5.5ms", got)
	}
	if got := percentile(ds, 90); got != 9*time.Millisecond {
		t.Errorf("p90 %v, want 9ms", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("median of nothing %v", got)
	}
}
