// Package install writes an update image into the inactive A/B slot.
//
// The image is streamed from HTTP straight onto the slot's block device —
// never staged in /tmp, never held whole in memory — and hashed while it is
// written. The device is synced every SyncEvery bytes; only after a sync
// succeeds is the synced offset handed to the caller to persist, so a
// persisted Progress never claims a byte the device could still lose. After
// a power cut or a dropped connection, Install is called again with the last
// persisted Progress: it re-hashes what is already on the device (what is on
// the device is what counts, not what was once sent), then asks the server
// for the rest with an HTTP Range request. At the end the device is synced
// and the whole image read back and hashed again.
//
// Only a nil error from Install means the slot holds exactly the image the
// target vouched for; a Progress at the full length does not. Whether the
// target is genuine (TUF) is decided before Install is called.
//
// InstallDelta writes the same slot from a delta (package ota/delta)
// against the running slot instead: the delta is downloaded whole, checked
// against its TUF hash, then applied, with the same syncs, progress reports
// and read-back.
package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Device is the inactive slot's block device (or a partition image file).
// A small seam so that tests can use a device that loses unsynced writes.
type Device interface {
	io.WriterAt
	io.ReaderAt
	// Sync makes every write so far durable. For the read-back verify to
	// mean anything, reads after Sync should come from the medium, not a
	// cache (see package blockdev).
	Sync() error
	// Size is the device's capacity in bytes.
	Size() (int64, error)
}

// Target is the image to install, as TUF vouched for it.
type Target struct {
	URL    string
	Length int64
	SHA256 [32]byte
}

// Progress is how far an install got durably. The caller persists it
// (a small state file) every time Install reports it and passes the last
// one back to resume.
type Progress struct {
	// SHA256 names the target the bytes belong to: progress recorded for
	// another target is ignored and the install starts over.
	SHA256 [32]byte
	// Written is the number of bytes from the image's start known to be
	// synced to the device.
	Written int64
}

// Defaults for the zero values of Options.
const (
	DefaultSyncEvery    = 4 << 20
	DefaultStallTimeout = 60 * time.Second
)

// ResumeAlign is the granularity a resume starts at: Written rounded down
// to it. A power cut can tear the sector being written, and that sector may
// also hold the last synced bytes when a sync fell mid-sector; re-fetching
// from the sector's start rewrites them. 4 KiB covers 512-byte and 4Kn
// sectors.
const ResumeAlign = 4096

// chunk is how much of the body is read, hashed and written at once.
const chunk = 256 << 10

// Options configure an Installer. Zero values take the defaults.
type Options struct {
	// Client fetches the image. It should have no overall Timeout (an
	// image takes long); StallTimeout guards against a server that stops.
	Client *http.Client
	Logger *slog.Logger
	// SyncEvery is how many bytes are written between syncs (and so the
	// most a power cut can cost).
	SyncEvery int64
	// StallTimeout is how long the download may go without receiving a
	// byte, waiting for headers included, before it fails with ErrStalled.
	StallTimeout time.Duration
}

// Installer streams images into slots. It holds no state between calls and
// is safe for concurrent use on different devices.
type Installer struct {
	client    *http.Client
	log       *slog.Logger
	syncEvery int64
	stall     time.Duration
}

