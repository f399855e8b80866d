package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/atriumroom/atrium/ota/bootctl"
	"github.com/atriumroom/atrium/ota/delta"
)

// withDelta puts a base release in slot a (the image with a few bytes
// changed), serves the real delta from it to the rig's image, and offers
// the target with that delta.
func withDelta(t *testing.T, r *rig) {
	t.Helper()
	base := bytes.Clone(r.image)
	copy(base[300<<10:], "what release 1.0.0 had here")
	var d bytes.Buffer
	if _, err := delta.Make(bytes.NewReader(base), int64(len(base)), bytes.NewReader(r.image), &d, delta.Options{}); err != nil {
		t.Fatal(err)
	}
	copy(r.devs[bootctl.SlotA].data, base)
	r.reqs.setDelta(d.Bytes())
	r.target.Delta = &Delta{
		Name: r.target.Name + ".delta-0011223344556677", BaseVersion: "1.0.0",
		Length: int64(d.Len()), SHA256: sha256.Sum256(d.Bytes()), URL: strings.TrimSuffix(r.url, "/atrium.img") + "/atrium.delta",
	}
	r.openBase = func(_ context.Context, s bootctl.Slot) (io.ReaderAt, io.Closer, error) {
		return r.devs[s], io.NopCloser(nil), nil
	}
}

func TestDeltaInstalled(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	withDelta(t, r)
	base := r.devs[bootctl.SlotA].bytes()
	e := r.mustOpen()
	e, _ = drive(t, ctx, r, e, true)
	if rec := e.Record(); rec.State != StateCommitted || rec.Attempts != 0 {
		t.Fatalf("after the update: %s, %d attempts", rec.State, rec.Attempts)
	}
	if !bytes.Equal(r.devs[bootctl.SlotB].bytes()[:len(r.image)], r.image) {
		t.Fatal("slot b does not hold the image")
	}
	if !bytes.Equal(r.devs[bootctl.SlotA].bytes(), base) {
		t.Fatal("the running slot changed")
	}
	if n, img := r.reqs.deltas(), r.reqs.get(); n != 1 || len(img) != 0 {
		t.Fatalf("the delta was fetched %d times and the image %d times; want 1 and 0", n, len(img))
	}
	if _, err := os.Stat(r.statePath() + ".delta"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the delta file is left behind: %v", err)
	}
}

// A delta for another base than the running slot holds is dropped for
// the whole image, in the same step and without counting an attempt.
func TestDeltaForAnotherBaseFallsBackToImage(t *testing.T) {
	ctx := t.Context()
	r := newRig(t)
	withDelta(t, r)
	r.devs[bootctl.SlotA].data[7] ^= 1
	e := r.mustOpen()
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, e, StateDownloading)
	step(t, ctx, e, StateInstalling)
	rec := e.Record()
	if rec.Attempts != 0 || rec.Target.Delta != nil || rec.Written != rec.Target.Length {
		t.Fatalf("after the fallback: %d attempts, delta %+v, written %d", rec.Attempts, rec.Target.Delta, rec.Written)
	}
	if !bytes.Equal(r.devs[bootctl.SlotB].bytes()[:len(r.image)], r.image) {
		t.Fatal("slot b does not hold the image")
	}
	if rs := r.reqs.get(); len(rs) != 1 || rs[0] != "" {
		t.Fatalf("image requests %q, want one whole download", rs)
	}
	// The fleet offering the same target again, with its delta, changes
	// nothing.
	if err := e.Offer(ctx, r.target); err != nil {
		t.Fatal(err)
	}
	if e.Record().Target.Delta != nil {
		t.Fatal("a repeated offer brought back the unusable delta")
	}
}

// A power cut at any persisted write of an update from a delta ends with
// the image committed, fetched from the delta, never in full.
func TestDeltaCrashPointSweep(t *testing.T) {
	clean := &crashWriter{}
	r := newRig(t)
	withDelta(t, r)
	r.cw = clean
	drive(t, t.Context(), r, r.mustOpen(), true)
	total := clean.n
	for k := 1; k <= total; k++ {
		for _, after := range []bool{false, true} {
			r := newRig(t)
			withDelta(t, r)
			r.cw = &crashWriter{k: k, after: after}
			e, cuts := drive(t, t.Context(), r, r.mustOpen(), true)
			if cuts != 1 {
				t.Fatalf("k=%d after=%v: %d crashes, want 1", k, after, cuts)
			}
			if rec := e.Record(); rec.State != StateCommitted {
				t.Fatalf("k=%d after=%v: %s", k, after, rec.State)
			}
			if !bytes.Equal(r.devs[bootctl.SlotB].bytes()[:len(r.image)], r.image) {
				t.Fatalf("k=%d after=%v: slot b content wrong", k, after)
			}
			if img := r.reqs.get(); len(img) != 0 {
				t.Fatalf("k=%d after=%v: the image was fetched (%q)", k, after, img)
			}
		}
	}
}
