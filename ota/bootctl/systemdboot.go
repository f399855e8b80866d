package bootctl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/atriumroom/atrium/internal/atomicfile"
)

// SystemdBoot is boot control through systemd-boot's boot counting
// (Boot Loader Specification, "Boot counting"): the loader renames an
// entry "NAME+LEFT-DONE.conf" to "NAME+(LEFT-1)-(DONE+1).conf" each time it
// starts it, and sorts entries with no tries left after all others.
//
// Entries live in ESP/loader/entries and are named
//
//	atrium-a.conf, atrium-b.conf          blessed, not counted
//	atrium-try-b+3-0.conf                 on trial: 3 tries left, 0 done
//	atrium-try-b+0-3.conf                 tries used up, or rejected: bad
//	atrium-try-b.conf                     blessed, not yet renamed back
//
// The "try-" prefix is what makes a trial boot first: systemd-boot orders
// entries by id, newest (highest) first, and "atrium-try-…" sorts above
// both "atrium-a…" and "atrium-b…", so either slot can be tried. While no
// trial runs, loader.conf names the default exactly ("default
// atrium-a.conf"); during a trial it says "default atrium-*", so the
// loader takes the first entry that still has tries and, once the trial
// entry has none left and sorts last, the blessed one.
//
// Files in loader/entries that do not start with "atrium-" are ignored;
// the ESP is expected to hold Atrium's entries only. systemd-bless-boot
// should stay disabled: the health gate blesses through [SystemdBoot.Bless]
// (its renaming would still be understood, as "atrium-try-b.conf").
type SystemdBoot struct {
	esp      string
	selected func(context.Context) (string, error)
	log      *slog.Logger

	mu sync.RWMutex // orders this value's read-modify-write cycles
}

// SystemdBootConfig configures [NewSystemdBoot].
type SystemdBootConfig struct {
	// ESP is where the EFI System Partition is mounted (holding
	// loader/loader.conf and loader/entries).
	ESP string
	// SelectedEntry returns the id of the entry the loader started ("" if
	// unknown); nil reads the LoaderEntrySelected EFI variable from
	// /sys/firmware/efi/efivars ([EFIVarEntrySelected]).
	SelectedEntry func(context.Context) (string, error)
	// Logger may be nil.
	Logger *slog.Logger
}

