// Package updater runs over-the-air updates inside roomd: the fleet's
// offers (from the agent after each check-in) are checked against the
// release's TUF repository and handed to ota/engine, which the updater
// steps only when the policy allows (inside the offer's maintenance window,
// never during a meeting); after the reboot into the new slot the health
// gate (roomd ready, the kiosk up, a fleet check-in, all within a deadline)
// blesses or rejects it. Refusals and verdicts go to the fleet as events and
// in every check-in's status.
//
// Whether an image is genuine is decided by ota/release, the update's
// persisted states by ota/engine; this package owns the policy between them
// and roomd, which it sees only through Hooks and Fleet.
package updater

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/internal/atomicfile"
	"github.com/atriumroom/atrium/ota/bootctl"
	"github.com/atriumroom/atrium/ota/bootfiles"
	"github.com/atriumroom/atrium/ota/engine"
	"github.com/atriumroom/atrium/ota/install"
	"github.com/atriumroom/atrium/ota/install/blockdev"
	"github.com/atriumroom/atrium/ota/release"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// Timings of the updater.
const (
	// gatePoll is how often the health gate looks again while it waits
	// (only while an update is being verified, and only until its
	// deadline).
	gatePoll = time.Second
	// updateRetry is the wait after a transient failure (the repository
	// unreachable, a download cut) before trying again.
	updateRetry = time.Minute
	// progressEvery is how often a download's progress is published.
	progressEvery = 2 * time.Second
	// rebootRetry is how long to wait for a requested reboot before
	// asking again.
	rebootRetry = 5 * time.Minute
)

// Fleet is what the updater needs of the fleet agent
// (*agent.Agent provides it).
type Fleet interface {
	// UpdateHTTPClient is an mTLS client for the fleet server and its URL.
	UpdateHTTPClient() (*http.Client, string, error)
	// LastCheckIn is the time of the last successful check-in.
	LastCheckIn() time.Time
	// Record queues an event for the fleet.
	Record(fleetapi.Event) error
	// CheckInSoon asks for a check-in now, to deliver news at once.
	CheckInSoon()
}

// Hooks are the updater's view of the rest of roomd.
type Hooks struct {
	// InMeeting reports whether a meeting is under way.
	InMeeting func() bool
	// Ready reports whether roomd is ready (serving, devices enumerated).
	Ready func() bool
	// Reboot restarts the device into the slot the loader picks: login1
	// with a real loader, the end of roomd (ErrRestart) in file mode.
	Reboot func(ctx context.Context) error
	// Changed receives every new status (the update.changed event).
	Changed func(apiv1.UpdateStatus)
}

// Updater owns the update engine of one roomd. Its goroutine is run;
// OfferUpdate, KioskReady, MeetingChanged and Status are called from
// others.
type Updater struct {
	cfg         config.Update
	dir         string // state/update
	log         *slog.Logger
	now         func() time.Time
	engine      *engine.Engine
	boot        bootctl.Control
	fileBoot    *bootctl.FileControl // file mode: roomd plays the firmware at start
	fleet       Fleet
	root        []byte // the trusted TUF root
	baseVersion string // the image's IMAGE_VERSION
	hooks       Hooks
	started     time.Time
	wake        chan struct{}
	pubMu       sync.Mutex // serialises publish

	mu         sync.Mutex
	offer      *fleetapi.UpdateOffer // the latest check-in's
	seen       bool                  // a check-in answered since start
	handled    string                // the offer last acted on (offerKey)
	refusal    string                // why that offer was refused
	refused    fleetapi.UpdateOffer  // the offer refused
	transient  string                // why checking it failed for now
	retryAt    time.Time             // when to check it again
	deferred   string
	nextWindow time.Time
	kioskUp    bool
	booted     bootctl.Slot
	stepCancel context.CancelFunc // ends the Step in progress
	stepTarget string
	rebootAt   time.Time // when a reboot was last asked for
	rollout    rolloutNote
	last       apiv1.UpdateStatus
	stopped    string // why run ended early
}

// rolloutNote remembers which rollout the update under way came from
// (state/update/rollout.json): after the reboot the fleet may no longer
// offer it, yet the verdict must name it.
type rolloutNote struct {
	Rollout string `json:"rollout"`
	Target  string `json:"target"`
	Version string `json:"version"`
}

