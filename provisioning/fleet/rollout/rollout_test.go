package rollout

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/ota/release"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

func TestValidateRings(t *testing.T) {
	for _, c := range []struct {
		name  string
		rings []Ring
		says  string // "" = valid
	}{
		{"default", DefaultRings(), ""},
		{"one ring", []Ring{{"all", 100}}, ""},
		{"eight rings", []Ring{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"e", 5}, {"f", 6}, {"g", 7}, {"h", 100}}, ""},
		{"none", nil, "0 rings"},
		{"nine rings", []Ring{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"e", 5}, {"f", 6}, {"g", 7}, {"h", 8}, {"i", 100}}, "9 rings"},
		{"empty name", []Ring{{"", 10}, {"all", 100}}, `ring 1 (""): name`},
		{"long name", []Ring{{strings.Repeat("é", 41), 100}}, "ring 1"},
		{"forty characters", []Ring{{strings.Repeat("é", 40), 100}}, ""},
		{"duplicate", []Ring{{"a", 10}, {"a", 100}}, `ring 2 ("a"): name used twice`},
		{"zero", []Ring{{"a", 0}, {"b", 100}}, `ring 1 ("a"): percent 0`},
		{"over 100", []Ring{{"a", 101}}, `ring 1 ("a"): percent 101`},
		{"falling", []Ring{{"a", 10}, {"b", 5}, {"c", 100}}, `ring 2 ("b"): percent 5 must be above the previous ring's 10`},
		{"equal", []Ring{{"a", 10}, {"b", 10}, {"c", 100}}, `ring 2 ("b")`},
		{"not to 100", []Ring{{"a", 10}, {"b", 90}}, `ring 2 ("b"): the last ring must be 100 percent, not 90`},
	} {
		err := ValidateRings(c.rings)
		switch {
		case c.says == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.says != "" && (!errors.Is(err, ErrBadRings) || !strings.Contains(err.Error(), c.says)):
			t.Errorf("%s: got %v, want an ErrBadRings saying %q", c.name, err, c.says)
		}
	}
}

// Buckets are a pure function of the IDs, and spread evenly.
func TestBucketDeterministicAndEven(t *testing.T) {
	// A fixed vector, so the formula cannot drift from what common9.md
	// and the console document: first 8 bytes of SHA-256("r1/d1"),
	// big-endian, mod 100.
	if got := Bucket("rollout-1", "device-1"); got != knownBucket(t, "rollout-1/device-1") {
		t.Fatalf("bucket %d", got)
	}
	const n = 10000
	var counts [100]int
	moved := 0
	for i := range n {
		d := fmt.Sprintf("device-%d", i)
		b := Bucket("rollout-a", d)
		if b < 0 || b > 99 {
			t.Fatalf("bucket %d out of range", b)
		}
		counts[b]++
		if Bucket("rollout-b", d) != b {
			moved++
		}
	}
	// Each bucket expects 100; a binomial's standard deviation is about
	// 10, so 60 to 140 is a four-sigma band.
	for b, c := range counts {
		if c < 60 || c > 140 {
			t.Errorf("bucket %d holds %d of %d", b, c, n)
		}
	}
	// Rings of the default plan hold about 1, 9 and 90 percent.
	rings := DefaultRings()
	var per [3]int
	for i := range n {
		per[RingOf(rings, "rollout-a", fmt.Sprintf("device-%d", i))]++
	}
	for i, want := range []float64{0.01, 0.09, 0.90} {
		got := float64(per[i]) / n
		if math.Abs(got-want) > 0.02 {
			t.Errorf("ring %s holds %.3f of devices, want about %.2f", rings[i].Name, got, want)
		}
	}
	// Another rollout reshuffles: most devices change bucket.
	if moved < n*9/10 {
		t.Errorf("only %d of %d devices changed bucket between rollouts", moved, n)
	}
}

