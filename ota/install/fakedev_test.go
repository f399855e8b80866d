package install

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
)

// sector is the fake's unit of tearing, the same as ResumeAlign.
const sector = 4096

// fakeDevice models a disk with a volatile write cache: writes land in the
// cache and reach the medium only at Sync. Crash drops the cache, except
// that a random subset of dirty sectors may already have reached the medium
// and the last written sector is torn (new bytes up to a random point, then
// garbage) — what a power cut does to a disk mid-write.
type fakeDevice struct {
	mu    sync.Mutex
	disk  []byte
	cache map[int64][]byte // sector index → its content as the OS sees it
	last  int64            // sector of the last write, -1 after Sync
	rng   *rand.Rand

	// Fault hooks, all optional.
	failSync   func(n int) error            // called with the 1-based Sync count
	failWrite  func(off int64, n int) error // before a write is applied
	afterWrite func(end int64)              // after a write, with its end offset
	// lie makes Sync report success and drop the cache: a device that
	// acknowledges writes it never keeps.
	lie bool
	// tearAll makes Crash destroy every sector written since the last
	// Sync entirely: the worst case.
	tearAll bool
	syncs   int
	writes  int
}

func newFakeDevice(size int64, seed uint64) *fakeDevice {
	return &fakeDevice{disk: make([]byte, size), cache: map[int64][]byte{}, last: -1, rng: rand.New(rand.NewPCG(seed, 7))}
}

func (d *fakeDevice) Size() (int64, error) { return int64(len(d.disk)), nil }

func (d *fakeDevice) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	if d.failWrite != nil {
		if err := d.failWrite(off, len(p)); err != nil {
			d.mu.Unlock()
			return 0, err
		}
	}
	if off < 0 || off+int64(len(p)) > int64(len(d.disk)) {
		d.mu.Unlock()
		return 0, fmt.Errorf("fake device: write [%d,%d) outside %d bytes", off, off+int64(len(p)), len(d.disk))
	}
	d.writes++
	for done := 0; done < len(p); {
		pos := off + int64(done)
		s := pos / sector
		buf := d.sectorLocked(s)
		n := copy(buf[pos-s*sector:], p[done:])
		done += n
		d.last = s
	}
	hook := d.afterWrite
	d.mu.Unlock()
	if hook != nil {
		hook(off + int64(len(p)))
	}
	return len(p), nil
}

// sectorLocked returns the cached copy of sector s, creating it from disk.
func (d *fakeDevice) sectorLocked(s int64) []byte {
	if b, ok := d.cache[s]; ok {
		return b
	}
	b := make([]byte, sector)
	copy(b, d.disk[s*sector:])
	d.cache[s] = b
	return b
}

func (d *fakeDevice) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(d.disk)) {
		return 0, fmt.Errorf("fake device: read [%d,%d) outside %d bytes", off, off+int64(len(p)), len(d.disk))
	}
	for done := 0; done < len(p); {
		pos := off + int64(done)
		s := pos / sector
		src := d.disk[s*sector : (s+1)*sector]
		if b, ok := d.cache[s]; ok {
			src = b
		}
		done += copy(p[done:], src[pos-s*sector:])
	}
	return len(p), nil
}

func (d *fakeDevice) Sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.syncs++
	if d.failSync != nil {
		if err := d.failSync(d.syncs); err != nil {
			return err
		}
	}
	if !d.lie {
		for s, b := range d.cache {
			copy(d.disk[s*sector:], b)
		}
	}
	clear(d.cache)
	d.last = -1
	return nil
}

// Crash is a power cut: each sector written since the last Sync is lost,
// reached the medium, or is torn (new bytes up to a random point, then
// garbage) — a volatile cache keeps no order. The last written sector is
// always torn. Sectors not written since the last Sync are never touched.
func (d *fakeDevice) Crash() {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Sorted, so that a seed gives the same crash every time.
	for _, s := range slices.Sorted(maps.Keys(d.cache)) {
		b := d.cache[s]
		fate := d.rng.IntN(3)
		if s == d.last || d.tearAll {
			fate = 2
		}
		switch fate {
		case 1:
			copy(d.disk[s*sector:], b)
		case 2:
			torn := d.disk[s*sector : (s+1)*sector]
			cut := d.rng.IntN(sector)
			if d.tearAll {
				cut = 0
			}
			copy(torn[:cut], b[:cut])
			for i := cut; i < sector; i++ {
				torn[i] = byte(d.rng.Uint32())
			}
		}
	}
	clear(d.cache)
	d.last = -1
}

// durable is what the medium holds (what survives a power cut).
func (d *fakeDevice) durable(n int64) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]byte(nil), d.disk[:n]...)
}

// corrupt flips a byte on the medium, as a failing flash would.
func (d *fakeDevice) corrupt(off int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.disk[off] ^= 0xff
}
