package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/atriumroom/atrium/internal/atomicfile"
	"github.com/atriumroom/atrium/ota/bootctl"
	"github.com/atriumroom/atrium/ota/install"
)

// BootControl is what the engine needs from the boot loader;
// bootctl.Control (and so bootctl.FileControl) provides it.
type BootControl interface {
	Status(ctx context.Context) (bootctl.Status, error)
	TryNext(ctx context.Context, s bootctl.Slot, tries int) error
	Bless(ctx context.Context, s bootctl.Slot) error
	Reject(ctx context.Context, s bootctl.Slot) error
}

// Installer writes an image into a slot, from the image itself or from a
// delta against the running slot; *install.Installer provides it. Only a
// nil error means the slot holds exactly the target's image.
type Installer interface {
	Install(ctx context.Context, dev install.Device, t install.Target, from install.Progress, persist func(install.Progress) error) error
	InstallDelta(ctx context.Context, dev install.Device, base io.ReaderAt, d install.Delta, t install.Target, from install.Progress, persist func(install.Progress) error) error
}

// BootFileStager puts the kernel and initramfs of a written slot where
// the loader loads them for that slot; *bootfiles.Stager provides it.
type BootFileStager interface {
	Stage(ctx context.Context, s bootctl.Slot) error
}

// SlotDevice is an opened slot: the installer's device plus Close.
type SlotDevice interface {
	install.Device
	io.Closer
}

// SlotOpener opens the block device of slot for writing.
type SlotOpener func(ctx context.Context, slot bootctl.Slot) (SlotDevice, error)

// BaseOpener opens the block device of the running slot for reading, as
// the base a delta applies to.
type BaseOpener func(ctx context.Context, slot bootctl.Slot) (io.ReaderAt, io.Closer, error)

// Defaults for the zero values of Options.
const (
	DefaultTries       = 3
	DefaultMaxAttempts = 5
)

// Options configure an Engine. StatePath, Boot, Installer and OpenSlot are
// required.
type Options struct {
	StatePath string
	Boot      BootControl
	Installer Installer
	OpenSlot  SlotOpener
	// BootFiles, when set, stages the new slot's kernel and initramfs
	// before the loader is armed (systemd-boot loads them from the ESP);
	// nil where nothing is to be copied (file mode).
	BootFiles BootFileStager
	// OpenBase, when set, lets a target with a Delta be installed from
	// it: the delta is downloaded next to the state file (StatePath +
	// ".delta") and applied to the running slot. Without it, and
	// whenever a delta turns out unusable, the whole image is fetched.
	OpenBase BaseOpener
	Logger   *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Tries is how many boots the new slot gets before the loader falls
	// back (1..bootctl.MaxTries).
	Tries int
	// MaxAttempts is how many failed install attempts of one target end
	// in the failed state.
	MaxAttempts int
}

// Engine is the update state machine of one device. Its methods are safe
// for concurrent use; they are serialised, since each is a
// read-modify-write of the state file.
type Engine struct {
	path        string
	boot        BootControl
	inst        Installer
	open        SlotOpener
	bootFiles   BootFileStager
	openBase    BaseOpener
	log         *slog.Logger
	now         func() time.Time
	tries       int
	maxAttempts int
	// write persists the state file; atomicfile.Write outside tests.
	write func(path string, data []byte, perm os.FileMode) error

	mu  sync.Mutex
	rec Record // what the state file says

	// snap is a copy of rec for Record, State and TrustedNow, under its
	// own lock: a Step holds mu for a whole download, and a caller
	// asking for progress must not wait for it.
	snapMu sync.Mutex
	snap   Record
}

