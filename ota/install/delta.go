package install

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/atriumroom/atrium/ota/delta"
)

// ErrDeltaUnusable means a delta cannot produce the target on this
// device: its bytes are not the ones TUF listed, it was made for another
// base than the running slot holds, or it is malformed. Downloading the
// full image is the way on; trying the delta again is not. Network and
// device errors do not wrap it.
var ErrDeltaUnusable = errors.New("delta unusable")

// Delta is a binary delta (package ota/delta) from the image in the
// running slot (the base) to the target, as TUF vouched for it.
type Delta struct {
	URL    string
	Length int64
	SHA256 [32]byte
	// Path is where the delta is kept between its download and its
	// application: a file on persistent storage, rewritten by every
	// attempt and removed at the end.
	Path string
}

// InstallDelta writes the target t onto dev by applying the delta d to
// base (the running slot), resuming from the durable progress from, and
// calls persist as Install does. The delta is downloaded whole to d.Path
// and checked against d's length and SHA-256 before a byte of it is
// applied: only what TUF listed is parsed. The slot is written in order,
// synced every SyncEvery bytes; a resumed run applies the delta from its
// start again but writes only from the persisted offset (rounded down to
// ResumeAlign). At the end the whole slot is read back, the bytes of
// earlier runs included.
//
// Only a nil error means the slot holds exactly the target. Errors
// wrapping ErrDeltaUnusable say the delta will never work here (fall
// back to Install): its bytes are not TUF's, it is malformed, or the slot
// read back is not the target, which is how a base with other content
// than the delta's shows. Others (the network, the device, ctx) may pass.
func (in *Installer) InstallDelta(ctx context.Context, dev Device, base io.ReaderAt, d Delta, t Target, from Progress, persist func(Progress) error) error {
	switch {
	case t.Length <= 0:
		return fmt.Errorf("install delta %q (target length %d): %w", d.URL, t.Length, ErrInvalidTarget)
	case d.URL == "" || d.Length <= 0 || d.Path == "":
		return fmt.Errorf("install delta %q (length %d, file %q): %w", d.URL, d.Length, d.Path, ErrInvalidTarget)
	}
	size, err := dev.Size()
	if err != nil {
		return fmt.Errorf("install delta %s: slot size: %w", d.URL, err)
	}
	if t.Length > size {
		return fmt.Errorf("install delta %s: image is %d bytes, slot is %d: %w", d.URL, t.Length, size, ErrTooLarge)
	}
	log := in.log.With("delta", d.URL, "sha256", hex.EncodeToString(t.SHA256[:8]))
	began := time.Now()
	// No running hash: the read-back at the end is the check.
	r := &run{in: in, dev: dev, t: t, persist: persist, buf: make([]byte, chunk), log: log}
	start := r.resumePoint(from)
	if start == 0 {
		// Progress of another image no longer describes the slot.
		if err := persist(Progress{SHA256: t.SHA256}); err != nil {
			return fmt.Errorf("install delta %s: reset progress: %w", d.URL, err)
		}
	}
	r.off, r.synced = start, start
	defer os.Remove(d.Path)
	if err := in.fetchDelta(ctx, d); err != nil {
		return fmt.Errorf("install delta %s: %w", d.URL, err)
	}
	log.Info("install: delta downloaded; applying it to the running slot", "length", d.Length, "image_length", t.Length, "resume_at", start)
	f, err := os.Open(d.Path)
	if err != nil {
		return fmt.Errorf("install delta %s: %w", d.URL, err)
	}
	defer f.Close()
	// Apply's own hash passes would repeat the read-back below, which
	// compares the slot with TUF's hash; a base other than the delta's
	// shows there.
	out := &skipWriter{skip: start, w: r}
	if err := delta.ApplyWith(ctx, base, bufio.NewReader(f), out, delta.ApplyOptions{VerifiedByCaller: true}); err != nil {
		if errors.Is(err, delta.ErrWrongBase) || errors.Is(err, delta.ErrCorrupt) || errors.Is(err, delta.ErrTargetMismatch) ||
			errors.Is(err, ErrTooLong) {
			err = fmt.Errorf("%w: %w", ErrDeltaUnusable, err)
			// What was written is a prefix of whatever a bad delta
			// made, not necessarily of the target.
			if perr := persist(Progress{SHA256: t.SHA256}); perr != nil {
				err = errors.Join(err, fmt.Errorf("reset progress: %w", perr))
			}
		}
		return fmt.Errorf("install delta %s: %w", d.URL, err)
	}
	if out.n != t.Length {
		// Apply checked the length its delta promised; TUF's is the one
		// that counts.
		return fmt.Errorf("install delta %s: it made %d bytes, the target has %d: %w", d.URL, out.n, t.Length, ErrDeltaUnusable)
	}
	// The read-back covers what earlier runs wrote too.
	r.wrote = true
	if err := r.finish(ctx); err != nil {
		if errors.Is(err, ErrHashMismatch) {
			err = fmt.Errorf("%w: %w", ErrDeltaUnusable, err)
		}
		return err
	}
	log.Info("install: image written from a delta and verified", "length", t.Length, "delta_length", d.Length, "duration", time.Since(began).Round(time.Millisecond))
	return nil
}

// fetchDelta downloads d to d.Path (mode 0600, synced) and checks its
// length and hash.
func (in *Installer) fetchDelta(ctx context.Context, d Delta) (err error) {
	reqCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(in.stall, func() { cancel(ErrStalled) })
	defer watchdog.Stop()
	defer func() {
		if err != nil && errors.Is(context.Cause(reqCtx), ErrStalled) {
			err = fmt.Errorf("no data for %v: %w (%w)", in.stall, ErrStalled, err)
		}
	}()

	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, d.URL, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET: status %q: %w", resp.Status, ErrBadResponse)
	}
	if resp.ContentLength > d.Length {
		return fmt.Errorf("GET: Content-Length %d, expected %d: %w: %w", resp.ContentLength, d.Length, ErrDeltaUnusable, ErrTooLong)
	}
	f, err := os.OpenFile(d.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	body := io.LimitReader(&stallReader{r: resp.Body, watchdog: watchdog, d: in.stall}, d.Length+1)
	n, err := io.Copy(io.MultiWriter(f, h), body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return fmt.Errorf("download to %s: %w", d.Path, err)
	case n > d.Length:
		return fmt.Errorf("delta goes past %d bytes: %w: %w", d.Length, ErrDeltaUnusable, ErrTooLong)
	case n < d.Length:
		return fmt.Errorf("delta ended at %d of %d bytes: %w", n, d.Length, ErrTruncated)
	}
	var got [32]byte
	h.Sum(got[:0])
	if got != d.SHA256 {
		return fmt.Errorf("delta: %w: %w", ErrDeltaUnusable, &HashMismatchError{Stage: "delta download", Want: d.SHA256, Got: got})
	}
	return nil
}

// skipWriter drops the first skip bytes written to it, which a resumed
// install already has on the slot, and counts everything.
type skipWriter struct {
	skip, n int64
	w       io.Writer
}

func (s *skipWriter) Write(p []byte) (int, error) {
	drop := min(int64(len(p)), max(s.skip-s.n, 0))
	s.n += drop
	if drop == int64(len(p)) {
		return len(p), nil
	}
	k, err := s.w.Write(p[drop:])
	s.n += int64(k)
	return int(drop) + k, err
}
