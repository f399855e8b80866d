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
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
// every Linux architecture Atrium runs on.
const clockTicks = 100

// procStat is what the bench reads from /proc/PID/stat.
type procStat struct {
	ppid      int
	comm      string
	ticks     int64 // utime + stime
	startTime int64 // with the pid, names a process across pid reuse
}

func readStat(pid int) (procStat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	return parseStat(raw)
}

// parseStat reads proc(5)'s stat line; comm may hold spaces and
// parentheses, so the fields after it are found from the last ')'.
func parseStat(raw []byte) (procStat, error) {
	s := string(raw)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("parse stat %q: no (comm)", s)
	}
	f := strings.Fields(s[end+1:]) // from field 3, state
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("parse stat: %d fields after comm, want 20 or more", len(f))
	}
	var nums [20]int64
	for _, i := range []int{1, 11, 12, 19} { // ppid, utime, stime, starttime
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("parse stat field %d: %w", i+3, err)
		}
		nums[i] = n
	}
	return procStat{ppid: int(nums[1]), comm: s[open+1 : end], ticks: nums[11] + nums[12], startTime: nums[19]}, nil
}

// allProcs reads every process's stat; processes that exit meanwhile are
// left out.
func allProcs() (map[int]procStat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	out := map[int]procStat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			out[pid] = st
		}
	}
	return out, nil
}

// descendants is root and every process under it, by parent pid.
func descendants(procs map[int]procStat, root int) []int {
	children := map[int][]int{}
	for pid, st := range procs {
		children[st.ppid] = append(children[st.ppid], pid)
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// childrenNamed lists the children of parent whose comm is name.
func childrenNamed(procs map[int]procStat, parent int, name string) []int {
	var out []int
	for pid, st := range procs {
		if st.ppid == parent && st.comm == name {
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

func (c *cpuMeter) sample(procs map[int]procStat, pids []int) {
	for _, pid := range pids {
		st, ok := procs[pid]
		if !ok {
			continue
		}
		k := procKey{pid, st.startTime}
		if _, seen := c.from[k]; !seen {
			c.from[k] = 0
			if !c.sampled {
				c.from[k] = st.ticks
			}
			c.comms[k] = st.comm
		}
		c.last[k] = st.ticks
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
	return time.Duration(ticks) * time.Second / clockTicks, strings.Join(parts, ", ")
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
