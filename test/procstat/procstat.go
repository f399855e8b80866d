// Package procstat reads what the benchmarks measure of processes from
// /proc: each one's parent, name and CPU time, and the process trees they
// add up.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ClockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
// every Linux architecture Atrium runs on.
const ClockTicks = 100

// Stat is one process as /proc/PID/stat gives it.
type Stat struct {
	PPID  int
	Comm  string
	Ticks int64 // utime + stime
	Start int64 // starttime: with the pid, names a process across pid reuse
}

// Read reads one process.
func Read(pid int) (Stat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	return Parse(raw)
}

// Parse reads proc(5)'s stat line. comm may hold spaces and parentheses,
// so the numbered fields are counted from the last ')'.
func Parse(raw []byte) (Stat, error) {
	s := string(raw)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("parse stat %.60q: no (comm)", s)
	}
	f := strings.Fields(s[end+1:]) // f[0] is field 3, state
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("parse stat: %d fields after comm, want at least 20", len(f))
	}
	var vals [4]int64
	for j, i := range []int{1, 11, 12, 19} { // ppid, utime, stime, starttime
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return Stat{}, fmt.Errorf("parse stat field %d: %w", i+3, err)
		}
		vals[j] = n
	}
	return Stat{PPID: int(vals[0]), Comm: s[open+1 : end], Ticks: vals[1] + vals[2], Start: vals[3]}, nil
}

// All reads every process; ones that exit meanwhile are left out.
func All() (map[int]Stat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	out := map[int]Stat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := Read(pid); err == nil {
			out[pid] = st
		}
	}
	return out, nil
}

// Tree is root and every process below it, by parent pid, root first.
func Tree(all map[int]Stat, root int) []int {
	kids := map[int][]int{}
	for pid, st := range all {
		kids[st.PPID] = append(kids[st.PPID], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, kids[out[i]]...)
	}
	return out
}
