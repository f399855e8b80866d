package hal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// SimulationMode says when the registry lists simulated devices.
type SimulationMode string

// Simulation modes.
const (
	// SimAuto lists the simulated devices of a kind only while no real
	// device of that kind is present, so a room without a camera still has a
	// working (test-pattern) camera, and plugging one in replaces it.
	SimAuto SimulationMode = "auto"
	// SimAlways lists only simulated devices; real drivers are not even
	// enumerated, so a development machine's own webcam stays untouched.
	SimAlways SimulationMode = "always"
	// SimNever lists only real devices.
	SimNever SimulationMode = "never"
)

// RegistryOptions configures NewRegistry.
type RegistryOptions struct {
	// Drivers are the real drivers, in order of preference: when two report
	// the same device ID, the earlier one wins.
	Drivers []Driver
	// Simulated is the simulated driver; it may be nil unless Mode is
	// SimAlways.
	Simulated Driver
	// Always are drivers enumerated whatever Mode says: the software codecs,
	// which no simulation replaces and which every machine has.
	Always []Driver
	// Mode selects between real and simulated devices; empty means SimAuto.
	Mode SimulationMode
	// Logger receives enumeration failures and hotplug notices; nil discards.
	Logger *slog.Logger
}

// ChangeType says what happened to a device.
type ChangeType string

// Change types.
const (
	ChangeAdded   ChangeType = "added"
	ChangeRemoved ChangeType = "removed"
	// ChangeChanged means the device's Info or controls changed, or (after
	// coalescing, see Subscribe) that it was replaced by a device with the
	// same ID: subscribers should re-read it and reopen streams they hold.
	ChangeChanged ChangeType = "changed"
)

// Change is one registry event. For ChangeRemoved, Device is the handle that
// was removed.
type Change struct {
	Type   ChangeType
	Device Device
}

// SubscriberBuffer is the channel capacity Subscribe returns. Changes beyond
// it are coalesced, never dropped and never blocking the registry.
const SubscriberBuffer = 16

// defaultWatchRetry is how long the registry waits before restarting a
// driver's Watch that failed, so a broken netlink socket does not spin.
const defaultWatchRetry = 5 * time.Second

// Registry enumerates devices from the configured drivers, chooses between
// real and simulated ones, follows hotplug, and tells subscribers what
// changed. All methods are safe for concurrent use.
type Registry struct {
	sources    []source
	mode       SimulationMode
	log        *slog.Logger
	watchRetry time.Duration

	ready     chan struct{}
	readyOnce sync.Once
	running   atomic.Bool

	// scanMu serialises enumerations so that two rescans cannot apply their
	// results out of order. It is held while drivers enumerate; mu is not, so
	// Devices and Lookup never wait on a slow driver.
	scanMu sync.Mutex

	mu      sync.Mutex
	found   map[int][]entry  // last successful enumeration, by source index
	current map[string]entry // the selected devices, by ID
	subs    map[*subscription]struct{}
}

// source is one driver and whether its devices count as simulated.
type source struct {
	driver    Driver
	name      string
	simulated bool
}

// entry is a device with the Info it had when last enumerated, so diffs do
// not depend on drivers returning the same value twice.
type entry struct {
	dev  Device
	info Info
}

