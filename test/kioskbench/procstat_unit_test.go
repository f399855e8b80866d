package kioskbench

import (
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// comm with a space and a parenthesis, as WebKit's names could be.
	line := "4242 (Web (Content) x) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 12 0 98765 1000 200 18446744073709551615\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 17 || st.comm != "Web (Content) x" || st.ticks != 280 || st.startTime != 98765 {
		t.Errorf("parsed %+v", st)
	}
	for _, bad := range []string{"", "4242 comm S 1", "4242 (x) S 1 2 3"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

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
	m.sample(map[int]procStat{1: {comm: "a", ticks: 100, startTime: 5}, 2: {comm: "b", ticks: 50, startTime: 6}}, []int{1, 2})
	m.sample(map[int]procStat{1: {comm: "a", ticks: 130, startTime: 5}, 3: {comm: "c", ticks: 20, startTime: 9}}, []int{1, 2, 3})
	m.sample(map[int]procStat{1: {comm: "d", ticks: 7, startTime: 12}, 3: {comm: "c", ticks: 25, startTime: 9}}, []int{1, 3})
	cpu, names := m.total()
	if want := 62 * time.Second / clockTicks; cpu != want { // a 30 + b 0 + c 25 + d 7
		t.Errorf("CPU %v, want %v", cpu, want)
	}
	if names != "a x1, b x1, c x1, d x1" {
		t.Errorf("names %q", names)
	}
}

func TestDescendants(t *testing.T) {
	procs := map[int]procStat{10: {ppid: 1}, 11: {ppid: 10}, 12: {ppid: 11}, 13: {ppid: 1}, 14: {ppid: 10}}
	got := descendants(procs, 10)
	if len(got) != 4 || got[0] != 10 {
		t.Errorf("descendants of 10: %v, want 10, 11, 14, 12 in some order after 10", got)
	}
	for _, pid := range got {
		if pid == 13 {
			t.Errorf("descendants of 10 include 13: %v", got)
		}
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