// Options build an updater.
type Options struct {
	Config   config.Update
	StateDir string // roomd's
	Logger   *slog.Logger
	Now      func() time.Time
	Fleet    Fleet
	Hooks    Hooks
}

// ErrOff wraps the reasons updates are off; its text is what GET
// /update shows.
var ErrOff = errors.New("updates are off")

// New builds the update engine from the [update] section. An error
// wrapping ErrOff means updates are off by configuration; any other
// error means they are configured but cannot run.
func New(o Options) (*Updater, error) {
	cfg := o.Config
	if !cfg.Enabled {
		return nil, fmt.Errorf("%w: roomd.toml has no [update] section", ErrOff)
	}
	if o.Fleet == nil {
		return nil, fmt.Errorf("%w: updates come from the fleet's rollouts, and no fleet server is configured", ErrOff)
	}
	root, err := os.ReadFile(cfg.TrustedRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: the trusted root %s does not exist", ErrOff, cfg.TrustedRoot)
	}
	if err != nil {
		return nil, fmt.Errorf("update.trusted_root: %w", err)
	}
	u := &Updater{
		cfg: cfg, dir: filepath.Join(o.StateDir, "update"), log: o.Logger, now: o.Now,
		fleet: o.Fleet, root: root, hooks: o.Hooks, wake: make(chan struct{}, 1),
		baseVersion: ImageVersion(cfg.OSRelease),
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if u.now == nil {
		u.now = time.Now
	}
	u.started = u.now()
	if err := os.MkdirAll(u.dir, 0o700); err != nil {
		return nil, fmt.Errorf("update state directory: %w", err)
	}
	if u.boot, u.fileBoot, err = openBootControl(cfg, o.StateDir, u.log); err != nil {
		return nil, err
	}
	var stager engine.BootFileStager
	if sb, ok := u.boot.(*bootctl.SystemdBoot); ok {
		// systemd-boot loads each slot's kernel from the ESP; the
		// image carries its own, which the update copies there, and
		// its root hash, which goes into the slot's entry.
		if stager, err = bootfiles.New(bootfiles.Config{
			Extractor: bootfiles.Unsquashfs{}, SlotImage: slotPath(cfg), Destination: sb.BootFiles,
			SetOptions: sb.SetOptions, Logger: u.log, Now: u.now,
		}); err != nil {
			return nil, fmt.Errorf("update: %w", err)
		}
	}
	u.engine, err = engine.New(engine.Options{
		StatePath: filepath.Join(u.dir, "engine.json"), Boot: u.boot, Installer: fleetInstaller{u}, OpenSlot: slotOpener(cfg),
		OpenBase: baseOpener(cfg), BootFiles: stager, Logger: u.log, Now: u.now, Tries: cfg.Tries,
	})
	if errors.Is(err, engine.ErrCorruptState) {
		// The engine starts idle and says so; updates go on.
		u.log.Error("update state was corrupt; starting idle", "err", err)
	} else if err != nil {
		return nil, fmt.Errorf("update engine: %w", err)
	}
	u.rollout = u.loadRollout()
	return u, nil
}

// openBootControl builds the configured boot loader's control.
func openBootControl(cfg config.Update, stateDir string, log *slog.Logger) (bootctl.Control, *bootctl.FileControl, error) {
	switch cfg.Boot {
	case "file":
		path := cfg.BootFile
		if path == "" {
			path = filepath.Join(stateDir, "boot.json")
		}
		fc, err := bootctl.NewFileControl(path, bootctl.SlotA, log)
		if err != nil {
			return nil, nil, fmt.Errorf("update.boot_file: %w", err)
		}
		return fc, fc, nil
	case "grub":
		g, err := bootctl.NewGRUBEnv(bootctl.GRUBEnvConfig{Path: cfg.GRUBEnv, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("update.grubenv: %w", err)
		}
		return g, nil, nil
	default:
		sb, err := bootctl.NewSystemdBoot(bootctl.SystemdBootConfig{ESP: cfg.ESP, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("update.esp: %w", err)
		}
		return sb, nil, nil
	}
}

// slotPath returns the configured device (or file) of a slot.
func slotPath(cfg config.Update) func(bootctl.Slot) (string, error) {
	return func(s bootctl.Slot) (string, error) {
		path := map[bootctl.Slot]string{bootctl.SlotA: cfg.SlotA, bootctl.SlotB: cfg.SlotB}[s]
		if path == "" {
			return "", fmt.Errorf("slot %q: %w", s, bootctl.ErrUnknownSlot)
		}
		return path, nil
	}
}

// slotOpener opens the configured slots: block devices, or partition
// image files in file mode.
func slotOpener(cfg config.Update) engine.SlotOpener {
	paths := slotPath(cfg)
	return func(_ context.Context, s bootctl.Slot) (engine.SlotDevice, error) {
		path, err := paths(s)
		if err != nil {
			return nil, fmt.Errorf("open %w", err)
		}
		f, err := blockdev.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open slot %s: %w", s, err)
		}
		return f, nil
	}
}

// baseOpener opens the running slot read-only, as the base of a delta.
func baseOpener(cfg config.Update) engine.BaseOpener {
	paths := slotPath(cfg)
	return func(_ context.Context, s bootctl.Slot) (io.ReaderAt, io.Closer, error) {
		path, err := paths(s)
		if err != nil {
			return nil, nil, fmt.Errorf("open %w", err)
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, fmt.Errorf("open slot %s: %w", s, err)
		}
		return f, f, nil
	}
}

// ImageVersion reads IMAGE_VERSION from an os-release file; "dev" when
// there is none (a development machine).
func ImageVersion(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "dev"
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "IMAGE_VERSION="); ok {
			if v = strings.Trim(v, `"'`); v != "" {
				return v
			}
		}
	}
	return "dev"
}