func TestRingOf(t *testing.T) {
	rings := []Ring{{"a", 30}, {"b", 60}, {"c", 100}}
	for i := range 1000 {
		d := fmt.Sprint("d", i)
		b, r := Bucket("x", d), RingOf(rings, "x", d)
		want := 2
		if b < 30 {
			want = 0
		} else if b < 60 {
			want = 1
		}
		if r != want {
			t.Fatalf("bucket %d in ring %d, want %d", b, r, want)
		}
	}
	if RingOf([]Ring{{"a", 1}}, "x", "d") != -1 && Bucket("x", "d") >= 1 {
		t.Fatal("uncovered bucket got a ring")
	}
	if RingOf(nil, "x", "d") != -1 {
		t.Fatal("no rings, yet a ring")
	}
}

// findDevice returns a device ID whose ring in rollout id is ring.
func findDevice(t *testing.T, rings []Ring, id string, ring int) string {
	t.Helper()
	for i := range 100000 {
		d := fmt.Sprint("dev-", i)
		if RingOf(rings, id, d) == ring {
			return d
		}
	}
	t.Fatalf("no device in ring %d", ring)
	return ""
}

func TestOffer(t *testing.T) {
	rings := []Ring{{"canary", 20}, {"all", 100}}
	v := View{ID: "r1", Target: "atrium-2.0", Version: "2.0", Rings: rings, Ring: 0, State: StateRunning}
	rel := Release{Target: "atrium-2.0", Version: "2.0", SecurityVersion: 3, Hardware: []string{"hw1", "hw2"}}
	canary, late := findDevice(t, rings, "r1", 0), findDevice(t, rings, "r1", 1)
	win := fleetapi.MaintenanceWindow{Start: "22:00", End: "04:00"}
	st := func(edit func(*fleetapi.UpdateStatus)) *fleetapi.UpdateStatus {
		s := &fleetapi.UpdateStatus{Hardware: "hw1", Running: "1.0", State: fleetapi.UpdateIdle, SecurityFloor: 3}
		if edit != nil {
			edit(s)
		}
		return s
	}
	for _, c := range []struct {
		name   string
		view   func(*View)
		rel    func(*Release)
		device string
		status *fleetapi.UpdateStatus
		failed bool
		offer  bool
	}{
		{"canary in the open ring", nil, nil, canary, st(nil), false, true},
		{"later ring not open", nil, nil, late, st(nil), false, false},
		{"later ring once open", func(v *View) { v.Ring = 1 }, nil, late, st(nil), false, true},
		{"paused", func(v *View) { v.State = StatePaused }, nil, canary, st(nil), false, false},
		{"halted", func(v *View) { v.State = StateHalted }, nil, canary, st(nil), false, false},
		{"aborted", func(v *View) { v.State = StateAborted }, nil, canary, st(nil), false, false},
		{"completed", func(v *View) { v.State = StateCompleted }, nil, canary, st(nil), false, false},
		{"runs the version", nil, nil, canary, st(func(s *fleetapi.UpdateStatus) { s.Running = "2.0" }), false, false},
		{"other hardware", nil, nil, canary, st(func(s *fleetapi.UpdateStatus) { s.Hardware = "hw9" }), false, false},
		{"second hardware", nil, nil, canary, st(func(s *fleetapi.UpdateStatus) { s.Hardware = "hw2" }), false, true},
		{"never retry", nil, nil, canary, st(func(s *fleetapi.UpdateStatus) { s.NeverRetry = []string{"1.5", "2.0"} }), false, false},
		{"below security floor", nil, nil, canary, st(func(s *fleetapi.UpdateStatus) { s.SecurityFloor = 4 }), false, false},
		{"failed before (stored)", nil, nil, canary, st(nil), true, false},
		{"failed now", nil, nil, canary, st(func(s *fleetapi.UpdateStatus) {
			s.Rollout, s.State, s.Version = "r1", fleetapi.UpdateFailed, "2.0"
		}), false, false},
		{"rolled back now", nil, nil, canary, st(func(s *fleetapi.UpdateStatus) {
			s.Rollout, s.State, s.Version = "r1", fleetapi.UpdateRolledBack, "2.0"
		}), false, false},
		{"failed another rollout", nil, nil, canary, st(func(s *fleetapi.UpdateStatus) {
			s.Rollout, s.State, s.Version = "r0", fleetapi.UpdateFailed, "1.9"
		}), false, true},
		{"under way: offered again", nil, nil, canary, st(func(s *fleetapi.UpdateStatus) {
			s.Rollout, s.State, s.Version = "r1", fleetapi.UpdateDownloading, "2.0"
		}), false, true},
		{"cannot update itself", nil, nil, canary, nil, false, false},
		{"release of another rollout", nil, func(r *Release) { r.Target = "x" }, canary, st(nil), false, false},
	} {
		vv, rr := v, rel
		if c.view != nil {
			c.view(&vv)
		}
		if c.rel != nil {
			c.rel(&rr)
		}
		o := Offer(vv, rr, c.device, c.status, c.failed, win)
		if (o != nil) != c.offer {
			t.Errorf("%s: offer %+v, want offer %v", c.name, o, c.offer)
			continue
		}
		if o == nil {
			continue
		}
		want := fleetapi.UpdateOffer{Rollout: "r1", Target: "atrium-2.0", Version: "2.0", Repository: fleetapi.PathUpdates, Window: &win}
		if o.Rollout != want.Rollout || o.Target != want.Target || o.Version != want.Version || o.Repository != want.Repository ||
			o.Window == nil || *o.Window != win {
			t.Errorf("%s: offer %+v", c.name, o)
		}
	}
	v.Immediate = true
	if o := Offer(v, rel, canary, st(nil), false, win); o == nil || o.Window != nil {
		t.Fatalf("immediate offer %+v: want no window", o)
	}
}