// New loads the state file at opts.StatePath (a missing file is idle).
//
// A corrupt state file (unreadable JSON, an unknown state, a bad target)
// cannot say where an update stood, so the engine does not guess: it
// returns BOTH a working engine reset to idle AND an error wrapping
// ErrCorruptState. The never-retry set, security floor and last trusted
// time are kept when the file still yields them, so a corrupt file never
// reopens a refused version or a downgrade that the file still records.
// The corrupt file is kept beside the new one as StatePath+".corrupt"
// for diagnosis. The boot loader is left alone: a slot on trial is
// rejected by the loader itself when its tries run out, since nobody
// blesses it.
func New(opts Options) (*Engine, error) {
	switch {
	case opts.StatePath == "":
		return nil, errors.New("new update engine: no state path")
	case opts.Boot == nil:
		return nil, errors.New("new update engine: no boot control")
	case opts.Installer == nil:
		return nil, errors.New("new update engine: no installer")
	case opts.OpenSlot == nil:
		return nil, errors.New("new update engine: no slot opener")
	}
	e := &Engine{
		path: opts.StatePath, boot: opts.Boot, inst: opts.Installer, open: opts.OpenSlot,
		bootFiles: opts.BootFiles, openBase: opts.OpenBase, log: opts.Logger, now: opts.Now, tries: opts.Tries, maxAttempts: opts.MaxAttempts,
		write: atomicfile.Write,
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.tries == 0 {
		e.tries = DefaultTries
	}
	if e.tries < 1 || e.tries > bootctl.MaxTries {
		return nil, fmt.Errorf("new update engine: %d tries, want 1..%d", e.tries, bootctl.MaxTries)
	}
	if e.maxAttempts <= 0 {
		e.maxAttempts = DefaultMaxAttempts
	}
	rec, err := e.load()
	if err == nil {
		e.adopt(rec)
		if rec.State != StateDownloading {
			// A delta left by a power cut, for an update since
			// cancelled or finished by the whole image.
			_ = os.Remove(e.deltaPath())
		}
		return e, nil
	}
	if !errors.Is(err, ErrCorruptState) {
		return nil, err
	}
	e.log.Error("update state corrupt; starting idle", "path", e.path, "err", err)
	data, _ := os.ReadFile(e.path)
	e.adopt(salvage(data))
	if werr := e.write(e.path+".corrupt", data, 0o600); werr != nil {
		e.log.Warn("keep corrupt update state", "err", werr)
	}
	if perr := e.persist(e.rec); perr != nil {
		return nil, fmt.Errorf("new update engine: reset corrupt state: %w", errors.Join(err, perr))
	}
	return e, err
}

func (e *Engine) load() (Record, error) {
	data, err := os.ReadFile(e.path)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{State: StateIdle}, nil
	}
	if err != nil {
		return Record{}, fmt.Errorf("load update state %s: %w", e.path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("load update state %s: %w: %w", e.path, ErrCorruptState, err)
	}
	if err := r.check(); err != nil {
		return Record{}, fmt.Errorf("load update state %s: %w: %w", e.path, ErrCorruptState, err)
	}
	return r, nil
}

// trustedNow is the clock, but never earlier than the last trusted time:
// a device whose RTC lost power wakes in 1970, and believing it would
// make every duration negative.
func (e *Engine) trustedNow(r Record) time.Time {
	now := e.now()
	if now.Before(r.LastTrusted) {
		return r.LastTrusted
	}
	return now
}

// persist writes r and, only once it is durable, adopts it.
func (e *Engine) persist(r Record) error {
	now := e.trustedNow(r)
	r.LastTrusted, r.Updated = now, now
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode update state: %w", err)
	}
	if err := e.write(e.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("persist update state %s: %w", r.State, err)
	}
	e.adopt(r)
	return nil
}

// adopt makes r the engine's record and its snapshot.
func (e *Engine) adopt(r Record) {
	e.rec = r
	e.snapMu.Lock()
	e.snap = r.clone()
	e.snapMu.Unlock()
}

// Record returns a copy of the persisted state. It never waits for a
// Step in progress (a download holds the engine for minutes): it sees the
// last persisted progress.
func (e *Engine) Record() Record {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	return e.snap.clone()
}

