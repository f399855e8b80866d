package kioskbench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atriumroom/atrium/test/procstat"
)

// childrenNamed lists the children of parent whose comm is name.
func childrenNamed(procs map[int]procstat.Stat, parent int, name string) []int {
	var out []int
	for pid, st := range procs {
		if st.PPID == parent && st.Comm == name {
			out = append(out, pid)
		}
	}
	return out
}

type procKey struct {
	pid   int
	start int64
}

// cpuMeter adds up the CPU time of a changing set of processes from its
// first sample on: a process present at the first sample counts from
// there, one that appears later from its start, each to its last sample
// (so one that exits loses at most one sampling interval).
type cpuMeter struct {
	sampled bool
	from    map[procKey]int64
	last    map[procKey]int64
	comms   map[procKey]string
}

func newCPUMeter() *cpuMeter {
	return &cpuMeter{from: map[procKey]int64{}, last: map[procKey]int64{}, comms: map[procKey]string{}}
}

func (c *cpuMeter) sample(procs map[int]procstat.Stat, pids []int) {
	for _, pid := range pids {
		st, ok := procs[pid]
		if !ok {
			continue
		}
		k := procKey{pid, st.Start}
		if _, seen := c.from[k]; !seen {
			c.from[k] = 0
			if !c.sampled {
				c.from[k] = st.Ticks
			}
			c.comms[k] = st.Comm
		}
		c.last[k] = st.Ticks
	}
	c.sampled = true
}

// total is the CPU time and the distinct process names seen, with counts.
func (c *cpuMeter) total() (time.Duration, string) {
	var ticks int64
	names := map[string]int{}
	for k, last := range c.last {
		ticks += last - c.from[k]
		names[c.comms[k]]++
	}
	var parts []string
	for n, k := range names {
		parts = append(parts, fmt.Sprintf("%s x%d", n, k))
	}
	slices.Sort(parts)
	return time.Duration(ticks) * time.Second / procstat.ClockTicks, strings.Join(parts, ", ")
}

// memory sums Rss and Pss (bytes) from /proc/PID/smaps_rollup over pids;
// processes that exited meanwhile are left out.
func memory(pids []int) (rss, pss int64) {
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		r, p := parseRollup(raw)
		rss += r
		pss += p
	}
	return rss, pss
}

func parseRollup(raw []byte) (rss, pss int64) {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		kib, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			rss = kib << 10
		case "Pss:":
			pss = kib << 10
		}
	}
	return rss, pss
}