// fleetInstaller downloads images with the fleet's mTLS client, taken
// fresh for each attempt so a renewed certificate is used.
type fleetInstaller struct{ u *Updater }

func (i fleetInstaller) Install(ctx context.Context, dev install.Device, t install.Target, from install.Progress, persist func(install.Progress) error) error {
	cl, _, err := i.u.fleet.UpdateHTTPClient()
	if err != nil {
		return fmt.Errorf("download image: %w", err)
	}
	defer cl.CloseIdleConnections()
	return install.New(install.Options{Client: cl, Logger: i.u.log}).Install(ctx, dev, t, from, persist)
}

func (i fleetInstaller) InstallDelta(ctx context.Context, dev install.Device, base io.ReaderAt, d install.Delta, t install.Target, from install.Progress, persist func(install.Progress) error) error {
	cl, _, err := i.u.fleet.UpdateHTTPClient()
	if err != nil {
		return fmt.Errorf("download delta: %w", err)
	}
	defer cl.CloseIdleConnections()
	return install.New(install.Options{Client: cl, Logger: i.u.log}).InstallDelta(ctx, dev, base, d, t, from, persist)
}

func (u *Updater) poke() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// OfferUpdate implements agent.Updates: it keeps the offer and wakes the
// updater. An offer that no longer names the target being downloaded
// ends the download at once.
func (u *Updater) OfferUpdate(_ context.Context, offer *fleetapi.UpdateOffer) {
	if offer != nil {
		o := *offer
		if o.Window != nil {
			w := *o.Window
			o.Window = &w
		}
		offer = &o
	}
	u.mu.Lock()
	u.offer, u.seen = offer, true
	if offer == nil || offerKey(offer) != u.handled {
		// A new offer, or none: what was decided about the old one no
		// longer applies (a paused and resumed rollout is taken again).
		u.handled, u.refusal, u.transient, u.retryAt = "", "", "", time.Time{}
	}
	if u.stepCancel != nil && (offer == nil || offer.Target != u.stepTarget) {
		u.stepCancel()
	}
	u.mu.Unlock()
	u.poke()
}

// KioskReady records that the kiosk rendered its home screen.
func (u *Updater) KioskReady() {
	u.mu.Lock()
	first := !u.kioskUp
	u.kioskUp = true
	u.mu.Unlock()
	if first {
		// Once per start: how long the screen took is what IT asks about
		// a room that "stays black".
		u.log.Info("the kiosk shows its home screen")
	}
	u.poke()
}

