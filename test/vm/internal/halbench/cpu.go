package halbench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// userHZ is the unit of /proc/stat's times: USER_HZ, fixed at 100 by the
// kernel's ABI on x86 and arm64 whatever the kernel's own tick.
const userHZ = 100

// SystemCPU reads the process's CPU time (getrusage RUSAGE_SELF: user and
// system time of all its threads) and the machine's busy time from
// /proc/stat.
func SystemCPU() (CPUTimes, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return CPUTimes{}, fmt.Errorf("halbench: getrusage: %w", err)
	}
	f, err := os.Open("/proc/stat")
	if err != nil {
		return CPUTimes{}, fmt.Errorf("halbench: %w", err)
	}
	defer f.Close()
	busy, err := machineBusy(bufio.NewScanner(f))
	if err != nil {
		return CPUTimes{}, fmt.Errorf("halbench: /proc/stat: %w", err)
	}
	return CPUTimes{
		User:    time.Duration(ru.Utime.Nano()),
		System:  time.Duration(ru.Stime.Nano()),
		Machine: busy,
	}, nil
}

// machineBusy reads the "cpu" line of /proc/stat (user nice system idle
// iowait irq softirq steal guest guest_nice, in USER_HZ ticks summed over
// the CPUs) and returns the time the CPUs were not idle. guest and
// guest_nice are already counted in user and nice.
func machineBusy(sc *bufio.Scanner) (time.Duration, error) {
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "cpu" {
			continue
		}
		if len(fields) < 5 {
			return 0, fmt.Errorf("cpu line %q: too few fields", sc.Text())
		}
		var busy int64
		for i, s := range fields[1:min(len(fields), 9)] {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cpu line %q: %w", sc.Text(), err)
			}
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			busy += v
		}
		return time.Duration(busy) * time.Second / userHZ, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no cpu line")
}
