package bootctl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/atriumroom/atrium/internal/atomicfile"
)

// The grubenv variables GRUBEnv and GRUBScript share. Values are a slot
// name, empty, or a single digit, so they never need GRUB's escapes.
const (
	grubVarDefault   = "atrium_default"    // "a" or "b"; unset means "a"
	grubVarTry       = "atrium_try"        // slot on trial, empty for none
	grubVarTriesLeft = "atrium_tries_left" // "0".."9"
	grubVarTriesDone = "atrium_tries_done" // "0".."9"
	grubVarBad       = "atrium_bad"        // slot whose trial failed, or empty
)

// GRUBScript is the grub.cfg fragment that plays the loader's part for
// [GRUBEnv]: on every boot it takes a try from the slot on trial (GRUB
// script has no arithmetic, hence the spelled-out decrements), or, with no
// tries left, records the slot as bad and starts the default, and saves the
// counters before anything can fail. It selects the menu entry with id
// "atrium-a" or "atrium-b"; the image builder writes those entries, and
// each must pass "atrium.slot=<slot>" on the kernel command line so that the
// running system knows where it is ([SlotFromCmdline]). Example entry:
//
//	menuentry "Atrium (slot a)" --id atrium-a {
//		linux /a/vmlinuz root=PARTLABEL=root-a atrium.slot=a ro quiet
//		initrd /a/initrd.img
//	}
//
// save_env needs grubenv on a plain file system GRUB can write (not LVM,
// RAID or btrfs): keep it on the ESP or /boot.
const GRUBScript = `# Atrium A/B slot selection with boot counting; the OS side is
# ota/bootctl.GRUBEnv. Keep the two in step.
load_env atrium_default atrium_try atrium_tries_left atrium_tries_done atrium_bad
if [ "${atrium_default}" != "b" ]; then
  set atrium_default=a
fi
set atrium_slot="${atrium_default}"
if [ -n "${atrium_try}" ]; then
  if [ "${atrium_tries_left}" = 9 ]; then
    set atrium_tries_left=8
  elif [ "${atrium_tries_left}" = 8 ]; then
    set atrium_tries_left=7
  elif [ "${atrium_tries_left}" = 7 ]; then
    set atrium_tries_left=6
  elif [ "${atrium_tries_left}" = 6 ]; then
    set atrium_tries_left=5
  elif [ "${atrium_tries_left}" = 5 ]; then
    set atrium_tries_left=4
  elif [ "${atrium_tries_left}" = 4 ]; then
    set atrium_tries_left=3
  elif [ "${atrium_tries_left}" = 3 ]; then
    set atrium_tries_left=2
  elif [ "${atrium_tries_left}" = 2 ]; then
    set atrium_tries_left=1
  elif [ "${atrium_tries_left}" = 1 ]; then
    set atrium_tries_left=0
  else
    # No tries left: the trial failed. Remember the slot as bad and
    # boot the default.
    set atrium_bad="${atrium_try}"
    set atrium_try=
    set atrium_tries_left=0
    set atrium_tries_done=0
  fi
  if [ -n "${atrium_try}" ]; then
    set atrium_slot="${atrium_try}"
    if [ "${atrium_tries_done}" = 0 ]; then
      set atrium_tries_done=1
    elif [ "${atrium_tries_done}" = 1 ]; then
      set atrium_tries_done=2
    elif [ "${atrium_tries_done}" = 2 ]; then
      set atrium_tries_done=3
    elif [ "${atrium_tries_done}" = 3 ]; then
      set atrium_tries_done=4
    elif [ "${atrium_tries_done}" = 4 ]; then
      set atrium_tries_done=5
    elif [ "${atrium_tries_done}" = 5 ]; then
      set atrium_tries_done=6
    elif [ "${atrium_tries_done}" = 6 ]; then
      set atrium_tries_done=7
    elif [ "${atrium_tries_done}" = 7 ]; then
      set atrium_tries_done=8
    elif [ "${atrium_tries_done}" = 8 ]; then
      set atrium_tries_done=9
    fi
  fi
  save_env atrium_default atrium_try atrium_tries_left atrium_tries_done atrium_bad
fi
set default="atrium-${atrium_slot}"
`

// GRUBEnv is boot control through GRUB's environment block, read and
// counted down by [GRUBScript].
type GRUBEnv struct {
	path   string
	booted func(context.Context) (Slot, error)
	log    *slog.Logger

	mu sync.RWMutex // orders this value's read-modify-write cycles
}

// GRUBEnvConfig configures [NewGRUBEnv].
type GRUBEnvConfig struct {
	// Path is the grubenv file, e.g. /boot/efi/EFI/atrium/grubenv.
	Path string
	// Booted reports the running slot; nil reads /proc/cmdline
	// ([SlotFromCmdline]).
	Booted func(context.Context) (Slot, error)
	// Logger may be nil.
	Logger *slog.Logger
}

// NewGRUBEnv returns boot control over cfg.Path. A missing file reads as an
// empty environment, as GRUB's load_env sees it: default slot "a", no trial.
func NewGRUBEnv(cfg GRUBEnvConfig) (*GRUBEnv, error) {
	if cfg.Path == "" {
		return nil, errors.New("new grubenv boot control: no path")
	}
	g := &GRUBEnv{path: cfg.Path, booted: cfg.Booted, log: cfg.Logger}
	if g.booted == nil {
		g.booted = func(context.Context) (Slot, error) { return bootedFromProc("/proc/cmdline") }
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g, nil
}

// SlotFromCmdline finds "atrium.slot=<slot>" on a kernel command line. It
// returns "" without error when the parameter is absent (not booted by
// Atrium's grub.cfg) and [ErrUnknownSlot] when it names no slot.
func SlotFromCmdline(cmdline string) (Slot, error) {
	var found Slot
	for _, f := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(f, "atrium.slot=")
		if !ok {
			continue
		}
		s, err := ParseSlot(v)
		if err != nil {
			return "", fmt.Errorf("kernel command line: %w", err)
		}
		found = s // the kernel, too, lets the last one win
	}
	return found, nil
}

func bootedFromProc(path string) (Slot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return SlotFromCmdline(string(b))
}

// load reads the block and our variables from it.
func (g *GRUBEnv) load() (envBlock, loaderState, error) {
	data, err := os.ReadFile(g.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, loaderState{Default: SlotA}, nil
	}
	if err != nil {
		return nil, loaderState{}, err
	}
	env, err := parseEnvBlock(data)
	if err != nil {
		return nil, loaderState{}, fmt.Errorf("%s: %w: %w", g.path, ErrCorrupt, err)
	}
	st, err := stateFromEnv(env)
	if err != nil {
		return nil, loaderState{}, fmt.Errorf("%s: %w: %w", g.path, ErrCorrupt, err)
	}
	return env, st, nil
}

func stateFromEnv(env envBlock) (loaderState, error) {
	var st loaderState
	st.Default = SlotA // as GRUBScript does when unset
	if v, ok := env.get(grubVarDefault); ok {
		st.Default = Slot(v)
	}
	st.Try = Slot(get(env, grubVarTry))
	st.Bad = Slot(get(env, grubVarBad))
	for _, f := range []struct {
		name string
		n    *int
	}{{grubVarTriesLeft, &st.TriesLeft}, {grubVarTriesDone, &st.TriesDone}} {
		v := get(env, f.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return st, fmt.Errorf("%s=%q is not a number", f.name, v)
		}
		*f.n = n
	}
	if err := st.check(); err != nil {
		return st, err
	}
	return st, nil
}

func get(env envBlock, name string) string {
	v, _ := env.get(name)
	return v
}

func (g *GRUBEnv) store(env envBlock, st loaderState) error {
	env = env.set(grubVarDefault, string(st.Default))
	env = env.set(grubVarTry, string(st.Try))
	env = env.set(grubVarTriesLeft, strconv.Itoa(st.TriesLeft))
	env = env.set(grubVarTriesDone, strconv.Itoa(st.TriesDone))
	env = env.set(grubVarBad, string(st.Bad))
	data, err := env.encode()
	if err != nil {
		return err
	}
	// A new file rather than GRUB's in-place rewrite: a power cut must
	// leave the old block or the new one. GRUB finds the file again by
	// name, so the changed inode does not matter to it. grubenv usually
	// lives on the ESP, whose FAT takes its modes from the mount.
	return atomicfile.WriteKeepMode(g.path, data)
}

// Status implements [Control].
func (g *GRUBEnv) Status(ctx context.Context) (Status, error) {
	if err := ctx.Err(); err != nil {
		return Status{}, fmt.Errorf("boot status: %w", err)
	}
	booted, err := g.booted(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("boot status: booted slot: %w", err)
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, st, err := g.load()
	if err != nil {
		return Status{}, fmt.Errorf("boot status: %w", err)
	}
	return st.status(booted), nil
}

func (g *GRUBEnv) update(ctx context.Context, op string, f func(loaderState) (loaderState, error)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	env, st, err := g.load()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	ns, err := f(st)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := g.store(env, ns); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	g.log.Debug("grubenv updated", "op", op, "default", ns.Default, "try", ns.Try, "tries_left", ns.TriesLeft, "bad", ns.Bad)
	return nil
}

// TryNext implements [Control].
func (g *GRUBEnv) TryNext(ctx context.Context, s Slot, tries int) error {
	return g.update(ctx, "try slot next", func(st loaderState) (loaderState, error) { return st.tryNext(s, tries) })
}

// Bless implements [Control].
func (g *GRUBEnv) Bless(ctx context.Context, s Slot) error {
	booted, err := g.booted(ctx)
	if err != nil {
		return fmt.Errorf("bless slot: booted slot: %w", err)
	}
	return g.update(ctx, "bless slot", func(st loaderState) (loaderState, error) { return st.bless(s, booted) })
}

// Reject implements [Control].
func (g *GRUBEnv) Reject(ctx context.Context, s Slot) error {
	return g.update(ctx, "reject slot", func(st loaderState) (loaderState, error) { return st.reject(s) })
}
