package kioskbench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// scope is a testing.TB whose cleanups run when close is called rather
// than at the end of the benchmark: Chromium is gone before the next round
// measures roomd. guest.Start registers its teardown through it.
type scope struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

func newScope(tb testing.TB) *scope {
	s := &scope{TB: tb}
	tb.Cleanup(s.close) // when a Fatal skipped close
	return s
}

func (s *scope) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// close runs the cleanups, last registered first; it may be called again.
func (s *scope) close() {
	s.mu.Lock()
	fs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for _, f := range slices.Backward(fs) {
		f()
	}
}

// machineTicks is the CPU time every process on the machine has used, in
// clock ticks summed over all CPUs: /proc/stat's first line less idle and
// iowait. 0 when it cannot be read (the report then says so).
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