func TestEvaluate(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	rings := []Ring{{"canary", 10}, {"early", 50}, {"all", 100}}
	v := View{ID: "r1", Target: "t", Version: "2.0", Rings: rings, Ring: 0, RingOpened: t0,
		FailureThreshold: 25, SoakMinutes: 60, State: StateRunning}
	rel := Release{Target: "t", Version: "2.0", Hardware: []string{"hw1"}}
	grace := 24 * time.Hour
	dev := func(running string) *fleetapi.UpdateStatus {
		return &fleetapi.UpdateStatus{Hardware: "hw1", Running: running, State: fleetapi.UpdateIdle}
	}
	rep := func(state string) *fleetapi.UpdateStatus {
		return &fleetapi.UpdateStatus{Hardware: "hw1", Rollout: "r1", State: state, Version: "2.0"}
	}
	seen := t0.Add(2 * time.Hour)
	m := func(id string, ring int, device, status *fleetapi.UpdateStatus) Member {
		return Member{DeviceID: id, Ring: ring, LastSeen: seen, Device: device, Status: status}
	}
	later := t0.Add(2 * time.Hour)
	for _, c := range []struct {
		name    string
		view    func(*View)
		members []Member
		now     time.Time
		want    Action
		reason  string
	}{
		{"pending canary waits", nil, []Member{m("a", 0, dev("1.0"), nil)}, later, Wait, ""},
		{"under way waits", nil, []Member{m("a", 0, dev("1.0"), rep(fleetapi.UpdateInstalling))}, later, Wait, ""},
		{"done canary advances", nil, []Member{m("a", 0, dev("2.0"), rep(fleetapi.UpdateCommitted)), m("b", 1, dev("1.0"), nil)},
			later, Advance, "ring canary done (1 updated, 0 failed, 0 skipped, 0 offline); ring early opens"},
		{"before the soak ends", nil, []Member{m("a", 0, dev("2.0"), nil)}, t0.Add(59 * time.Minute), Wait, ""},
		{"soak ends exactly", nil, []Member{m("a", 0, dev("2.0"), nil)}, t0.Add(60 * time.Minute), Advance, ""},
		{"empty ring advances after soak", nil, nil, later, Advance, ""},
		{"later rings do not hold back", nil, []Member{m("a", 0, dev("2.0"), nil), m("b", 2, dev("1.0"), nil)}, later, Advance, ""},
		{"offline within grace holds back", nil, []Member{{DeviceID: "a", Ring: 0, LastSeen: later.Add(-23 * time.Hour), Device: dev("1.0")}},
			later, Wait, ""},
		{"offline past grace does not", nil, []Member{{DeviceID: "a", Ring: 0, LastSeen: later.Add(-25 * time.Hour), Device: dev("1.0")}},
			later, Advance, "0 updated, 0 failed, 0 skipped, 1 offline"},
		{"never seen does not", nil, []Member{{DeviceID: "a", Ring: 0}}, later, Advance, "1 offline"},
		{"other hardware skipped", nil, []Member{m("a", 0, &fleetapi.UpdateStatus{Hardware: "hw2", Running: "1.0"}, nil)}, later, Advance, "1 skipped"},
		{"no update support skipped", nil, []Member{m("a", 0, nil, nil)}, later, Advance, "1 skipped"},
		{"one of four failed: at threshold", nil, []Member{
			m("a", 0, dev("1.0"), rep(fleetapi.UpdateFailed)), m("b", 0, dev("2.0"), nil), m("c", 0, dev("2.0"), nil), m("d", 0, dev("2.0"), nil)},
			later, Advance, "3 updated, 1 failed"},
		{"two of four failed: above", nil, []Member{
			m("a", 0, dev("1.0"), rep(fleetapi.UpdateFailed)), m("b", 0, dev("1.0"), rep(fleetapi.UpdateRolledBack)),
			m("c", 0, dev("2.0"), nil), m("d", 0, dev("1.0"), nil)},
			later, Halt, "ring canary: 2 of 4 devices failed (threshold 25%)"},
		{"halt does not wait for the soak", nil, []Member{m("a", 0, dev("1.0"), rep(fleetapi.UpdateFailed))}, t0, Halt, "ring canary: 1 of 1 devices failed"},
		{"failures accepted at resume", func(v *View) { v.AcceptedFailures = 1 }, []Member{m("a", 0, dev("1.0"), rep(fleetapi.UpdateFailed))},
			later, Advance, "1 failed"},
		{"a further failure halts again", func(v *View) { v.AcceptedFailures = 1 }, []Member{
			m("a", 0, dev("1.0"), rep(fleetapi.UpdateFailed)), m("b", 0, dev("1.0"), rep(fleetapi.UpdateFailed))}, later, Halt, "2 of 2"},
		{"threshold zero: any failure", func(v *View) { v.FailureThreshold = 0; v.Ring = 1 }, []Member{
			m("a", 0, dev("2.0"), nil), m("b", 1, dev("2.0"), nil), m("c", 1, dev("1.0"), rep(fleetapi.UpdateRolledBack))}, later, Halt,
			"ring early: 1 of 2 devices failed (threshold 0%)"},
		{"threshold 100: never", func(v *View) { v.FailureThreshold = 100 }, []Member{m("a", 0, dev("1.0"), rep(fleetapi.UpdateFailed))}, later, Advance, ""},
		{"earlier ring's late failure halts", func(v *View) { v.Ring = 1 }, []Member{
			m("a", 0, dev("1.0"), rep(fleetapi.UpdateFailed)), m("b", 1, dev("2.0"), nil)}, later, Halt, "ring canary: 1 of 1"},
		{"last ring completes", func(v *View) { v.Ring = 2 }, []Member{
			m("a", 0, dev("2.0"), nil), m("b", 1, dev("2.0"), nil), m("c", 2, dev("2.0"), rep(fleetapi.UpdateCommitted))}, later, Complete,
			"all rings done: 3 updated, 0 failed, 0 skipped, 0 offline"},
		{"paused waits", func(v *View) { v.State = StatePaused }, []Member{m("a", 0, dev("2.0"), nil)}, later, Wait, ""},
		{"halted waits", func(v *View) { v.State = StateHalted }, []Member{m("a", 0, dev("1.0"), rep(fleetapi.UpdateFailed))}, later, Wait, ""},
	} {
		vv := v
		if c.view != nil {
			c.view(&vv)
		}
		d := Evaluate(vv, rel, c.members, c.now, grace)
		if d.Action != c.want || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("%s: %v %q, want %v %q", c.name, d.Action, d.Reason, c.want, c.reason)
		}
	}
}

