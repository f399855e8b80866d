package kioskbench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// machineTicks is the CPU time every process on the machine has used, in
// clock ticks summed over all CPUs: /proc/stat's first line less idle and
// iowait and steal. 0 when it cannot be read (the report then says so).
func machineTicks() int64 {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	n, err := parseMachineTicks(string(raw))
	if err != nil {
		return 0
	}
	return n
}

func parseMachineTicks(s string) (int64, error) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("parse /proc/stat: first line %q", line)
	}
	var busy int64
	// user nice system idle iowait irq softirq steal (idle, iowait and
	// steal are not this machine's work); guest time is
	// already in user.
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/stat field %d: %w", i+1, err)
		}
		if i != 3 && i != 4 && i != 7 {
			busy += n
		}
	}
	return busy, nil
}
