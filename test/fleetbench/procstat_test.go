package fleetbench

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/atriumroom/atrium/test/procstat"
)

type procID struct {
	pid   int
	start int64
}

// cpuSample is the CPU time of a set of processes at one moment, each
// process named by pid and start time.
type cpuSample struct {
	at    time.Time
	ticks map[procID]int64
}

// sampleTree samples root's process tree (none when root is 0).
func sampleTree(root int) cpuSample {
	s := cpuSample{at: time.Now(), ticks: map[procID]int64{}}
	if root == 0 {
		return s
	}
	all, err := procstat.All()
	if _, ok := all[root]; err != nil || !ok {
		return s
	}
	for _, pid := range procstat.Tree(all, root) {
		st := all[pid]
		s.ticks[procID{pid, st.Start}] = st.Ticks
	}
	return s
}

// sampleProc samples one process alone (not its children).
func sampleProc(pid int) cpuSample {
	s := cpuSample{at: time.Now(), ticks: map[procID]int64{}}
	if st, err := procstat.Read(pid); err == nil {
		s.ticks[procID{pid, st.Start}] = st.Ticks
	}
	return s
}

// cpuPercent is the CPU the processes used between two samples, in
// percent of one core: a process in both counts its difference, one that
// started in between all of its time (it began inside the window), one
// that ended in between is lost (PostgreSQL backends live as long as
// fleetd's connection pool keeps them).
func cpuPercent(a, b cpuSample) float64 {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return 0
	}
	var ticks int64
	for id, t := range b.ticks {
		ticks += t - a.ticks[id]
	}
	return float64(ticks) / procstat.ClockTicks / secs * 100
}

// machineSample is /proc/stat's first line: all CPU time and idle time.
type machineSample struct{ total, idle int64 }

func sampleMachine() machineSample {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineSample{}
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	var m machineSample
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		m.total += n
		if i == 3 || i == 4 { // idle, iowait
			m.idle += n
		}
	}
	return m
}

// busyPercent is the machine's busy share between two samples, in percent
// of all its cores.
func busyPercent(a, b machineSample) float64 {
	if b.total <= a.total {
		return 0
	}
	return 100 * (1 - float64(b.idle-a.idle)/float64(b.total-a.total))
}

func cpuModel() string {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