// New returns an Installer with opts, defaults filled in.
func New(opts Options) *Installer {
	in := &Installer{client: opts.Client, log: opts.Logger, syncEvery: opts.SyncEvery, stall: opts.StallTimeout}
	if in.client == nil {
		in.client = &http.Client{}
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.syncEvery <= 0 {
		in.syncEvery = DefaultSyncEvery
	}
	if in.stall <= 0 {
		in.stall = DefaultStallTimeout
	}
	return in
}

// Install writes t onto dev, resuming from the durable progress from, and
// calls persist with the new progress after every successful sync (and
// with Written 0 whenever it starts over). An error from persist stops the
// install. Install returns nil only after the whole image has been synced
// and read back from dev with the target's hash.
//
// Errors: ErrInvalidTarget and ErrTooLarge before anything is written;
// ErrTooLong and ErrBadResponse for a misbehaving server; ErrTruncated,
// ErrStalled, network and context errors after syncing and reporting what
// arrived (call again to resume); a *HashMismatchError, after resetting the
// progress to 0; device errors (for example ENOSPC) wrapped with the
// operation and offset.
func (in *Installer) Install(ctx context.Context, dev Device, t Target, from Progress, persist func(Progress) error) error {
	if t.URL == "" || t.Length <= 0 {
		return fmt.Errorf("install %q (length %d): %w", t.URL, t.Length, ErrInvalidTarget)
	}
	size, err := dev.Size()
	if err != nil {
		return fmt.Errorf("install %s: slot size: %w", t.URL, err)
	}
	if t.Length > size {
		return fmt.Errorf("install %s: image is %d bytes, slot is %d: %w", t.URL, t.Length, size, ErrTooLarge)
	}
	r := &run{
		in: in, dev: dev, t: t, persist: persist,
		h: sha256.New(), buf: make([]byte, chunk),
		log: in.log.With("url", t.URL, "sha256", hex.EncodeToString(t.SHA256[:8])),
	}
	return r.install(ctx, r.resumePoint(from))
}

type run struct {
	in      *Installer
	dev     Device
	t       Target
	persist func(Progress) error
	log     *slog.Logger
	h       hash.Hash
	buf     []byte
	off     int64 // bytes of the image written (and hashed) so far
	synced  int64 // bytes known durable
	wrote   bool  // whether this run wrote anything
}

// resumePoint is where this run starts: a persisted offset for this target,
// rounded down to ResumeAlign, or 0.
func (r *run) resumePoint(from Progress) int64 {
	switch {
	case from.Written == 0:
		return 0
	case from.SHA256 != r.t.SHA256:
		r.log.Info("install: progress belongs to another image; starting over", "written", from.Written)
		return 0
	case from.Written < 0 || from.Written > r.t.Length:
		r.log.Warn("install: persisted progress out of range; starting over", "written", from.Written, "length", r.t.Length)
		return 0
	case from.Written == r.t.Length:
		// Complete: nothing to fetch, only to verify.
		return from.Written
	}
	return from.Written - from.Written%ResumeAlign
}

func (r *run) install(ctx context.Context, start int64) error {
	began := time.Now()
	if start > 0 {
		// Re-hash what is on the device: the hash covers the image as
		// stored, not as it was once received.
		if err := r.hashDevice(ctx, r.h, start); err != nil {
			return fmt.Errorf("install %s: re-read first %d bytes to resume: %w", r.t.URL, start, err)
		}
		r.off, r.synced = start, start
		r.log.Info("install: resuming", "offset", start, "length", r.t.Length)
	}
	if r.off < r.t.Length {
		if err := r.download(ctx); err != nil {
			return fmt.Errorf("install %s: %w", r.t.URL, err)
		}
	}
	var got [32]byte
	r.h.Sum(got[:0])
	if got != r.t.SHA256 {
		return r.mismatch("download", got)
	}
	if err := r.finish(ctx); err != nil {
		return err
	}
	r.log.Info("install: image verified", "length", r.t.Length, "resumed_at", start, "duration", time.Since(began).Round(time.Millisecond))
	return nil
}

// finish makes the written image durable and, when this run wrote any of
// it, reads the whole image back: a device that acknowledged writes it
// did not keep fails here, not at boot.
func (r *run) finish(ctx context.Context) error {
	if err := r.checkpoint(); err != nil {
		return fmt.Errorf("install %s: %w", r.t.URL, err)
	}
	if !r.wrote {
		return nil
	}
	h := sha256.New()
	if err := r.hashDevice(ctx, h, r.t.Length); err != nil {
		return fmt.Errorf("install %s: read back: %w", r.t.URL, err)
	}
	var got [32]byte
	h.Sum(got[:0])
	if got != r.t.SHA256 {
		return r.mismatch("read-back", got)
	}
	return nil
}

// mismatch resets the persisted progress (no byte on the device can be
// trusted any more) and returns the typed error.
func (r *run) mismatch(stage string, got [32]byte) error {
	err := error(&HashMismatchError{Stage: stage, Want: r.t.SHA256, Got: got})
	r.log.Warn("install: hash mismatch; progress reset", "stage", stage)
	if perr := r.persist(Progress{SHA256: r.t.SHA256}); perr != nil {
		err = errors.Join(err, fmt.Errorf("reset progress: %w", perr))
	}
	return fmt.Errorf("install %s: %w", r.t.URL, err)
}

// checkpoint syncs the device and, only once that succeeded, reports the
// synced offset.
func (r *run) checkpoint() error {
	if r.off == r.synced {
		return nil
	}
	if err := r.dev.Sync(); err != nil {
		return fmt.Errorf("sync slot at offset %d: %w", r.off, err)
	}
	r.synced = r.off
	r.log.Debug("install: synced", "offset", r.synced, "length", r.t.Length)
	if err := r.persist(Progress{SHA256: r.t.SHA256, Written: r.synced}); err != nil {
		return fmt.Errorf("persist progress %d: %w", r.synced, err)
	}
	return nil
}

// hashDevice feeds the device's bytes [0, n) to h.
func (r *run) hashDevice(ctx context.Context, h hash.Hash, n int64) error {
	for off := int64(0); off < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := r.buf[:min(int64(len(r.buf)), n-off)]
		k, err := r.dev.ReadAt(p, off)
		if k < len(p) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read slot at offset %d: %w", off+int64(k), err)
		}
		h.Write(p)
		off += int64(k)
	}
	return nil
}