// NewSystemdBoot returns boot control over the ESP at cfg.ESP.
func NewSystemdBoot(cfg SystemdBootConfig) (*SystemdBoot, error) {
	if cfg.ESP == "" {
		return nil, errors.New("new systemd-boot control: no ESP path")
	}
	c := &SystemdBoot{esp: cfg.ESP, selected: cfg.SelectedEntry, log: cfg.Logger}
	if c.selected == nil {
		c.selected = EFIVarEntrySelected("/sys/firmware/efi/efivars")
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

const entryPrefix = "atrium-"

// entryName matches our entry names; slot is checked separately so that a
// wrong one gets its own error.
var entryName = regexp.MustCompile(`^atrium-(try-)?([^+.]*)(?:\+([0-9]+)(?:-([0-9]+))?)?\.conf$`)

// bootEntry is one parsed entry file name.
type bootEntry struct {
	name       string
	slot       Slot
	try        bool
	counted    bool
	left, done int
}

// bad reports whether the loader sorts the entry last: counted, no tries.
func (e bootEntry) bad() bool { return e.counted && e.left == 0 }

func plainName(s Slot) string { return entryPrefix + string(s) + ".conf" }
func tryName(s Slot) string   { return entryPrefix + "try-" + string(s) + ".conf" }
func countedName(s Slot, left, done int) string {
	return fmt.Sprintf("%stry-%s+%d-%d.conf", entryPrefix, s, left, done)
}

// parseEntryName parses an entry file name. ours is false for names
// without our prefix; err is set for ours that do not follow the scheme.
func parseEntryName(name string) (e bootEntry, ours bool, err error) {
	lower := strings.ToLower(name) // the loader compares ids case-folded
	if !strings.HasPrefix(lower, entryPrefix) {
		return e, false, nil
	}
	m := entryName.FindStringSubmatch(lower)
	if m == nil {
		return e, true, fmt.Errorf("entry %q does not follow the atrium-[try-]SLOT[+LEFT[-DONE]].conf scheme", name)
	}
	slot, err := ParseSlot(m[2])
	if err != nil {
		return e, true, fmt.Errorf("entry %q: %w", name, err)
	}
	e = bootEntry{name: name, slot: slot, try: m[1] != ""}
	if m[3] != "" {
		e.counted = true
		if e.left, err = strconv.Atoi(m[3]); err != nil {
			return e, true, fmt.Errorf("entry %q: tries left: %w", name, err)
		}
		if m[4] != "" {
			if e.done, err = strconv.Atoi(m[4]); err != nil {
				return e, true, fmt.Errorf("entry %q: tries done: %w", name, err)
			}
		}
	}
	return e, true, nil
}

// espView is one consistent reading of the ESP.
type espView struct {
	entries map[Slot]bootEntry
	exact   Slot // loader.conf "default atrium-X.conf"; "" for "atrium-*"
	conf    []byte
	booted  Slot
}

func (c *SystemdBoot) entriesDir() string { return filepath.Join(c.esp, "loader", "entries") }
func (c *SystemdBoot) confPath() string   { return filepath.Join(c.esp, "loader", "loader.conf") }

func (c *SystemdBoot) read(ctx context.Context) (espView, error) {
	v := espView{entries: map[Slot]bootEntry{}}
	des, err := os.ReadDir(c.entriesDir())
	if err != nil {
		return v, err
	}
	for _, de := range des {
		if de.IsDir() || !strings.HasSuffix(strings.ToLower(de.Name()), ".conf") {
			continue // the loader skips these too
		}
		e, ours, err := parseEntryName(de.Name())
		if err != nil {
			return v, fmt.Errorf("%s: %w: %w", c.entriesDir(), ErrCorrupt, err)
		}
		if !ours {
			continue
		}
		if old, dup := v.entries[e.slot]; dup {
			return v, fmt.Errorf("%s: %w: slot %s has two entries, %q and %q",
				c.entriesDir(), ErrCorrupt, e.slot, old.name, e.name)
		}
		v.entries[e.slot] = e
	}
	v.conf, err = os.ReadFile(c.confPath())
	if err != nil {
		return v, err
	}
	def, err := defaultLine(v.conf)
	if err != nil {
		return v, fmt.Errorf("%s: %w: %w", c.confPath(), ErrCorrupt, err)
	}
	switch strings.ToLower(def) {
	case entryPrefix + "*":
	default:
		e, ours, err := parseEntryName(def)
		if err != nil || !ours || e.try || e.counted {
			return v, fmt.Errorf("%s: %w: default %q is neither %q nor %q",
				c.confPath(), ErrCorrupt, def, plainName("SLOT"), entryPrefix+"*")
		}
		v.exact = e.slot
	}
	id, err := c.selected(ctx)
	if err != nil {
		return v, fmt.Errorf("selected boot entry: %w", err)
	}
	if id != "" {
		e, ours, err := parseEntryName(id)
		if err != nil {
			return v, fmt.Errorf("selected boot entry: %w: %w", ErrCorrupt, err)
		}
		if ours {
			v.booted = e.slot
		} else {
			c.log.Debug("booted entry is not Atrium's", "entry", id)
		}
	}
	return v, nil
}

// defaultLine returns the value of loader.conf's default key.
func defaultLine(conf []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		key, val := confKey(sc.Text())
		if key == "default" {
			if val == "" {
				return "", errors.New("empty default line")
			}
			return val, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no default line")
}

// confKey splits a loader.conf line into key and value; the loader
// separates them by spaces or tabs.
func confKey(line string) (key, val string) {
	line = strings.TrimSpace(line)
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		return line, ""
	}
	return line[:i], strings.TrimSpace(line[i:])
}

// withDefault returns conf with its default line set to value, keeping
// every other line.
func withDefault(conf []byte, value string) []byte {
	var out bytes.Buffer
	done := false
	for _, line := range strings.SplitAfter(string(conf), "\n") {
		if key, _ := confKey(line); key == "default" {
			if !done {
				out.WriteString("default " + value + "\n")
				done = true
			}
			continue
		}
		out.WriteString(line)
	}
	if !done {
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			out.WriteByte('\n')
		}
		out.WriteString("default " + value + "\n")
	}
	return out.Bytes()
}

// pick returns the entry the loader starts from cands: with an exact
// default, that entry if present; otherwise the first in the loader's
// order (entries with no tries left last, then id descending; for our
// names plain byte order agrees with the loader's version compare).
func pick(cands []bootEntry, exact Slot) (bootEntry, bool) {
	if len(cands) == 0 {
		return bootEntry{}, false
	}
	if exact != "" {
		for _, e := range cands {
			if strings.ToLower(e.name) == plainName(exact) {
				return e, true
			}
		}
	}
	s := slices.Clone(cands)
	slices.SortFunc(s, func(a, b bootEntry) int {
		if a.bad() != b.bad() {
			if a.bad() {
				return 1
			}
			return -1
		}
		return -strings.Compare(strings.ToLower(a.name), strings.ToLower(b.name))
	})
	return s[0], true
}

func (v espView) all() []bootEntry {
	var out []bootEntry
	for _, s := range []Slot{SlotA, SlotB} {
		if e, ok := v.entries[s]; ok {
			out = append(out, e)
		}
	}
	return out
}

// status derives the loader's view. Default is what the loader would start
// if every counted entry were out of tries.
func (v espView) status() (Status, error) {
	var blessed []bootEntry
	for _, e := range v.all() {
		if !e.counted {
			blessed = append(blessed, e)
		}
	}
	def, ok := pick(blessed, v.exact)
	if !ok {
		return Status{}, fmt.Errorf("%w: no blessed entry to fall back to", ErrCorrupt)
	}
	st := Status{Booted: v.booted, Default: def.slot}
	o, ok := v.entries[def.slot.Other()]
	if !ok || !o.counted {
		return st, nil
	}
	next, _ := pick(v.all(), v.exact)
	switch {
	case v.exact == "" && o.left > 0 && next.slot == o.slot,
		// On the last try the entry already reads +0, but the trial is
		// still on until the health gate decides or the next boot.
		v.exact == "" && o.left == 0 && v.booted == o.slot:
		st.Trying, st.TriesLeft, st.TriesDone = o.slot, o.left, o.done
	case o.left == 0:
		st.Bad = []Slot{o.slot}
	}
	return st, nil
}

// Status implements [Control].
func (c *SystemdBoot) Status(ctx context.Context) (Status, error) {
	if err := ctx.Err(); err != nil {
		return Status{}, fmt.Errorf("boot status: %w", err)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, err := c.read(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("boot status: %w", err)
	}
	st, err := v.status()
	if err != nil {
		return Status{}, fmt.Errorf("boot status: %s: %w", c.esp, err)
	}
	return st, nil
}

// rename renames an entry and syncs the directory so the rename survives
// a power cut.
func (c *SystemdBoot) rename(from, to string) error {
	if from == to {
		return nil
	}
	dir := c.entriesDir()
	if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	c.log.Debug("boot entry renamed", "from", from, "to", to)
	return nil
}

func (c *SystemdBoot) setDefault(v *espView, value string) error {
	conf := withDefault(v.conf, value)
	if bytes.Equal(conf, v.conf) {
		return nil
	}
	// The ESP is FAT: modes come from the mount, and chmod by roomd (not
	// the mount's owner) fails.
	if err := atomicfile.WriteKeepMode(c.confPath(), conf); err != nil {
		return err
	}
	v.conf = conf
	return nil
}

// makeDefault blesses s's entry in three steps, each of which leaves a
// state in which the loader starts s: uncounted "try-" name (sorts first
// under "atrium-*"), exact default naming the plain name (no match yet, so
// the loader takes its first entry, the same one), plain name.
func (c *SystemdBoot) makeDefault(v *espView, s Slot) error {
	e := v.entries[s]
	if strings.ToLower(e.name) != plainName(s) {
		if err := c.rename(e.name, tryName(s)); err != nil {
			return err
		}
	}
	if err := c.setDefault(v, plainName(s)); err != nil {
		return err
	}
	if strings.ToLower(e.name) != plainName(s) {
		if err := c.rename(tryName(s), plainName(s)); err != nil {
			return err
		}
	}
	e.name, e.try, e.counted, e.left, e.done = plainName(s), false, false, 0, 0
	v.entries[s] = e
	v.exact = s
	return nil
}

func (c *SystemdBoot) update(ctx context.Context, op string, f func(v *espView, st Status) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, err := c.read(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	st, err := v.status()
	if err != nil {
		return fmt.Errorf("%s: %s: %w", op, c.esp, err)
	}
	if err := f(&v, st); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// TryNext implements [Control]: the slot's entry becomes
// "atrium-try-SLOT+TRIES-0.conf", then loader.conf says "default atrium-*".
// In that order: a power cut between leaves the exact default in charge.
func (c *SystemdBoot) TryNext(ctx context.Context, s Slot, tries int) error {
	if _, err := ParseSlot(string(s)); err != nil {
		return fmt.Errorf("try slot next: %w", err)
	}
	if err := checkTries(tries); err != nil {
		return fmt.Errorf("try slot next: %w", err)
	}
	return c.update(ctx, "try slot next", func(v *espView, st Status) error {
		if s == st.Default {
			return fmt.Errorf("slot %s: %w", s, ErrIsDefault)
		}
		e, ok := v.entries[s]
		if !ok {
			return fmt.Errorf("slot %s: %w", s, ErrNoEntry)
		}
		// The fallback must sort below the trial: settle it as a plain
		// entry first (it may still carry a "try-" name).
		if strings.ToLower(v.entries[st.Default].name) != plainName(st.Default) {
			if err := c.makeDefault(v, st.Default); err != nil {
				return err
			}
		}
		if err := c.rename(e.name, countedName(s, tries, 0)); err != nil {
			return err
		}
		return c.setDefault(v, entryPrefix+"*")
	})
}

// Bless implements [Control], as systemd-bless-boot would plus making the
// slot the default.
func (c *SystemdBoot) Bless(ctx context.Context, s Slot) error {
	if _, err := ParseSlot(string(s)); err != nil {
		return fmt.Errorf("bless slot: %w", err)
	}
	return c.update(ctx, "bless slot", func(v *espView, st Status) error {
		if s != v.booted {
			return fmt.Errorf("bless slot %s while %q runs: %w", s, v.booted, ErrNotBooted)
		}
		e, ok := v.entries[s]
		if !ok {
			return fmt.Errorf("slot %s: %w", s, ErrNoEntry)
		}
		if st.Default == s && strings.ToLower(e.name) == plainName(s) {
			return nil
		}
		return c.makeDefault(v, s)
	})
}

// Reject implements [Control]: the entry becomes "+0-DONE", which the
// loader sorts last, then loader.conf names the default exactly again.
func (c *SystemdBoot) Reject(ctx context.Context, s Slot) error {
	if _, err := ParseSlot(string(s)); err != nil {
		return fmt.Errorf("reject slot: %w", err)
	}
	return c.update(ctx, "reject slot", func(v *espView, st Status) error {
		if s == st.Default {
			return fmt.Errorf("slot %s: %w", s, ErrIsDefault)
		}
		e, ok := v.entries[s]
		if !ok {
			return fmt.Errorf("slot %s: %w", s, ErrNoEntry)
		}
		if err := c.rename(e.name, countedName(s, 0, e.done)); err != nil {
			return err
		}
		return c.setDefault(v, plainName(st.Default))
	})
}

// BootFiles are where a slot's boot entry loads its kernel and initramfs
// from: absolute paths under the ESP.
type BootFiles struct {
	Kernel string
	Initrd string
}

// BootFiles reads s's entry and returns the files its "linux" and (first)
// "initrd" lines name. An update copies the new image's kernel and
// initramfs there before TryNext, so the layout on the ESP stays the
// entry's business (rootfs/disk writes it). A path that is missing, or
// that would leave the ESP, is ErrCorrupt.
func (c *SystemdBoot) BootFiles(ctx context.Context, s Slot) (BootFiles, error) {
	if _, err := ParseSlot(string(s)); err != nil {
		return BootFiles{}, fmt.Errorf("boot files: %w", err)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, err := c.read(ctx)
	if err != nil {
		return BootFiles{}, fmt.Errorf("boot files of slot %s: %w", s, err)
	}
	e, ok := v.entries[s]
	if !ok {
		return BootFiles{}, fmt.Errorf("boot files of slot %s: %w", s, ErrNoEntry)
	}
	path := filepath.Join(c.entriesDir(), e.name)
	data, err := os.ReadFile(path)
	if err != nil {
		return BootFiles{}, fmt.Errorf("boot files of slot %s: %w", s, err)
	}
	var bf BootFiles
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val := confKey(sc.Text())
		switch {
		case key == "linux" && bf.Kernel == "":
			bf.Kernel, err = c.espPath(val)
		case key == "initrd" && bf.Initrd == "":
			bf.Initrd, err = c.espPath(val)
		}
		if err != nil {
			return BootFiles{}, fmt.Errorf("boot files of slot %s: %s: %w: %w", s, path, ErrCorrupt, err)
		}
	}
	if err := sc.Err(); err != nil {
		return BootFiles{}, fmt.Errorf("boot files of slot %s: %s: %w", s, path, err)
	}
	if bf.Kernel == "" || bf.Initrd == "" {
		return BootFiles{}, fmt.Errorf("boot files of slot %s: %s: %w: want a linux and an initrd line", s, path, ErrCorrupt)
	}
	return bf, nil
}

// espPath turns an entry's path (relative to the ESP's root, "/" or "\"
// separated) into an absolute path under the ESP.
func (c *SystemdBoot) espPath(p string) (string, error) {
	rel := strings.TrimLeft(strings.ReplaceAll(p, `\`, "/"), "/")
	if rel == "" || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("path %q is not a file on the ESP", p)
	}
	return filepath.Join(c.esp, rel), nil
}

// SetOptions rewrites the kernel options of s's entry: edit gets the
// arguments of its "options" lines (the loader joins them with spaces)
// and returns the new ones, written as one "options" line where the first
// was; every other line and the entry's boot-counting name stay. The file
// is replaced atomically. The default slot's entry is refused
// (ErrIsDefault): it is what the loader falls back to, and an update only
// prepares the other slot. An update stages the new image's root
// arguments this way before TryNext (ota/bootfiles).
func (c *SystemdBoot) SetOptions(ctx context.Context, s Slot, edit func([]string) []string) error {
	if _, err := ParseSlot(string(s)); err != nil {
		return fmt.Errorf("set boot options: %w", err)
	}
	return c.update(ctx, "set boot options of slot "+string(s), func(v *espView, st Status) error {
		if s == st.Default {
			return fmt.Errorf("slot %s: %w", s, ErrIsDefault)
		}
		e, ok := v.entries[s]
		if !ok {
			return fmt.Errorf("slot %s: %w", s, ErrNoEntry)
		}
		path := filepath.Join(c.entriesDir(), e.name)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var old []string
		lines := strings.SplitAfter(string(data), "\n")
		for _, line := range lines {
			if key, val := confKey(line); key == "options" {
				old = append(old, strings.Fields(val)...)
			}
		}
		opts := edit(slices.Clone(old))
		for _, o := range opts {
			if o == "" || strings.ContainsAny(o, " \t\r\n") {
				return fmt.Errorf("slot %s: kernel argument %q is empty or holds white space", s, o)
			}
		}
		if slices.Equal(opts, old) {
			return nil
		}
		var out strings.Builder
		placed := false
		for _, line := range lines {
			if key, _ := confKey(line); key == "options" {
				if !placed {
					out.WriteString("options " + strings.Join(opts, " ") + "\n")
					placed = true
				}
				continue
			}
			out.WriteString(line)
		}
		if !placed {
			if out.Len() > 0 && !strings.HasSuffix(out.String(), "\n") {
				out.WriteByte('\n')
			}
			out.WriteString("options " + strings.Join(opts, " ") + "\n")
		}
		// FAT: the mount decides modes (see setDefault).
		if err := atomicfile.WriteKeepMode(path, []byte(out.String())); err != nil {
			return err
		}
		c.log.Debug("boot options set", "slot", s, "entry", e.name, "options", strings.Join(opts, " "))
		return nil
	})
}