// State returns the persisted state, without waiting for a Step.
func (e *Engine) State() State {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	return e.snap.State
}

// TrustedNow is the clock corrected by the last trusted time: never
// earlier than a time the device has already seen.
func (e *Engine) TrustedNow() time.Time {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	return e.trustedNow(e.snap)
}

// Offer starts an update to t, the fleet's choice, already checked by TUF
// (hardware included). It refuses a version in the never-retry set
// (ErrNeverRetry), a security version below the floor (ErrBelowFloor),
// and any offer while another update is under way (ErrBusy); offering the
// target already under way again is a no-op. On success the engine is in
// checking; Step takes it on.
func (e *Engine) Offer(ctx context.Context, t Target) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := t.check(); err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	r := e.rec.clone()
	if !r.State.settled() {
		if r.Target != nil && r.Target.same(t) {
			return nil
		}
		return fmt.Errorf("offer %s %s while %s %s is %s: %w", t.Name, t.Version, r.Target.Name, r.Target.Version, r.State, ErrBusy)
	}
	if err := e.admissible(r, t); err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	st, err := e.boot.Status(ctx)
	if err != nil {
		return fmt.Errorf("offer %s %s: boot status: %w", t.Name, t.Version, err)
	}
	if _, err := bootctl.ParseSlot(string(st.Booted)); err != nil {
		return fmt.Errorf("offer %s %s: booted slot: %w", t.Name, t.Version, err)
	}
	// Running a slot that is not the default (a trial, or a rejected
	// image awaiting its reboot) means the other slot is the only good
	// one: it must not be overwritten.
	if st.Booted != st.Default {
		return fmt.Errorf("offer %s %s: running slot %s, default %s; reboot first: %w", t.Name, t.Version, st.Booted, st.Default, ErrBusy)
	}
	r.State, r.Target, r.Slot = StateChecking, &t, st.Booted.Other()
	r.Written, r.Attempts, r.Reason = 0, 0, ""
	// The slot is about to be overwritten: whatever version it held is
	// gone from the first byte written.
	delete(r.SlotVersions, r.Slot)
	if err := e.persist(r); err != nil {
		return fmt.Errorf("offer %s %s: %w", t.Name, t.Version, err)
	}
	e.log.Info("update offered", "name", t.Name, "version", t.Version, "slot", r.Slot)
	return nil
}

func (e *Engine) admissible(r Record, t Target) error {
	if r.neverRetry(t.Version) {
		return fmt.Errorf("version %s: %w", t.Version, ErrNeverRetry)
	}
	if t.SecurityVersion < r.SecurityFloor {
		return fmt.Errorf("version %s security version %d < floor %d: %w", t.Version, t.SecurityVersion, r.SecurityFloor, ErrBelowFloor)
	}
	return nil
}

// Step advances the update by one persisted transition and returns the
// state reached. In idle, rebooting (the caller reboots), verifying (the
// health gate decides), committed, rolled-back and failed it changes
// nothing. An install error leaves the engine in downloading (Step again
// resumes) until MaxAttempts failures end in failed. Repeating a Step
// after a crash gives the same result.
func (e *Engine) Step(ctx context.Context) (State, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rec.clone()
	var err error
	switch r.State {
	case StateChecking:
		// Checked again: the floor or never-retry set may have changed
		// since the offer (a crash between offer and step is harmless).
		if aerr := e.admissible(r, *r.Target); aerr != nil {
			r.State, r.Reason = StateFailed, aerr.Error()
			err = e.persist(r)
			break
		}
		if err = e.disarm(ctx, r.Slot); err != nil {
			break
		}
		r.State = StateDownloading
		err = e.persist(r)
	case StateDownloading:
		err = e.download(ctx, r)
	case StateInstalling:
		// Staging and TryNext are idempotent: after a crash they are
		// simply done again. A staging failure (an ESP that is full, an
		// image without its kernel) counts as a failed attempt.
		if e.bootFiles != nil {
			if serr := e.bootFiles.Stage(ctx, r.Slot); serr != nil {
				err = e.installFailed(ctx, r, fmt.Errorf("stage the kernel of slot %s: %w", r.Slot, serr))
				break
			}
		}
		if err = e.boot.TryNext(ctx, r.Slot, e.tries); err != nil {
			err = fmt.Errorf("arm slot %s: %w", r.Slot, err)
			break
		}
		r.State = StateRebooting
		err = e.persist(r)
	case StateRolledBack:
		err = e.ensureRejected(ctx, r)
	}
	if err != nil {
		return e.rec.State, fmt.Errorf("update step %s: %w", r.State, err)
	}
	return e.rec.State, nil
}

