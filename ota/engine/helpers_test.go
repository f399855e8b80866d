package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/internal/atomicfile"
	"github.com/atriumroom/atrium/ota/bootctl"
	"github.com/atriumroom/atrium/ota/install"
)

// memDevice is a slot in memory; its writes are durable at once (tearing
// is package install's concern and tested there).
type memDevice struct {
	mu     sync.Mutex
	data   []byte
	opened int
}

func (d *memDevice) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(d.data)) {
		return 0, fmt.Errorf("mem device: write [%d,%d) outside %d", off, off+int64(len(p)), len(d.data))
	}
	return copy(d.data[off:], p), nil
}

func (d *memDevice) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(d.data)) {
		return 0, fmt.Errorf("mem device: read [%d,%d) outside %d", off, off+int64(len(p)), len(d.data))
	}
	return copy(p, d.data[off:]), nil
}

func (d *memDevice) Sync() error          { return nil }
func (d *memDevice) Size() (int64, error) { return int64(len(d.data)), nil }
func (d *memDevice) Close() error         { return nil }

func (d *memDevice) bytes() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.data)
}

var errCrash = errors.New("simulated power cut")

// crashWriter persists through atomicfile until its k-th write, where the
// "power fails" before (or after) the write lands; every later write of
// the dead process fails too.
type crashWriter struct {
	k, n  int
	after bool
	dead  bool
}

func (c *crashWriter) write(path string, data []byte, perm os.FileMode) error {
	if c.dead {
		return errCrash
	}
	c.n++
	if c.n == c.k {
		c.dead = true
		if c.after {
			if err := atomicfile.Write(path, data, perm); err != nil {
				return err
			}
		}
		return errCrash
	}
	return atomicfile.Write(path, data, perm)
}

// rig is one simulated device: a file-backed loader, a memory slot per
// slot name, a real installer and an image server.
type rig struct {
	t      *testing.T
	dir    string
	fc     *bootctl.FileControl
	devs   map[bootctl.Slot]*memDevice
	inst   *install.Installer
	image  []byte
	target Target
	now    func() time.Time
	tries  int
	url    string
	// cw, when set, persists for every engine opened: a power cut
	// kills the process, and the next open is a new, live process.
	cw *crashWriter
	// newBoots counts boots of slot b, the new one, in drive.
	newBoots int
	reqs     *reqLog
	// bootFiles is the engine's stager (nil: none).
	bootFiles BootFileStager
	// restartOnly makes drive treat a crash as a process restart
	// rather than a power cut (no reboot).
	restartOnly bool
	// openBase is the engine's base opener (nil: deltas unused).
	openBase BaseOpener
}

// reqLog records the Range header of every image request, and holds the
// delta served at /atrium.delta.
type reqLog struct {
	mu          sync.Mutex
	ranges      []string
	delta       []byte
	deltaServed int
}

func (l *reqLog) setDelta(d []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.delta = d
}

func (l *reqLog) deltas() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deltaServed
}

func (l *reqLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ranges)
}

var buildTime = time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC)

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	fc, err := bootctl.NewFileControl(filepath.Join(dir, "loader.json"), bootctl.SlotA, nil)
	if err != nil {
		t.Fatal(err)
	}
	rg := &reqLog{}
	rng := rand.New(rand.NewPCG(1, 2))
	image := make([]byte, 600<<10+123)
	for i := range image {
		image[i] = byte(rng.Uint32())
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rg.mu.Lock()
		if r.URL.Path == "/atrium.delta" {
			d := rg.delta
			rg.deltaServed++
			rg.mu.Unlock()
			http.ServeContent(w, r, "delta", buildTime, bytes.NewReader(d))
			return
		}
		rg.ranges = append(rg.ranges, r.Header.Get("Range"))
		rg.mu.Unlock()
		http.ServeContent(w, r, "image", buildTime, bytes.NewReader(image))
	}))
	t.Cleanup(srv.Close)
	cl := srv.Client()
	t.Cleanup(cl.CloseIdleConnections)
	r := &rig{
		t: t, dir: dir, fc: fc, image: image, reqs: rg,
		devs: map[bootctl.Slot]*memDevice{bootctl.SlotA: {data: make([]byte, 1<<20)}, bootctl.SlotB: {data: make([]byte, 1<<20)}},
		inst: install.New(install.Options{Client: cl, SyncEvery: 16 << 10}),
		now:  func() time.Time { return time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC) },
	}
	r.url = srv.URL + "/atrium.img"
	r.target = r.targetFor("2.0.0", 5)
	return r
}

func (r *rig) targetFor(version string, sv int) Target {
	return Target{
		Name: "atrium-" + version + ".img", Version: version, SecurityVersion: sv, BuildTime: buildTime,
		SHA256: sha256.Sum256(r.image), Length: int64(len(r.image)), URL: r.url,
	}
}

func (r *rig) statePath() string { return filepath.Join(r.dir, "update.json") }

func (r *rig) open(w func(string, []byte, os.FileMode) error) (*Engine, error) {
	e, err := New(Options{
		StatePath: r.statePath(), Boot: r.fc, Installer: r.inst, Now: r.now, Tries: r.tries,
		BootFiles: r.bootFiles, OpenBase: r.openBase,
		OpenSlot: func(_ context.Context, s bootctl.Slot) (SlotDevice, error) {
			d := r.devs[s]
			d.mu.Lock()
			d.opened++
			d.mu.Unlock()
			return d, nil
		},
	})
	if e != nil && w != nil {
		e.write = w
	}
	if e != nil && w == nil && r.cw != nil {
		r.cw.dead = false
		e.write = r.cw.write
	}
	return e, err
}

func (r *rig) mustOpen() *Engine {
	r.t.Helper()
	e, err := r.open(nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return e
}

// boot simulates a reboot: the loader picks a slot, then the engine
// starts and reconciles.
func (r *rig) boot(ctx context.Context) *Engine {
	r.t.Helper()
	if _, err := r.fc.Boot(ctx); err != nil {
		r.t.Fatal(err)
	}
	e := r.mustOpen()
	if _, err := e.AfterBoot(ctx); err != nil {
		r.t.Fatal(err)
	}
	return e
}

func (r *rig) status(ctx context.Context) bootctl.Status {
	r.t.Helper()
	st, err := r.fc.Status(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}