// download fetches [r.off, Length) and writes it. On an interruption it
// checkpoints what arrived so the next call resumes there.
func (r *run) download(ctx context.Context) error {
	reqCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The watchdog cancels the request when no byte arrived for the stall
	// timeout; it is pushed back on every read that brings data.
	watchdog := time.AfterFunc(r.in.stall, func() { cancel(ErrStalled) })
	defer watchdog.Stop()

	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, r.t.URL, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if r.off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", r.off))
	}
	resp, err := r.in.client.Do(req)
	if err != nil {
		return r.interrupted(reqCtx, fmt.Errorf("GET: %w", err))
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusPartialContent && r.off > 0:
		if err := checkContentRange(resp.Header.Get("Content-Range"), r.off, r.t.Length); err != nil {
			return fmt.Errorf("GET from offset %d: %w", r.off, err)
		}
	case resp.StatusCode == http.StatusOK:
		if r.off > 0 {
			// The server ignored Range and sends the whole image:
			// start over, and say so before overwriting anything, since
			// a power cut now may tear bytes the old progress vouched for.
			r.log.Info("install: server ignored Range; starting over", "offset", r.off)
			if err := r.persist(Progress{SHA256: r.t.SHA256}); err != nil {
				return fmt.Errorf("reset progress: %w", err)
			}
			r.h.Reset()
			r.off, r.synced = 0, 0
		}
	default:
		return fmt.Errorf("GET from offset %d: status %q: %w", r.off, resp.Status, ErrBadResponse)
	}
	if remaining := r.t.Length - r.off; resp.ContentLength > remaining {
		return fmt.Errorf("GET from offset %d: Content-Length %d, expected %d: %w", r.off, resp.ContentLength, remaining, ErrTooLong)
	}

	// Read at most one byte past the end: enough to notice endless data.
	body := io.LimitReader(&stallReader{r: resp.Body, watchdog: watchdog, d: r.in.stall}, r.t.Length-r.off+1)
	for {
		n, rerr := io.ReadFull(body, r.buf)
		if n > 0 {
			if r.off+int64(n) > r.t.Length {
				return fmt.Errorf("body goes past %d bytes: %w", r.t.Length, ErrTooLong)
			}
			r.h.Write(r.buf[:n])
			if _, err := r.Write(r.buf[:n]); err != nil {
				return err
			}
		}
		switch {
		case rerr == nil:
			continue
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			if r.off < r.t.Length {
				return r.interrupted(reqCtx, fmt.Errorf("body ended at offset %d of %d: %w", r.off, r.t.Length, ErrTruncated))
			}
			return nil
		default:
			return r.interrupted(reqCtx, fmt.Errorf("read body at offset %d: %w", r.off, rerr))
		}
	}
}

// Write puts p at the current offset of the slot and checkpoints every
// SyncEvery bytes: the image arrives in order, from the network or from
// a delta.
func (r *run) Write(p []byte) (int, error) {
	if r.off+int64(len(p)) > r.t.Length {
		return 0, fmt.Errorf("image goes past %d bytes: %w", r.t.Length, ErrTooLong)
	}
	if _, err := r.dev.WriteAt(p, r.off); err != nil {
		return 0, fmt.Errorf("write slot at offset %d: %w", r.off, err)
	}
	r.wrote = true
	r.off += int64(len(p))
	if r.off-r.synced >= r.in.syncEvery {
		if err := r.checkpoint(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// interrupted names a stall as such and checkpoints what arrived before the
// interruption, so that the next call resumes after it.
func (r *run) interrupted(reqCtx context.Context, err error) error {
	if errors.Is(context.Cause(reqCtx), ErrStalled) {
		err = fmt.Errorf("no data for %v at offset %d: %w", r.in.stall, r.off, ErrStalled)
	}
	if cerr := r.checkpoint(); cerr != nil {
		return errors.Join(err, cerr)
	}
	return err
}

// checkContentRange accepts only "bytes off-(length-1)/length" (or a "*"
// total): anything else would put bytes at the wrong place.
func checkContentRange(v string, off, length int64) error {
	bad := fmt.Errorf("Content-Range %q, expected bytes %d-%d/%d: %w", v, off, length-1, length, ErrBadResponse)
	spec, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return bad
	}
	rng, total, ok := strings.Cut(spec, "/")
	if !ok || (total != "*" && total != strconv.FormatInt(length, 10)) {
		return bad
	}
	first, last, ok := strings.Cut(rng, "-")
	if !ok {
		return bad
	}
	f, err1 := strconv.ParseInt(first, 10, 64)
	l, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || f != off || l != length-1 {
		return bad
	}
	return nil
}

// stallReader pushes the watchdog back whenever data arrives.
type stallReader struct {
	r        io.Reader
	watchdog *time.Timer
	d        time.Duration
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.watchdog.Reset(s.d)
	}
	return n, err
}
