package install

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/atriumroom/atrium/ota/delta"
)

// deltaCase is a base image, a target that changes a little of it, the
// real delta between them, and a server for the delta.
type deltaCase struct {
	base, img []byte
	tgt       Target
	d         Delta
	srv       *imageServer
}

func newDeltaCase(t *testing.T) *deltaCase {
	t.Helper()
	base, _ := testImage(t, 3*MiB+123, "")
	img := bytes.Clone(base)
	copy(img[MiB:], "a changed file in the new release")
	img = append(img, bytes.Repeat([]byte("grown"), 1000)...)
	var patch bytes.Buffer
	if _, err := delta.Make(bytes.NewReader(base), int64(len(base)), bytes.NewReader(img), &patch, delta.Options{}); err != nil {
		t.Fatal(err)
	}
	c := &deltaCase{base: base, img: img, srv: newImageServer(t, patch.Bytes())}
	c.tgt = Target{URL: "http://unused.invalid/image", Length: int64(len(img)), SHA256: sha256.Sum256(img)}
	c.d = Delta{URL: c.srv.URL, Length: int64(patch.Len()), SHA256: sha256.Sum256(patch.Bytes()), Path: filepath.Join(t.TempDir(), "delta")}
	return c
}

func TestInstallDelta(t *testing.T) {
	c := newDeltaCase(t)
	if c.d.Length > int64(len(c.img))/10 {
		t.Fatalf("the delta is %d bytes for an image of %d: not a delta", c.d.Length, len(c.img))
	}
	dev := newFakeDevice(4*MiB, 1)
	// The slot held another image: its bytes must not survive.
	junk, _ := testImage(t, 4*MiB, "")
	if _, err := dev.WriteAt(junk, 0); err != nil {
		t.Fatal(err)
	}
	st := &store{check: durableCheck(dev, c.img), p: Progress{SHA256: sha256.Sum256([]byte("another image")), Written: 2 * MiB}}
	if err := newTestInstaller(c.srv.Client()).InstallDelta(t.Context(), dev, bytes.NewReader(c.base), c.d, c.tgt, st.get(), st.persist); err != nil {
		t.Fatalf("InstallDelta: %v", err)
	}
	if !bytes.Equal(dev.durable(c.tgt.Length), c.img) {
		t.Fatal("the slot does not hold the target after InstallDelta")
	}
	// Progress starts again at 0 (the slot is rewritten from its start)
	// and rises to the whole image.
	if h := st.history; len(h) < 3 || h[0] != 0 || h[len(h)-1] != c.tgt.Length {
		t.Errorf("progress reports %v, want 0 first and %d last", h, c.tgt.Length)
	}
	if _, err := os.Stat(c.d.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the delta file is left behind: %v", err)
	}
}

func TestInstallDeltaUnusable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(c *deltaCase)
		want  error
	}{
		{"another base", func(c *deltaCase) { c.base[5] ^= 1 }, ErrHashMismatch},
		{"a shorter base", func(c *deltaCase) { c.base = c.base[:len(c.base)-1] }, delta.ErrWrongBase},
		{"bytes TUF did not list", func(c *deltaCase) { c.d.SHA256[0] ^= 1 }, ErrHashMismatch},
		{"longer than listed", func(c *deltaCase) { c.d.Length-- }, ErrTooLong},
		{"produces another image", func(c *deltaCase) { c.tgt.Length-- }, ErrTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newDeltaCase(t)
			tc.setup(c)
			dev := newFakeDevice(4*MiB, 1)
			st := &store{}
			err := newTestInstaller(c.srv.Client()).InstallDelta(t.Context(), dev, bytes.NewReader(c.base), c.d, c.tgt, st.get(), st.persist)
			if !errors.Is(err, ErrDeltaUnusable) || !errors.Is(err, tc.want) {
				t.Fatalf("InstallDelta: %v, want ErrDeltaUnusable and %v", err, tc.want)
			}
			if p := st.get(); p.Written != 0 {
				t.Errorf("progress %d after a failed delta, want 0", p.Written)
			}
		})
	}
}

func TestInstallDeltaInterruptedIsNotUnusable(t *testing.T) {
	c := newDeltaCase(t)
	// The server cuts the delta short: the network's fault, not the delta's.
	short := newImageServer(t, c.srv.img[:len(c.srv.img)/2])
	whole := c.d.URL
	c.d.URL = short.URL
	dev := newFakeDevice(4*MiB, 1)
	st := &store{}
	in := newTestInstaller(c.srv.Client())
	err := in.InstallDelta(t.Context(), dev, bytes.NewReader(c.base), c.d, c.tgt, st.get(), st.persist)
	if !errors.Is(err, ErrTruncated) || errors.Is(err, ErrDeltaUnusable) {
		t.Fatalf("InstallDelta with a short body: %v, want ErrTruncated and not ErrDeltaUnusable", err)
	}
	// The next attempt starts over and succeeds.
	c.d.URL = whole
	if err := in.InstallDelta(t.Context(), dev, bytes.NewReader(c.base), c.d, c.tgt, st.get(), st.persist); err != nil {
		t.Fatalf("InstallDelta again: %v", err)
	}
	if !bytes.Equal(dev.durable(c.tgt.Length), c.img) {
		t.Fatal("the slot does not hold the target")
	}
}

// After an interruption the delta is applied again but the slot is
// written only from the persisted offset; the read-back covers it all.
func TestInstallDeltaResumes(t *testing.T) {
	c := newDeltaCase(t)
	dev := newFakeDevice(4*MiB, 1)
	in := newTestInstaller(c.srv.Client())
	stop := errors.New("power cut")
	st := &store{check: func(p Progress) error {
		if p.Written >= 2*MiB {
			return stop
		}
		return durableCheck(dev, c.img)(p)
	}}
	if err := in.InstallDelta(t.Context(), dev, bytes.NewReader(c.base), c.d, c.tgt, Progress{}, st.persist); !errors.Is(err, stop) {
		t.Fatalf("first InstallDelta: %v, want the simulated cut", err)
	}
	from := st.get()
	if from.Written != MiB {
		t.Fatalf("progress after the cut %d (reports %v), want %d", from.Written, st.history, MiB)
	}
	st = &store{check: durableCheck(dev, c.img)}
	if err := in.InstallDelta(t.Context(), dev, bytes.NewReader(c.base), c.d, c.tgt, from, st.persist); err != nil {
		t.Fatalf("resumed InstallDelta: %v", err)
	}
	if h := st.history; len(h) == 0 || h[0] <= from.Written {
		t.Fatalf("progress of the resumed run %v, want it to go on from %d", h, from.Written)
	}
	if !bytes.Equal(dev.durable(c.tgt.Length), c.img) {
		t.Fatal("the slot does not hold the target")
	}
	// A prefix that is not the target's is caught by the read-back.
	dev.corrupt(100)
	st = &store{}
	err := in.InstallDelta(t.Context(), dev, bytes.NewReader(c.base), c.d, c.tgt, Progress{SHA256: c.tgt.SHA256, Written: 2 * MiB}, st.persist)
	if !errors.Is(err, ErrHashMismatch) || !errors.Is(err, ErrDeltaUnusable) {
		t.Fatalf("resume over a corrupt prefix: %v, want a read-back mismatch", err)
	}
}