// MeetingChanged stops a download when a meeting starts and looks again
// when one ends.
func (u *Updater) MeetingChanged(inMeeting bool) {
	u.mu.Lock()
	if inMeeting && u.stepCancel != nil {
		u.stepCancel()
	}
	u.mu.Unlock()
	u.poke()
}

// Run is the updater's goroutine: the firmware's part in file mode, the
// engine's reconciliation with the loader, then the loop until ctx ends.
func (u *Updater) Run(ctx context.Context) error {
	if u.fileBoot != nil {
		slot, err := u.fileBoot.Boot(ctx)
		if err != nil {
			err = fmt.Errorf("file boot loader: %w", err)
			u.mu.Lock()
			u.stopped = err.Error()
			u.mu.Unlock()
			return err
		}
		u.log.Info("file boot loader: booted", "slot", slot)
	}
	before := u.engine.State()
	after, err := u.engine.AfterBoot(ctx)
	if err != nil {
		u.log.Error("update state after boot", "err", err)
	}
	u.reportTransition(before, after)
	if st, err := u.boot.Status(ctx); err != nil {
		u.log.Warn("boot loader status", "err", err)
	} else {
		u.mu.Lock()
		u.booted = st.Booted
		u.mu.Unlock()
	}
	u.publish()
	for {
		next := u.pass(ctx)
		var timer *time.Timer
		var fire <-chan time.Time
		if !next.IsZero() {
			timer = time.NewTimer(max(next.Sub(u.now()), 0))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-u.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// pass acts until nothing more can be done now, and returns when to look
// again without being woken (zero: only when woken).
func (u *Updater) pass(ctx context.Context) time.Time {
	for ctx.Err() == nil {
		next, again := u.once(ctx)
		u.publish()
		if !again {
			return next
		}
	}
	return time.Time{}
}

// once takes one decision. again says there may be more to do at once.
func (u *Updater) once(ctx context.Context) (next time.Time, again bool) {
	rec := u.engine.Record()
	now := u.now()
	u.setDeferred("", time.Time{})
	u.mu.Lock()
	offer, seen := u.offer, u.seen
	u.mu.Unlock()
	switch rec.State {
	case engine.StateVerifying:
		return u.gate(ctx, now)
	case engine.StateRebooting:
		if !seen {
			return time.Time{}, false // the window comes with the first check-in
		}
		w := fleetapi.DefaultMaintenanceWindow()
		var window *fleetapi.MaintenanceWindow = &w
		if covers(offer, rec) {
			window = offer.Window
		}
		return u.rebootWhenAllowed(ctx, now, window, "update "+rec.Target.Version)
	case engine.StateChecking, engine.StateDownloading, engine.StateInstalling:
		if !seen {
			return time.Time{}, false
		}
		if !covers(offer, rec) {
			reason := "the fleet no longer offers it"
			if err := u.engine.Cancel(ctx, reason); err != nil {
				u.log.Error("cancel a withdrawn update", "err", err)
				return now.Add(updateRetry), false
			}
			u.record("update.cancelled", fmt.Sprintf("update to %s cancelled: %s", rec.Target.Version, reason),
				rec.Target.Version, reason)
			return time.Time{}, true
		}
		if wait, at := u.policy(now, offer.Window); wait {
			return at, false
		}
		return u.step(ctx, rec, now)
	}
	// Nothing under way. A rejected image still running falls back first.
	if st, err := u.boot.Status(ctx); err == nil && st.Booted != "" && st.Booted != st.Default {
		if st.Trying == "" {
			return u.rebootWhenAllowed(ctx, now, nil, "fall back to slot "+string(st.Default))
		}
	}
	if !seen || offer == nil {
		return time.Time{}, false
	}
	key := offerKey(offer)
	u.mu.Lock()
	handled, retryAt := u.handled == key, u.retryAt
	u.mu.Unlock()
	if handled {
		if !retryAt.IsZero() && now.Before(retryAt) {
			return retryAt, false
		}
		if retryAt.IsZero() {
			return time.Time{}, false
		}
	}
	if offer.Version == u.running(rec) {
		return time.Time{}, false
	}
	u.accept(ctx, offer, key)
	return time.Time{}, true
}

// covers reports whether offer is the update rec is about.
func covers(offer *fleetapi.UpdateOffer, rec engine.Record) bool {
	return offer != nil && rec.Target != nil && offer.Target == rec.Target.Name && offer.Version == rec.Target.Version
}

func offerKey(o *fleetapi.UpdateOffer) string {
	return o.Rollout + "\x00" + o.Target + "\x00" + o.Version
}

// policy says whether the update must wait now: during a meeting (until
// it ends, which wakes the updater) or outside the window (until it
// opens).
func (u *Updater) policy(now time.Time, window *fleetapi.MaintenanceWindow) (wait bool, next time.Time) {
	if u.hooks.InMeeting() {
		u.setDeferred(fleetapi.DeferredMeeting, time.Time{})
		return true, time.Time{}
	}
	if window != nil && window.Validate() != nil {
		// A window the device cannot read must not hold the update off
		// for ever, nor let it run at any time: the default applies.
		u.log.Warn("the offer's maintenance window is invalid; using the default", "window", *window, "err", window.Validate())
		w := fleetapi.DefaultMaintenanceWindow()
		window = &w
	}
	if window != nil && !window.Contains(now) {
		next := window.Next(now)
		u.setDeferred(fleetapi.DeferredWindow, next)
		return true, next
	}
	return false, time.Time{}
}

func (u *Updater) setDeferred(why string, next time.Time) {
	u.mu.Lock()
	u.deferred, u.nextWindow = why, next
	u.mu.Unlock()
}

// step runs one engine transition, stopped early when a meeting starts or
// the offer is withdrawn.
func (u *Updater) step(ctx context.Context, rec engine.Record, now time.Time) (time.Time, bool) {
	sctx, cancel := context.WithCancel(ctx)
	u.mu.Lock()
	u.stepCancel, u.stepTarget = cancel, rec.Target.Name
	u.mu.Unlock()
	// A download takes minutes: its progress is published meanwhile.
	progressDone := make(chan struct{})
	progressEnded := make(chan struct{})
	go func() {
		defer close(progressEnded)
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-progressDone:
				return
			case <-tick.C:
				u.publish()
			}
		}
	}()
	after, err := u.engine.Step(sctx)
	close(progressDone)
	<-progressEnded
	u.mu.Lock()
	u.stepCancel, u.stepTarget = nil, ""
	u.mu.Unlock()
	stopped := sctx.Err() != nil
	cancel()
	u.reportTransition(rec.State, after)
	switch {
	case err == nil:
		return time.Time{}, true
	case ctx.Err() != nil:
		return time.Time{}, false
	case stopped:
		u.log.Info("update step stopped (a meeting started or the offer changed)", "state", after)
		return time.Time{}, true
	}
	u.log.Warn("update step failed; trying again later", "state", after, "err", err, "in", updateRetry)
	return now.Add(updateRetry), false
}

// rebootWhenAllowed reboots unless a meeting runs or the window is
// closed (window nil: any time).
func (u *Updater) rebootWhenAllowed(ctx context.Context, now time.Time, window *fleetapi.MaintenanceWindow, why string) (time.Time, bool) {
	if wait, at := u.policy(now, window); wait {
		return at, false
	}
	u.mu.Lock()
	asked := u.rebootAt
	u.mu.Unlock()
	if !asked.IsZero() && now.Sub(asked) < rebootRetry {
		return asked.Add(rebootRetry), false
	}
	u.mu.Lock()
	u.rebootAt = now
	u.mu.Unlock()
	u.log.Warn("rebooting for the update", "why", why)
	if err := u.hooks.Reboot(ctx); err != nil {
		u.log.Error("reboot for the update", "err", err)
	}
	return now.Add(rebootRetry), false
}

// gate is the health gate after a reboot into the new slot: roomd
// ready, the kiosk up (unless not required) and a check-in since start,
// all within the deadline from start.
func (u *Updater) gate(ctx context.Context, now time.Time) (time.Time, bool) {
	missing := u.gateMissing()
	if len(missing) == 0 {
		if err := u.engine.Healthy(ctx); err != nil {
			u.log.Error("health gate passed, but blessing the slot failed", "err", err)
			return now.Add(updateRetry), false
		}
		u.reportTransition(engine.StateVerifying, u.engine.State())
		return time.Time{}, true
	}
	deadline := u.started.Add(u.cfg.HealthDeadline.Duration)
	if now.Before(deadline) {
		next := now.Add(gatePoll)
		if deadline.Before(next) {
			next = deadline
		}
		return next, false
	}
	reason := fmt.Sprintf("not healthy within %s of start: %s", u.cfg.HealthDeadline.Duration, strings.Join(missing, ", "))
	if err := u.engine.Unhealthy(ctx, reason); err != nil {
		u.log.Error("health gate failed, but rejecting the slot failed", "err", err)
		return now.Add(updateRetry), false
	}
	u.reportTransition(engine.StateVerifying, u.engine.State())
	return time.Time{}, true
}

// gateMissing lists what the health gate still waits for.
func (u *Updater) gateMissing() []string {
	var missing []string
	if !u.hooks.Ready() {
		missing = append(missing, "roomd not ready")
	}
	u.mu.Lock()
	kiosk := u.kioskUp
	u.mu.Unlock()
	if u.cfg.RequireKiosk && !kiosk {
		missing = append(missing, "the kiosk did not come up")
	}
	if !u.fleet.LastCheckIn().After(u.started) {
		missing = append(missing, "no check-in with the fleet")
	}
	return missing
}

// accept checks an offer against the release's TUF repository and hands
// it to the engine. A refusal (TUF, never-retry, floor) is reported once
// and not tried again for the same offer; a failure to reach the
// repository is tried again later.
func (u *Updater) accept(ctx context.Context, offer *fleetapi.UpdateOffer, key string) {
	u.mu.Lock()
	u.handled, u.refusal, u.transient, u.retryAt = key, "", "", time.Time{}
	u.mu.Unlock()
	t, err := u.verify(ctx, offer)
	if err == nil {
		err = u.engine.Offer(ctx, t)
		if errors.Is(err, engine.ErrBusy) {
			// The running slot is not the default (a rejected image
			// awaiting its reboot): the offer waits for that.
			u.retry(fmt.Sprintf("cannot take %s now: %v", offer.Version, err))
			return
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			u.mu.Lock()
			u.handled = ""
			u.mu.Unlock()
			return
		}
		if !refusal(err) {
			u.retry(fmt.Sprintf("checking %s against the release repository failed: %v", offer.Version, err))
			return
		}
		reason := fmt.Sprintf("version %s refused: %v", offer.Version, err)
		u.mu.Lock()
		if u.handled == key {
			u.refusal, u.refused = reason, *offer
		}
		u.mu.Unlock()
		u.log.Warn("update offer refused", "rollout", offer.Rollout, "target", offer.Target, "reason", reason)
		u.record("update.refused", reason, offer.Version, reason)
		return
	}
	note := rolloutNote{Rollout: offer.Rollout, Target: offer.Target, Version: offer.Version}
	if err := u.saveRollout(note); err != nil {
		u.log.Warn("remember the update's rollout", "err", err)
	}
	u.record("update.accepted", fmt.Sprintf("update to %s accepted", offer.Version), offer.Version, "")
}

func (u *Updater) retry(why string) {
	u.log.Warn("update offer not taken yet; trying again later", "why", why, "in", updateRetry)
	u.mu.Lock()
	u.transient, u.retryAt = why, u.now().Add(updateRetry)
	u.mu.Unlock()
}

// refusal reports whether err is a verdict on the offer, not a failure to
// reach a verdict.
func refusal(err error) bool {
	for _, target := range []error{
		release.ErrRollback, release.ErrExpired, release.ErrBadSignature, release.ErrTooLarge,
		release.ErrMismatch, release.ErrUnknownTarget, release.ErrWrongHardware, release.ErrBadImageMeta,
		engine.ErrNeverRetry, engine.ErrBelowFloor, engine.ErrInvalidTarget, errVersionMismatch, errBadRepository,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// errBadRepository means the offer's repository is not a URL.
var errBadRepository = errors.New("not a repository URL")

// errVersionMismatch means the fleet named a version that TUF's metadata
// of the target does not.
var errVersionMismatch = errors.New("the fleet's version differs from the release's")

// verify refreshes TUF metadata from the offer's repository and returns
// the target as TUF vouches for it.
func (u *Updater) verify(ctx context.Context, offer *fleetapi.UpdateOffer) (engine.Target, error) {
	cl, server, err := u.fleet.UpdateHTTPClient()
	if err != nil {
		return engine.Target{}, err
	}
	defer cl.CloseIdleConnections()
	base, err := resolveRepository(server, offer.Repository)
	if err != nil {
		return engine.Target{}, err
	}
	c, err := release.NewClient(release.ClientOptions{
		TrustedRoot: u.root, MetadataDir: filepath.Join(u.dir, "tuf"), BaseURL: base,
		Hardware: u.cfg.Hardware, HTTPClient: cl, Now: u.now, TimeFloor: u.engine.TrustedNow(), Logger: u.log,
	})
	if err != nil {
		return engine.Target{}, fmt.Errorf("release client: %w", err)
	}
	defer c.Close()
	if err := c.Refresh(ctx); err != nil {
		return engine.Target{}, fmt.Errorf("refresh release metadata: %w", err)
	}
	t, err := c.Target(offer.Target)
	if err != nil {
		return engine.Target{}, err
	}
	if t.Meta.Version != offer.Version {
		return engine.Target{}, fmt.Errorf("target %s: the fleet says %s, the release says %s: %w", offer.Target, offer.Version, t.Meta.Version, errVersionMismatch)
	}
	et := engine.Target{
		Name: t.Name, Version: t.Meta.Version, SecurityVersion: t.Meta.SecurityVersion, BuildTime: t.Meta.BuildTime,
		SHA256: engine.Hash(t.SHA256), Length: t.Length, URL: t.URL,
	}
	// A delta from the version this slot runs, when one is published
	// and is worth it; the engine falls back to the image if it does
	// not fit the slot after all.
	from := u.running(u.engine.Record())
	switch d, err := c.DeltaFrom(offer.Target, from); {
	case errors.Is(err, release.ErrNoDelta):
	case err != nil:
		u.log.Warn("update: the delta to this release is unusable; fetching the whole image", "target", offer.Target, "from", from, "err", err)
	case d.Length >= t.Length/2:
		u.log.Info("update: the delta is too large to be worth it; fetching the whole image", "target", offer.Target, "delta_length", d.Length, "image_length", t.Length)
	default:
		et.Delta = &engine.Delta{Name: d.Name, BaseVersion: d.Meta.BaseVersion, Length: d.Length, SHA256: engine.Hash(d.SHA256), URL: d.URL}
	}
	return et, nil
}

// resolveRepository resolves the offer's repository URL (normally the
// relative fleetapi.PathUpdates) against the fleet server's URL.
func resolveRepository(server, repo string) (string, error) {
	base, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("fleet server URL %q: %w", server, err)
	}
	ref, err := url.Parse(repo)
	if err != nil || repo == "" {
		return "", fmt.Errorf("offer's repository %q: %w", repo, errBadRepository)
	}
	full := base.ResolveReference(ref)
	if full.Scheme != base.Scheme {
		// The device's certificate and trust are for the fleet server:
		// never send the first over, or give up the second for, a
		// weaker scheme.
		return "", fmt.Errorf("offer's repository %q: scheme %q, the fleet's is %q: %w", repo, full.Scheme, base.Scheme, errBadRepository)
	}
	return strings.TrimSuffix(full.String(), "/"), nil
}

// reportTransition tells the fleet (outbox) how an update ended, when
// this process saw it end.
func (u *Updater) reportTransition(before, after engine.State) {
	if before == after {
		return
	}
	rec := u.engine.Record()
	version := ""
	if rec.Target != nil {
		version = rec.Target.Version
	}
	switch after {
	case engine.StateCommitted:
		u.record("update.committed", "update to "+version+" committed", version, "")
	case engine.StateRolledBack:
		u.record("update.rolled-back", "update to "+version+" rolled back: "+rec.Reason, version, rec.Reason)
	case engine.StateFailed:
		u.record("update.failed", "update to "+version+" failed: "+rec.Reason, version, rec.Reason)
	}
}

// record queues an update event for the fleet.
func (u *Updater) record(typ, msg, version, reason string) {
	u.mu.Lock()
	rollout := u.rollout.Rollout
	if u.rollout.Version != version {
		rollout = ""
		if u.offer != nil && u.offer.Version == version {
			rollout = u.offer.Rollout
		}
	}
	u.mu.Unlock()
	details, _ := json.Marshal(map[string]string{"rollout": rollout, "version": version, "reason": reason})
	if err := u.fleet.Record(fleetapi.Event{Type: typ, Message: msg, Details: details}); err != nil {
		u.log.Warn("queue an update event for the fleet", "type", typ, "err", err)
	}
	// The event and the new state go out now, not a check-in interval
	// later: a rollout waits for each device's verdict.
	u.fleet.CheckInSoon()
}

func (u *Updater) rolloutPath() string { return filepath.Join(u.dir, "rollout.json") }

func (u *Updater) loadRollout() rolloutNote {
	var n rolloutNote
	data, err := os.ReadFile(u.rolloutPath())
	if err != nil {
		return n
	}
	if err := json.Unmarshal(data, &n); err != nil {
		u.log.Warn("update rollout note unreadable; ignored", "err", err)
		return rolloutNote{}
	}
	return n
}

func (u *Updater) saveRollout(n rolloutNote) error {
	data, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode rollout note: %w", err)
	}
	if err := atomicfile.Write(u.rolloutPath(), data, 0o600); err != nil {
		return fmt.Errorf("store rollout note: %w", err)
	}
	u.mu.Lock()
	u.rollout = n
	u.mu.Unlock()
	return nil
}

// running is the version running now: what the engine committed to the
// booted slot, else the image's own.
func (u *Updater) running(rec engine.Record) string {
	u.mu.Lock()
	booted := u.booted
	u.mu.Unlock()
	if v := rec.SlotVersions[booted]; v != "" {
		return v
	}
	return u.baseVersion
}

// Status is the update state for the API and the check-in. It never
// waits for a download.
func (u *Updater) Status() apiv1.UpdateStatus {
	rec := u.engine.Record()
	running := u.running(rec)
	u.mu.Lock()
	defer u.mu.Unlock()
	st := apiv1.UpdateStatus{
		Enabled: true, Hardware: u.cfg.Hardware, Running: running, Slot: string(u.booted),
		State: string(rec.State), Reason: rec.Reason, Deferred: u.deferred, NextWindow: u.nextWindow,
		NeverRetry: slices.Clone(rec.NeverRetry), SecurityFloor: rec.SecurityFloor,
	}
	if u.stopped != "" {
		st.Enabled, st.Disabled = false, "updates stopped: "+u.stopped
	}
	if t := rec.Target; t != nil {
		st.Target, st.Version, st.Written, st.Length = t.Name, t.Version, rec.Written, t.Length
		if u.rollout.Target == t.Name && u.rollout.Version == t.Version {
			st.Rollout = u.rollout.Rollout
		}
	}
	switch {
	case u.refusal != "":
		// The refused offer is the news: the engine's own target, if
		// any, is an update that ended before it.
		st.Reason, st.Rollout, st.Version = u.refusal, u.refused.Rollout, u.refused.Version
	case u.transient != "":
		st.Reason = u.transient
	}
	return st
}

// publish sends update.changed when the status changed.
func (u *Updater) publish() {
	// One at a time, so an older status is never sent after a newer one.
	u.pubMu.Lock()
	defer u.pubMu.Unlock()
	st := u.Status()
	u.mu.Lock()
	same := reflect.DeepEqual(st, u.last)
	u.last = st
	u.mu.Unlock()
	if !same && u.hooks.Changed != nil {
		u.hooks.Changed(st)
	}
}

// FleetStatus converts the API's status to the check-in's.
func FleetStatus(st apiv1.UpdateStatus) *fleetapi.UpdateStatus {
	if !st.Enabled {
		return nil
	}
	return &fleetapi.UpdateStatus{
		Hardware: st.Hardware, Running: st.Running, Slot: st.Slot, State: st.State, Rollout: st.Rollout,
		Version: st.Version, Written: st.Written, Length: st.Length, Reason: st.Reason, Deferred: st.Deferred,
		NextWindow: st.NextWindow, NeverRetry: st.NeverRetry, SecurityFloor: st.SecurityFloor,
	}
}
