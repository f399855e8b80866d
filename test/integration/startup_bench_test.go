package integration

import (
	"os/exec"
	"sort"
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/roomdtest"
)

// BenchmarkStartToReady measures roomd from exec to READY=1 with simulated
// devices, against the floor of the same run: exec'ing the same binary to
// print its version and exit. The ratio is how much of startup is roomd's
// own work (config, listeners, device enumeration) rather than the kernel's
// and the Go runtime's.
func BenchmarkStartToReady(b *testing.B) {
	bin := roomdtest.Build(b, "./cmd/roomd")
	var ready, floor []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := exec.Command(bin, "-version").Run(); err != nil {
			b.Fatal(err)
		}
		floor = append(floor, time.Since(start))

		start = time.Now()
		d := roomdtest.Launch(b, bin, roomdtest.Options{})
		if err := d.WaitReady(roomdtest.ReadyTimeout); err != nil {
			b.Fatalf("%v\n%s", err, d.Log())
		}
		ready = append(ready, time.Since(start))
		if _, err := d.Stop(); err != nil {
			b.Fatal(err)
		}
	}
	r, f := median(ready), median(floor)
	b.ReportMetric(float64(r.Microseconds())/1000, "ms-to-ready")
	b.ReportMetric(float64(f.Microseconds())/1000, "ms-exec-floor")
	b.ReportMetric(float64(r)/float64(f), "ready/floor")
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