func (e *Engine) download(ctx context.Context, r Record) error {
	t := r.Target
	dev, err := e.open(ctx, r.Slot)
	if err != nil {
		return e.installFailed(ctx, r, fmt.Errorf("open slot %s: %w", r.Slot, err))
	}
	it := install.Target{URL: t.URL, Length: t.Length, SHA256: t.SHA256}
	persist := func(p install.Progress) error {
		if p.SHA256 != t.SHA256 {
			return fmt.Errorf("progress for another image")
		}
		next := e.rec.clone()
		next.Written = p.Written
		return e.persist(next)
	}
	var ierr error
	if t.Delta != nil && e.openBase != nil {
		ierr = e.installDelta(ctx, dev, r, it, persist)
		if errors.Is(ierr, install.ErrDeltaUnusable) && ctx.Err() == nil {
			// No attempt is lost: the image itself is still to be tried.
			e.log.Warn("update: the delta cannot be used; downloading the whole image", "version", t.Version, "err", ierr)
			next := e.rec.clone()
			next.Target.Delta, next.Written = nil, 0
			if ierr = e.persist(next); ierr == nil {
				ierr = e.inst.Install(ctx, dev, it, install.Progress{}, persist)
			}
		}
	} else {
		ierr = e.inst.Install(ctx, dev, it, install.Progress{SHA256: t.SHA256, Written: r.Written}, persist)
	}
	if cerr := dev.Close(); cerr != nil && ierr == nil {
		ierr = fmt.Errorf("close slot %s: %w", r.Slot, cerr)
	}
	if ierr != nil {
		return e.installFailed(ctx, e.rec.clone(), ierr)
	}
	r = e.rec.clone()
	r.State, r.Written = StateInstalling, t.Length
	return e.persist(r)
}

func (e *Engine) deltaPath() string { return e.path + ".delta" }

// installDelta writes the target into dev from its delta against the
// running slot, the other one.
func (e *Engine) installDelta(ctx context.Context, dev SlotDevice, r Record, it install.Target, persist func(install.Progress) error) error {
	d := r.Target.Delta
	baseSlot := r.Slot.Other()
	base, closer, err := e.openBase(ctx, baseSlot)
	if err != nil {
		// The image does not need the running slot.
		return fmt.Errorf("open running slot %s: %w: %w", baseSlot, install.ErrDeltaUnusable, err)
	}
	defer closer.Close()
	e.log.Info("update: installing from a delta", "version", r.Target.Version, "from", d.BaseVersion, "delta_length", d.Length, "image_length", r.Target.Length)
	return e.inst.InstallDelta(ctx, dev, base,
		install.Delta{URL: d.URL, Length: d.Length, SHA256: d.SHA256, Path: e.deltaPath()}, it,
		install.Progress{SHA256: r.Target.SHA256, Written: r.Written}, persist)
}

