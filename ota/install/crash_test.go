package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

var errKilled = errors.New("process killed")

// fault is one way a run dies. Once it fires, the "process" is dead: the
// device refuses every later write and sync (a dead process syncs nothing)
// and the run's context is cancelled.
type fault struct {
	afterBytes int64 // kill once a write ends at or past this offset (0: unused)
	atSync     int   // kill at this Sync of the run, before it flushes (0: unused)
	cutAt      int64 // the server cuts the connection after this many bytes (0: unused)
	ignoreRng  bool  // the server ignores Range in this run
}

func (f fault) String() string {
	switch {
	case f.afterBytes > 0:
		return fmt.Sprintf("kill after byte %d", f.afterBytes)
	case f.atSync > 0:
		return fmt.Sprintf("kill at sync %d", f.atSync)
	case f.cutAt > 0:
		return fmt.Sprintf("connection cut after %d bytes", f.cutAt)
	}
	return "clean run"
}

// TestCrashPointSweep kills the install at many points — every MiB (off
// sector boundaries), at every sync, after an unaligned connection cut —
// then cuts the power (the fake drops, keeps or tears every unsynced
// sector) and resumes from the last persisted Progress. Every scenario must
// end with the exact image durable on the device, no run may return nil
// unless it is, and no resume may find the durable prefix damaged (which
// would force a full re-download).
func TestCrashPointSweep(t *testing.T) {
	size := 16 * MiB
	if testing.Short() {
		size = 4 * MiB
	}
	img, _ := testImage(t, size, "")
	var cut atomic.Int64
	var ignore atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ignore.Load() {
			r.Header.Del("Range")
		}
		if c := cut.Load(); c > 0 {
			cutHandler(img, &cut)(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(img))
	}))
	t.Cleanup(srv.Close)
	_, tgt := testImage(t, size, srv.URL)

	var scenarios [][]fault
	for k := int64(0); k < int64(size); k += MiB {
		first := fault{afterBytes: k + 777}
		s := []fault{first}
		if k/MiB%2 == 1 && k+MiB+MiB/2 < int64(size) {
			s = append(s, fault{afterBytes: k + MiB + MiB/2}) // killed again while resuming
		}
		if k/MiB%4 == 3 {
			s = append(s, fault{ignoreRng: true}) // the resume meets a server ignoring Range
		}
		scenarios = append(scenarios, s)
		// An unaligned durable offset, then a kill before the next sync:
		// the torn sectors include the one holding the last synced bytes.
		scenarios = append(scenarios, []fault{{cutAt: k + 777}, {afterBytes: k + 777 + 100<<10}})
	}
	for n := 1; n <= size/MiB; n++ {
		scenarios = append(scenarios, []fault{{atSync: n}})
	}

	in := New(Options{Client: srv.Client(), SyncEvery: MiB, StallTimeout: 5 * time.Second})
	for i, sc := range scenarios {
		t.Run(fmt.Sprintf("%d %v", i, sc), func(t *testing.T) {
			dev := newFakeDevice(int64(size), uint64(i))
			// After an unaligned cut, destroy every unsynced sector
			// whole, the one holding the last synced bytes included.
			dev.tearAll = sc[0].cutAt > 0
			st := &store{}
			runs := append(sc, fault{}) // always end with a clean run
			for j, f := range runs {
				err := runWithFault(t, in, dev, tgt, st, f, &cut, &ignore)
				if errors.Is(err, ErrHashMismatch) {
					t.Fatalf("run %d (%v): durable prefix damaged: %v", j, f, err)
				}
				if err == nil {
					if j == 0 {
						t.Fatalf("run 0 (%v): the fault never fired", f)
					}
					dev.Crash() // a power cut right after success changes nothing
					if !bytes.Equal(dev.durable(tgt.Length), img) {
						t.Fatalf("run %d (%v) returned nil but the device does not hold the image", j, f)
					}
					return
				}
				if j == len(runs)-1 {
					t.Fatalf("final clean run: %v", err)
				}
				t.Logf("run %d (%v): %v; progress %d", j, f, err, st.get().Written)
				dev.Crash()
			}
		})
	}
}

// runWithFault runs one Install from the persisted progress with fault f.
func runWithFault(t *testing.T, in *Installer, dev *fakeDevice, tgt Target, st *store, f fault, cut *atomic.Int64, ignore *atomic.Bool) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var dead atomic.Bool
	cut.Store(f.cutAt)
	ignore.Store(f.ignoreRng)
	defer cut.Store(0)
	defer ignore.Store(false)
	syncs := 0
	dev.failWrite = func(int64, int) error {
		if dead.Load() {
			return errKilled
		}
		return nil
	}
	dev.afterWrite = func(end int64) {
		if f.afterBytes > 0 && end >= f.afterBytes {
			dead.Store(true)
			cancel()
		}
	}
	dev.failSync = func(int) error {
		syncs++
		if f.atSync > 0 && syncs == f.atSync {
			dead.Store(true)
			cancel()
		}
		if dead.Load() {
			return errKilled
		}
		return nil
	}
	// A dead process persists nothing either.
	persist := func(p Progress) error {
		if dead.Load() {
			return errKilled
		}
		return st.persist(p)
	}
	defer func() { dev.failWrite, dev.afterWrite, dev.failSync = nil, nil, nil }()
	return in.Install(ctx, dev, tgt, st.get(), persist)
}