// NewRegistry validates opts and returns a registry that has not enumerated
// anything yet; call Run (or Rescan) to fill it.
func NewRegistry(opts RegistryOptions) (*Registry, error) {
	mode := opts.Mode
	if mode == "" {
		mode = SimAuto
	}
	switch mode {
	case SimAuto, SimAlways, SimNever:
	default:
		return nil, fmt.Errorf("registry options: Mode %q is not one of %q, %q, %q", opts.Mode, SimAuto, SimAlways, SimNever)
	}
	if mode == SimAlways && opts.Simulated == nil {
		return nil, fmt.Errorf("registry options: Mode %q needs a Simulated driver", mode)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{
		mode:       mode,
		log:        log,
		watchRetry: defaultWatchRetry,
		ready:      make(chan struct{}),
		found:      make(map[int][]entry),
		current:    make(map[string]entry),
		subs:       make(map[*subscription]struct{}),
	}
	names := make(map[string]bool)
	add := func(field string, d Driver, simulated, always bool) error {
		if d == nil {
			return fmt.Errorf("registry options: %s is nil", field)
		}
		name := d.Name()
		if names[name] {
			return fmt.Errorf("registry options: %s: driver name %q is used twice", field, name)
		}
		names[name] = true
		// Drivers the mode excludes are still validated, so a config error
		// shows up whichever mode the device happens to boot in.
		if !always && ((simulated && mode == SimNever) || (!simulated && mode == SimAlways)) {
			return nil
		}
		r.sources = append(r.sources, source{driver: d, name: name, simulated: simulated})
		return nil
	}
	for i, d := range opts.Drivers {
		if err := add(fmt.Sprintf("Drivers[%d]", i), d, false, false); err != nil {
			return nil, err
		}
	}
	for i, d := range opts.Always {
		if err := add(fmt.Sprintf("Always[%d]", i), d, false, true); err != nil {
			return nil, err
		}
	}
	if opts.Simulated != nil {
		if err := add("Simulated", opts.Simulated, true, false); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Run enumerates every driver, closes Ready, then follows hotplug through the
// drivers that implement Watcher, re-enumerating a driver whenever it reports
// a change. It returns nil when ctx is done, after every goroutine it started
// has ended. Run may not be called twice at the same time.
func (r *Registry) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("registry: run: already running")
	}
	defer r.running.Store(false)

	// Changes are recorded per source and signalled through a one-slot
	// channel, so a burst of hotplug events costs one enumeration per driver.
	var (
		dirtyMu sync.Mutex
		dirty   = make(map[int]bool)
		wake    = make(chan struct{}, 1)
	)
	notify := func(i int) {
		dirtyMu.Lock()
		dirty[i] = true
		dirtyMu.Unlock()
		select {
		case wake <- struct{}{}:
		default:
		}
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // runs before wg.Wait: stops the watchers on every return path

	// Watchers start before the first enumeration so that a device plugged
	// in while it runs is not missed: it marks its driver dirty and is
	// picked up by the loop below.
	for i, src := range r.sources {
		if w, ok := src.driver.(Watcher); ok {
			wg.Go(func() { r.watch(ctx, src, w, func() { notify(i) }) })
		}
	}

	_ = r.scan(ctx, r.allSources()) // failures are logged per driver
	r.markReady()

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		}
		dirtyMu.Lock()
		var which []int
		for i := range dirty {
			which = append(which, i)
		}
		clear(dirty)
		dirtyMu.Unlock()
		slices.Sort(which)
		_ = r.scan(ctx, which)
	}
}

// watch runs one driver's Watch until ctx is done, restarting it after
// watchRetry if it fails, because losing hotplug silently would leave the
// room with stale devices until the next reboot.
func (r *Registry) watch(ctx context.Context, src source, w Watcher, changed func()) {
	for {
		err := w.Watch(ctx, changed)
		if ctx.Err() != nil {
			return
		}
		r.log.Error("hotplug watch ended; restarting", "driver", src.name, "err", err, "retry", r.watchRetry)
		// Events may have been lost while the watch was down.
		changed()
		t := time.NewTimer(r.watchRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Ready is closed once the first enumeration has finished (successfully or
// not), whether Run or Rescan did it.
func (r *Registry) Ready() <-chan struct{} { return r.ready }

func (r *Registry) markReady() { r.readyOnce.Do(func() { close(r.ready) }) }

// Rescan enumerates every driver now. Drivers that fail keep their previous
// devices; their errors are logged and returned joined.
func (r *Registry) Rescan(ctx context.Context) error {
	err := r.scan(ctx, r.allSources())
	r.markReady()
	return err
}

func (r *Registry) allSources() []int {
	all := make([]int, len(r.sources))
	for i := range all {
		all[i] = i
	}
	return all
}

// scan enumerates the given sources and publishes the difference.
func (r *Registry) scan(ctx context.Context, which []int) error {
	r.scanMu.Lock()
	defer r.scanMu.Unlock()

	var errs []error
	results := make(map[int][]entry, len(which))
	for _, i := range which {
		src := r.sources[i]
		devs, err := src.driver.Enumerate(ctx)
		if err != nil {
			err = fmt.Errorf("enumerate %s devices: %w", src.name, err)
			errs = append(errs, err)
			if ctx.Err() == nil {
				r.log.Warn("enumeration failed; keeping the driver's previous devices", "driver", src.name, "err", err)
			}
			continue
		}
		entries := make([]entry, 0, len(devs))
		for _, d := range devs {
			if d == nil {
				r.log.Warn("driver enumerated a nil device; ignoring it", "driver", src.name)
				continue
			}
			info := d.Info()
			if info.ID == "" {
				r.log.Warn("driver enumerated a device without an ID; ignoring it", "driver", src.name, "name", info.Name)
				continue
			}
			entries = append(entries, entry{dev: d, info: info})
		}
		results[i] = entries
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	for i, entries := range results {
		r.found[i] = entries
	}
	next := r.selectLocked()
	changes := diff(r.current, next)
	r.current = next
	for _, c := range changes {
		info := c.Device.Info()
		r.log.Debug("device "+string(c.Type), "id", info.ID, "kind", info.Kind, "driver", info.Driver)
		r.publishLocked(c)
	}
	return errors.Join(errs...)
}

// selectLocked applies the simulation mode to the last enumerations.
func (r *Registry) selectLocked() map[string]entry {
	realKinds := make(map[Kind]bool)
	for i, src := range r.sources {
		if !src.simulated {
			for _, e := range r.found[i] {
				realKinds[e.info.Kind] = true
			}
		}
	}
	out := make(map[string]entry)
	for i, src := range r.sources {
		for _, e := range r.found[i] {
			if src.simulated && r.mode == SimAuto && realKinds[e.info.Kind] {
				continue
			}
			if prev, dup := out[e.info.ID]; dup {
				r.log.Warn("two drivers report the same device ID; keeping the first",
					"id", e.info.ID, "kept", prev.info.Driver, "ignored", src.name)
				continue
			}
			out[e.info.ID] = e
		}
	}
	return out
}

// diff lists removals, then additions, then changes, each sorted like
// Devices, so a real camera replacing the simulated one reads as
// "removed sim:camera0, added v4l2:…".
func diff(prev, next map[string]entry) []Change {
	var removed, added, changed []entry
	for id, e := range prev {
		if _, ok := next[id]; !ok {
			removed = append(removed, e)
		}
	}
	for id, e := range next {
		p, ok := prev[id]
		switch {
		case !ok:
			added = append(added, e)
		case p.info != e.info:
			changed = append(changed, e)
		}
	}
	var out []Change
	for _, group := range []struct {
		t  ChangeType
		es []entry
	}{{ChangeRemoved, removed}, {ChangeAdded, added}, {ChangeChanged, changed}} {
		slices.SortFunc(group.es, compareEntries)
		for _, e := range group.es {
			out = append(out, Change{Type: group.t, Device: e.dev})
		}
	}
	return out
}

func compareEntries(a, b entry) int {
	return cmp.Or(cmp.Compare(a.info.Kind, b.info.Kind), cmp.Compare(a.info.ID, b.info.ID))
}

// Devices returns the selected devices sorted by Kind, then ID.
func (r *Registry) Devices() []Device {
	r.mu.Lock()
	entries := make([]entry, 0, len(r.current))
	for _, e := range r.current {
		entries = append(entries, e)
	}
	r.mu.Unlock()
	slices.SortFunc(entries, compareEntries)
	out := make([]Device, len(entries))
	for i, e := range entries {
		out[i] = e.dev
	}
	return out
}

// Lookup returns the selected device with the given ID.
func (r *Registry) Lookup(id string) (Device, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.current[id]
	return e.dev, ok
}

// NotifyChanged tells subscribers that the device's state changed in a way
// enumeration cannot see, typically a control set through SetControl.
// Unknown IDs are ignored: the device may have been unplugged meanwhile.
func (r *Registry) NotifyChanged(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.current[id]
	if !ok {
		return
	}
	// Refresh the cached Info so the next enumeration does not report the
	// same change a second time.
	e.info = e.dev.Info()
	r.current[id] = e
	r.publishLocked(Change{Type: ChangeChanged, Device: e.dev})
}

// Subscribe returns a channel of the changes from now on, closed when ctx is
// done. Callers that also need the current set call Devices after Subscribe
// and treat events idempotently (an Added for a device already listed, a
// Removed for one never seen), which closes the gap between the two calls.
//
// A slow subscriber never blocks the registry and never loses the end state:
// once SubscriberBuffer changes are waiting, further changes to the same
// device are coalesced into one net change (added+changed → added,
// added+removed → nothing, removed+added → changed, …). The order of
// changes across devices is kept.
func (r *Registry) Subscribe(ctx context.Context) <-chan Change {
	s := &subscription{
		out:     make(chan Change, SubscriberBuffer),
		wake:    make(chan struct{}, 1),
		pending: make(map[string]pendingChange),
	}
	r.mu.Lock()
	r.subs[s] = struct{}{}
	r.mu.Unlock()
	// The delivery goroutine belongs to the subscriber's ctx: it ends, and
	// closes the channel, when ctx is done.
	go func() {
		defer close(s.out)
		defer func() {
			r.mu.Lock()
			delete(r.subs, s)
			r.mu.Unlock()
		}()
		s.deliver(ctx)
	}()
	return s.out
}

func (r *Registry) publishLocked(c Change) {
	for s := range r.subs {
		s.push(c)
	}
}

// subscription holds one subscriber's undelivered changes.
type subscription struct {
	out  chan Change
	wake chan struct{}

	mu       sync.Mutex
	inflight bool // deliver holds a popped change it has not sent yet
	seq      uint64
	pending  map[string]pendingChange // by device ID: the net change not yet sent
	order    []queued                 // first-pending order; entries whose seq no longer matches are stale
}

type pendingChange struct {
	c   Change
	seq uint64
}

type queued struct {
	id  string
	seq uint64
}

func (s *subscription) push(c Change) {
	id := c.Device.Info().ID
	s.mu.Lock()
	p, ok := s.pending[id]
	switch {
	case len(s.pending) == 0 && !s.inflight:
		// The fast path: nothing queued ahead of c, so it may go straight
		// into the channel, and coalescing happens only once that is full.
		select {
		case s.out <- c:
			s.mu.Unlock()
			return
		default:
		}
		fallthrough
	case !ok:
		s.seq++
		s.pending[id] = pendingChange{c: c, seq: s.seq}
		s.order = append(s.order, queued{id: id, seq: s.seq})
	default:
		if merged, keep := coalesce(p.c, c); keep {
			s.pending[id] = pendingChange{c: merged, seq: p.seq}
		} else {
			delete(s.pending, id)
		}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// coalesce merges change c into pending change p for the same device,
// returning the net change from what the subscriber last saw, or keep=false
// when there is none.
func coalesce(p, c Change) (merged Change, keep bool) {
	switch {
	case p.Type == ChangeAdded && c.Type == ChangeRemoved:
		return Change{}, false // never seen, now gone
	case p.Type == ChangeAdded:
		return Change{Type: ChangeAdded, Device: c.Device}, true
	case p.Type == ChangeRemoved && c.Type == ChangeAdded:
		// The subscriber still holds the old handle: tell it to re-read.
		return Change{Type: ChangeChanged, Device: c.Device}, true
	default:
		return c, true
	}
}

func (s *subscription) pop() (Change, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = false
	for len(s.order) > 0 {
		q := s.order[0]
		s.order = s.order[1:]
		if p, ok := s.pending[q.id]; ok && p.seq == q.seq {
			delete(s.pending, q.id)
			s.inflight = true
			return p.c, true
		}
	}
	s.order = nil // let the backing array go
	return Change{}, false
}

func (s *subscription) deliver(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		for {
			c, ok := s.pop()
			if !ok {
				break
			}
			select {
			case s.out <- c:
			case <-ctx.Done():
				return
			}
		}
	}
}