// publish makes a TUF repository in dir with the given images.
func publish(t *testing.T, dir string, keys *release.Keys, repo *release.Repo, name, version string, built time.Time, size int) *release.Repo {
	t.Helper()
	var err error
	if repo == nil {
		if repo, err = release.Init(dir, keys, release.DefaultExpiry(), built); err != nil {
			t.Fatal(err)
		}
	}
	meta := release.ImageMeta{Hardware: []string{"hw1"}, Version: version, SecurityVersion: 1, BuildTime: built,
		Partitions: map[string]release.PartitionMeta{"rootfs": {Size: int64(size), SHA256: hex.EncodeToString(make([]byte, 32))}}}
	if err := repo.AddImage(name, bytes.NewReader(make([]byte, size)), meta, built); err != nil {
		t.Fatal(err)
	}
	return repo
}

func TestRepoCatalog(t *testing.T) {
	ctx := context.Background()
	keys, err := release.GenerateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := NewRepoCatalog(dir).Releases(ctx); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("missing repository: %v", err)
	}
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	repo := publish(t, dir, keys, nil, "atrium-1.0", "1.0", t0, 1000)
	cat := NewRepoCatalog(dir)
	rels, err := cat.Releases(ctx)
	if err != nil || len(rels) != 1 {
		t.Fatalf("releases %+v, %v", rels, err)
	}
	r := rels[0]
	if r.Target != "atrium-1.0" || r.Version != "1.0" || r.SecurityVersion != 1 || !r.RunsOn("hw1") || r.RunsOn("hw2") ||
		r.Length != 1000 || !r.BuildTime.Equal(t0) {
		t.Fatalf("release %+v", r)
	}
	// Published while fleetd runs: seen on the next call, newest first.
	publish(t, dir, keys, repo, "atrium-1.1", "1.1", t0.Add(time.Hour), 2000)
	rels, err = cat.Releases(ctx)
	if err != nil || len(rels) != 2 || rels[0].Target != "atrium-1.1" || rels[0].Length != 2000 || rels[1].Target != "atrium-1.0" {
		t.Fatalf("after publishing: %+v, %v", rels, err)
	}
	// The caller's copy is its own.
	rels[0].Hardware[0] = "changed"
	if again, _ := cat.Releases(ctx); again[0].Hardware[0] != "hw1" || again[0].Target != "atrium-1.1" {
		t.Fatalf("catalog changed through a returned slice: %+v", again[0])
	}
	got, err := Find(ctx, cat, "atrium-1.0")
	if err != nil || got.Version != "1.0" {
		t.Fatalf("find: %+v, %v", got, err)
	}
	if _, err := Find(ctx, cat, "nope"); !errors.Is(err, ErrNoRelease) {
		t.Fatalf("find unknown: %v", err)
	}
}

func knownBucket(t *testing.T, s string) int {
	t.Helper()
	// Written out independently of Bucket: SHA-256 via the standard
	// library, the first 8 bytes as a big-endian number.
	sum := sha256Sum(s)
	var n uint64
	for _, b := range sum[:8] {
		n = n<<8 | uint64(b)
	}
	return int(n % 100)
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }
