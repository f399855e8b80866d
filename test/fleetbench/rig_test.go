package fleetbench

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/ca"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/test/fleetload"
	"github.com/atriumroom/atrium/test/pgtest"
	"github.com/atriumroom/atrium/test/proc"
	"github.com/atriumroom/atrium/test/procstat"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// Engines the rig runs fleetd on.
const (
	engineSQLite   = "sqlite"
	enginePostgres = "postgres"
)

// viaAPI is how many devices enroll through fleetd's enrollment endpoint
// on top of the provisioned ones: enough to prove the path, few enough for
// its rate limit.
const viaAPI = 3

// rig is the real fleetd on one engine with a provisioned fleet and the
// load generator for it.
type rig struct {
	tb       testing.TB
	engine   string
	dir      string
	dsn      string
	fleetd   *proc.Process
	pid      int
	pgRoot   int // the postmaster's pid (PostgreSQL only)
	url      string
	roots    *x509.CertPool
	devices  []fleetload.Device // provisioned, then enrolled through the API
	gen      *fleetload.Generator
	provTime time.Duration
}

// newRig provisions devices fleetload devices into a new fleet on engine,
// starts fleetd on it, enrolls viaAPI more through the enrollment
// endpoint, and prepares the generator. Everything stops at tb's cleanup.
func newRig(tb testing.TB, ctx context.Context, engine string, devices int) *rig {
	tb.Helper()
	// Go's build cache makes the second build of a run cheap.
	bin := roomdtest.Build(tb, "./cmd/fleetd")
	r := &rig{tb: tb, engine: engine, dir: tb.TempDir()}
	so := store.Options{SQLitePath: filepath.Join(r.dir, "fleet.db")}
	if engine == enginePostgres {
		pg := pgtest.Start(tb)
		r.dsn = pg.NewDatabase(tb)
		so = store.Options{PostgresDSN: r.dsn}
		r.pgRoot = postmaster(tb)
	}

	// The fleet is written while fleetd is not running, through the same
	// store and CA code fleetd uses, on the same database and directory.
	start := time.Now()
	st, err := store.Open(ctx, so)
	if err != nil {
		tb.Fatal(err)
	}
	authority, err := ca.Open(ca.Options{Dir: filepath.Join(r.dir, "ca")})
	if err != nil {
		st.Close()
		tb.Fatal(err)
	}
	fleet, err := fleetload.Provision(ctx, fleetload.ProvisionOptions{Store: st, CA: authority, Count: devices})
	if err != nil {
		st.Close()
		tb.Fatal(err)
	}
	var codes []string
	for range viaAPI {
		code, _, err := st.CreateEnrollmentCode(ctx, "fleetbench", store.CodeScope{SiteID: fleet.SiteID}, time.Hour)
		if err != nil {
			st.Close()
			tb.Fatal(err)
		}
		codes = append(codes, code)
	}
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
	r.provTime = time.Since(start)
	r.devices = fleet.Devices
	r.roots = authority.Pool()

	devPort, conPort := roomdtest.FreePort(tb), roomdtest.FreePort(tb)
	args := []string{"serve", "-data", r.dir,
		"-device-listen", "127.0.0.1:" + strconv.Itoa(devPort),
		"-console-listen", "127.0.0.1:" + strconv.Itoa(conPort),
		"-server-name", "localhost"}
	if r.dsn != "" {
		args = append(args, "-postgres", r.dsn)
	}
	cmd := exec.Command(bin, args...)
	r.fleetd = proc.Start(tb, "fleetd", cmd, 10*time.Second)
	r.pid = cmd.Process.Pid
	r.url = "https://localhost:" + strconv.Itoa(devPort)
	r.waitListening()

	for i, code := range codes {
		d, resp, err := fleetload.Enroll(ctx, fleetload.EnrollOptions{
			BaseURL: r.url, Roots: r.roots, Code: code,
			RoomName: fmt.Sprintf("API room %d", i+1), Serial: fmt.Sprintf("api-%03d", i+1),
		})
		if err != nil {
			tb.Fatalf("enroll through %s: %v", r.url, err)
		}
		if resp.CheckInSeconds != 60 {
			tb.Errorf("fleetd asks for check-ins every %d s, want the default 60", resp.CheckInSeconds)
		}
		r.devices = append(r.devices, d)
	}

	r.gen, err = fleetload.New(fleetload.Options{BaseURL: r.url, Roots: r.roots, Devices: r.devices})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(r.gen.Close)
	return r
}

// waitListening waits for fleetd's "device API listening" line.
func (r *rig) waitListening() {
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(r.fleetd.Log(), "device API listening") {
		if err := r.fleetd.Exited(); err != nil {
			r.tb.Fatalf("%v before listening:\n%s", err, r.fleetd.Log())
		}
		if time.Now().After(deadline) {
			r.tb.Fatalf("fleetd not listening after 30 s:\n%s", r.fleetd.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postmaster finds the PostgreSQL server pgtest started: the child of
// this process named postgres.
func postmaster(tb testing.TB) int {
	tb.Helper()
	self := os.Getpid()
	all, err := procstat.All()
	if err != nil {
		tb.Fatal(err)
	}
	for pid, st := range all {
		if st.PPID == self && st.Comm == "postgres" {
			return pid
		}
	}
	tb.Fatal("no postgres process under the test process")
	return 0
}

// step is one measured rate.
type step struct {
	res                             fleetload.Result
	fleetdCPU, pgCPU, selfCPU, busy float64
	retried                         bool // failed, and was run again
}

// failed says why the step does not pass, "" when it does.
func (s step) failed() string {
	if s.res.Errors > 0 {
		return fmt.Sprintf("%d errors (%s)", s.res.Errors, strings.Join(s.res.ErrorSamples, "; "))
	}
	if p99 := s.res.Percentile(99); p99 >= p99Limit {
		return fmt.Sprintf("p99 %v >= %v", p99.Round(time.Millisecond), p99Limit)
	}
	return ""
}

// others is the CPU of every other process on the machine during the
// step, in percent of one core: what the machine did besides the bench.
func (s step) others(nproc int) float64 {
	return max(0, s.busy*float64(nproc)-s.fleetdCPU-s.pgCPU-s.selfCPU)
}

// measure runs n devices at interval for one interval of warm-up, then
// measures window with CPU sampled around it.
func (r *rig) measure(ctx context.Context, n int, interval, window time.Duration) (step, error) {
	if _, err := r.gen.Run(ctx, fleetload.RunOptions{Devices: n, Interval: interval, Window: interval}); err != nil {
		return step{}, err
	}
	f0, p0, s0, m0 := sampleTree(r.pid), sampleTree(r.pgRoot), sampleProc(os.Getpid()), sampleMachine()
	res, err := r.gen.Run(ctx, fleetload.RunOptions{Devices: n, Interval: interval, Window: window})
	f1, p1, s1, m1 := sampleTree(r.pid), sampleTree(r.pgRoot), sampleProc(os.Getpid()), sampleMachine()
	if err != nil {
		return step{}, err
	}
	if err := r.fleetd.Exited(); err != nil {
		return step{}, fmt.Errorf("fleetd died during the step: %w", err)
	}
	return step{res: res, fleetdCPU: cpuPercent(f0, f1), pgCPU: cpuPercent(p0, p1),
		selfCPU: cpuPercent(s0, s1), busy: busyPercent(m0, m1)}, nil
}

// store opens the fleet's database beside the running fleetd, for checks.
func (r *rig) store(ctx context.Context) *store.Store {
	so := store.Options{SQLitePath: filepath.Join(r.dir, "fleet.db")}
	if r.dsn != "" {
		so = store.Options{PostgresDSN: r.dsn}
	}
	st, err := store.Open(ctx, so)
	if err != nil {
		r.tb.Fatal(err)
	}
	r.tb.Cleanup(func() { st.Close() })
	return st
}