// installFailed counts a failed attempt (not a cancelled one: shutting
// down is no fault of the image) and gives up after MaxAttempts.
func (e *Engine) installFailed(ctx context.Context, r Record, cause error) error {
	if ctx.Err() != nil {
		return cause
	}
	r.Attempts++
	r.Reason = cause.Error()
	if r.Attempts >= e.maxAttempts {
		r.State = StateFailed
		e.log.Error("update failed", "version", r.Target.Version, "attempts", r.Attempts, "err", cause)
	}
	if err := e.persist(r); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// disarm makes sure the loader will not boot slot while it is being
// overwritten: a trial left armed (by a state file that was reset as
// corrupt, say) would otherwise boot a half-written image.
func (e *Engine) disarm(ctx context.Context, slot bootctl.Slot) error {
	st, err := e.boot.Status(ctx)
	if err != nil {
		return fmt.Errorf("boot status: %w", err)
	}
	if st.Trying != slot {
		return nil
	}
	e.log.Warn("cancelling a pending trial of the slot about to be written", "slot", slot)
	if err := e.boot.Reject(ctx, slot); err != nil {
		return fmt.Errorf("cancel trial of slot %s: %w", slot, err)
	}
	return nil
}

// ensureRejected finishes a rejection whose verdict was persisted but
// whose Reject may not have reached the loader.
func (e *Engine) ensureRejected(ctx context.Context, r Record) error {
	st, err := e.boot.Status(ctx)
	if err != nil {
		return fmt.Errorf("boot status: %w", err)
	}
	if st.Trying == r.Slot || (st.Booted == r.Slot && st.Default != r.Slot) {
		if err := e.boot.Reject(ctx, r.Slot); err != nil {
			return fmt.Errorf("reject slot %s: %w", r.Slot, err)
		}
	}
	return nil
}

// AfterBoot reconciles the state file with the boot loader; call it once
// at every start, before Step. A device that was rebooting (or verifying,
// or crashed while arming) and runs the new slot goes to verifying; one
// the loader fell back from goes to rolled-back with the version in the
// never-retry set; one whose Bless happened just before a crash goes to
// committed; a rejection cut short is finished. It returns the state.
func (e *Engine) AfterBoot(ctx context.Context) (State, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rec.clone()
	switch r.State {
	case StateInstalling, StateRebooting, StateVerifying:
	case StateRolledBack:
		if err := e.ensureRejected(ctx, r); err != nil {
			return r.State, fmt.Errorf("after boot: %w", err)
		}
		return r.State, nil
	default:
		return r.State, nil
	}
	st, err := e.boot.Status(ctx)
	if err != nil {
		return r.State, fmt.Errorf("after boot: boot status: %w", err)
	}
	switch {
	case st.Booted == r.Slot && st.Default == r.Slot:
		// Blessed before the crash that kept committed from the file.
		e.commit(&r)
	case st.Booted == r.Slot:
		if r.State == StateVerifying {
			return r.State, nil
		}
		r.State = StateVerifying
	case r.State == StateInstalling || st.Trying == r.Slot:
		// Still on the old slot with the trial not begun: the process
		// restarted without a reboot (or crashed while arming; Step
		// re-arms). Nothing to decide yet.
		return r.State, nil
	default:
		r.State = StateRolledBack
		r.Reason = fmt.Sprintf("boot loader fell back to slot %s: version %s did not boot", st.Booted, r.Target.Version)
		r.addNeverRetry(r.Target.Version)
		e.log.Warn("update rolled back", "version", r.Target.Version, "booted", st.Booted)
	}
	if err := e.persist(r); err != nil {
		return e.rec.State, fmt.Errorf("after boot: %w", err)
	}
	return r.State, nil
}

func (e *Engine) commit(r *Record) {
	r.State, r.Reason = StateCommitted, ""
	if r.SlotVersions == nil {
		r.SlotVersions = map[bootctl.Slot]string{}
	}
	r.SlotVersions[r.Slot] = r.Target.Version
	if r.Target.SecurityVersion > r.SecurityFloor {
		r.SecurityFloor = r.Target.SecurityVersion
	}
	// The image running now was built at BuildTime: the real time is
	// at least that.
	if r.Target.BuildTime.After(r.LastTrusted) {
		r.LastTrusted = r.Target.BuildTime
	}
}

// Healthy is the health gate's pass: the new slot, which must be running,
// is blessed and then committed, raising the security floor. Bless comes
// first so that a crash in between is recognised by AfterBoot (the loader
// already defaults to the new slot); persisting first could record a
// commit the loader then undoes by falling back.
func (e *Engine) Healthy(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rec.clone()
	if r.State == StateCommitted {
		return nil
	}
	if r.State != StateVerifying {
		return fmt.Errorf("healthy: state %s: %w", r.State, ErrWrongState)
	}
	if err := e.boot.Bless(ctx, r.Slot); err != nil {
		return fmt.Errorf("healthy: bless slot %s: %w", r.Slot, err)
	}
	e.commit(&r)
	if err := e.persist(r); err != nil {
		return fmt.Errorf("healthy: %w", err)
	}
	e.log.Info("update committed", "version", r.Target.Version, "security_floor", r.SecurityFloor)
	return nil
}

// Unhealthy is the health gate's failure: the verdict (rolled-back, the
// version never to be retried, reason) is persisted first, then the slot
// is rejected. The caller must then reboot to fall back to the old slot.
// A crash between the two is finished by AfterBoot or Step.
func (e *Engine) Unhealthy(ctx context.Context, reason string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rec.clone()
	if r.State != StateVerifying && r.State != StateRolledBack {
		return fmt.Errorf("unhealthy: state %s: %w", r.State, ErrWrongState)
	}
	if r.State == StateVerifying {
		r.State = StateRolledBack
		r.Reason = "health gate: " + reason
		r.addNeverRetry(r.Target.Version)
		if err := e.persist(r); err != nil {
			return fmt.Errorf("unhealthy: %w", err)
		}
		e.log.Warn("update rejected by health gate", "version", r.Target.Version, "reason", reason)
	}
	if err := e.ensureRejected(ctx, r); err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	return nil
}

// Cancel abandons an update that has not been armed yet (checking,
// downloading or installing), because the fleet withdrew its offer: the
// engine goes back to idle with reason recorded, and a slot already armed
// by an interrupted installing step is disarmed. The slot, untouched or
// partly written, simply stays the inactive one; nothing is added to the
// never-retry set, since the image did nothing wrong. Once the loader has
// been told to try the new slot (rebooting, verifying) the update can no
// longer be cancelled: Cancel returns ErrNotCancellable. With nothing
// under way it does nothing.
//
// A Step in progress holds the engine, so a caller cancels the Step's
// context first.
func (e *Engine) Cancel(ctx context.Context, reason string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rec.clone()
	switch r.State {
	case StateChecking, StateDownloading, StateInstalling:
	case StateRebooting, StateVerifying:
		return fmt.Errorf("cancel %s %s: state %s: %w", r.Target.Name, r.Target.Version, r.State, ErrNotCancellable)
	default:
		return nil
	}
	// An installing step may have armed the loader before a crash kept
	// rebooting from the file.
	if r.State == StateInstalling {
		if err := e.disarm(ctx, r.Slot); err != nil {
			return fmt.Errorf("cancel %s %s: %w", r.Target.Name, r.Target.Version, err)
		}
	}
	name, version := r.Target.Name, r.Target.Version
	r.State, r.Target, r.Slot = StateIdle, nil, ""
	r.Written, r.Attempts = 0, 0
	r.Reason = "cancelled: " + reason
	if err := e.persist(r); err != nil {
		return fmt.Errorf("cancel %s %s: %w", name, version, err)
	}
	e.log.Info("update cancelled", "name", name, "version", version, "reason", reason)
	return nil
}
