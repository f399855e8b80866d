package bootctl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
)

func efiBytes(attrs uint32, s string, nul bool) []byte {
	b := []byte{byte(attrs), byte(attrs >> 8), byte(attrs >> 16), byte(attrs >> 24)}
	u := utf16.Encode([]rune(s))
	if nul {
		u = append(u, 0)
	}
	for _, c := range u {
		b = append(b, byte(c), byte(c>>8))
	}
	return b
}

func TestParseEFIVarString(t *testing.T) {
	// What efivarfs shows for systemd-boot's variable: attributes 0x06
	// (boot service and runtime access), then UTF-16LE with a NUL.
	raw := []byte{0x06, 0, 0, 0, 'a', 0, 't', 0, 'r', 0, 'i', 0, 'u', 0, 'm', 0, '-', 0, 'b', 0, '+', 0, '2', 0, '-', 0, '1', 0,
		'.', 0, 'c', 0, 'o', 0, 'n', 0, 'f', 0, 0, 0}
	got, err := ParseEFIVarString(raw)
	if err != nil || got != "atrium-b+2-1.conf" {
		t.Fatalf("got %q, %v", got, err)
	}
	if got, err := ParseEFIVarString(efiBytes(7, "Ωmega", false)); err != nil || got != "Ωmega" {
		t.Fatalf("no NUL, non-ASCII: got %q, %v", got, err)
	}
	for name, b := range map[string][]byte{
		"short header":   {6, 0, 0},
		"odd length":     append(efiBytes(6, "ab", true), 'x'),
		"empty":          efiBytes(6, "", true),
		"inner NUL":      efiBytes(6, "a\x00b", true),
		"lone surrogate": append([]byte{6, 0, 0, 0}, 0x00, 0xd8, 'a', 0),
	} {
		if s, err := ParseEFIVarString(b); err == nil {
			t.Errorf("%s: got %q, want an error", name, s)
		}
	}
}

func TestEFIVarEntrySelected(t *testing.T) {
	dir := t.TempDir()
	read := EFIVarEntrySelected(dir)
	if s, err := read(context.Background()); err != nil || s != "" {
		t.Fatalf("missing variable: %q, %v", s, err)
	}
	if err := os.WriteFile(filepath.Join(dir, LoaderEntrySelectedVar), efiBytes(6, "atrium-a.conf", true), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := read(context.Background()); err != nil || s != "atrium-a.conf" {
		t.Fatalf("got %q, %v", s, err)
	}
}

func TestSlotFromCmdline(t *testing.T) {
	for cmdline, want := range map[string]Slot{
		"BOOT_IMAGE=/a/vmlinuz root=PARTLABEL=root-a atrium.slot=a ro": SlotA,
		"atrium.slot=a atrium.slot=b\n":                                SlotB,
		"quiet splash":                                                 "",
	} {
		if got, err := SlotFromCmdline(cmdline); err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", cmdline, got, err, want)
		}
	}
	if _, err := SlotFromCmdline("atrium.slot=c"); !errors.Is(err, ErrUnknownSlot) {
		t.Fatalf("atrium.slot=c: %v, want ErrUnknownSlot", err)
	}
}

func TestEnvBlockRoundTrip(t *testing.T) {
	// A foreign variable with escapes (a backslash, an escaped newline)
	// must come back byte for byte.
	body := envHeader + "saved_entry=1>2\nnote=x\\\\y\\\nz\n"
	in := []byte(pad(body))
	env, err := parseEnvBlock(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(env) != 2 || env[1].name != "note" || env[1].raw != "x\\\\y\\\nz" {
		t.Fatalf("parsed %#v", env)
	}
	out, err := env.encode()
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("round trip changed the block (%v):\n%q", err, out)
	}
	env = env.set("atrium_try", "b").set("saved_entry", "0")
	out, _ = env.encode()
	if len(out) != envBlockSize || !strings.HasPrefix(string(out), envHeader+"saved_entry=0\nnote=") ||
		!strings.Contains(string(out), "\natrium_try=b\n#") {
		t.Fatalf("after set:\n%q", out)
	}
	big := envBlock{{name: "x", raw: strings.Repeat("y", envBlockSize)}}
	if _, err := big.encode(); err == nil {
		t.Fatal("an oversized block was encoded")
	}
	runaway := envHeader + "x=unterminated"
	runaway += strings.Repeat("z", envBlockSize-len(runaway))
	if _, err := parseEnvBlock([]byte(runaway)); err == nil {
		t.Fatal("a value running off the block was accepted")
	}
}

func TestGRUBScriptNamesEveryVariable(t *testing.T) {
	for _, v := range []string{grubVarDefault, grubVarTry, grubVarTriesLeft, grubVarTriesDone, grubVarBad} {
		for _, use := range []string{"load_env", "save_env"} {
			line := ""
			for _, l := range strings.Split(GRUBScript, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), use+" ") {
					line = l
				}
			}
			if !strings.Contains(line+" ", " "+v+" ") {
				t.Errorf("%s line %q does not name %s", use, line, v)
			}
		}
	}
	for n := 1; n <= MaxTries; n++ {
		if !strings.Contains(GRUBScript, `"${atrium_tries_left}" = `+string(rune('0'+n))) {
			t.Errorf("GRUBScript cannot count down from %d", n)
		}
	}
}

func TestGRUBMissingFileIsFresh(t *testing.T) {
	p := filepath.Join(t.TempDir(), "grubenv")
	g, err := NewGRUBEnv(GRUBEnvConfig{Path: p, Booted: func(context.Context) (Slot, error) { return SlotA, nil }})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, g, Status{Booted: SlotA, Default: SlotA})
	must(t, g.TryNext(context.Background(), SlotB, 2))
	b, err := os.ReadFile(p)
	if err != nil || len(b) != envBlockSize {
		t.Fatalf("grubenv: %d bytes, %v", len(b), err)
	}
	if id := runGRUBScript(t, GRUBScript, p); id != "atrium-b" {
		t.Fatalf("grub selected %q", id)
	}
	// Without the file GRUB boots the default, a, as Status says.
	if id := runGRUBScript(t, GRUBScript, filepath.Join(t.TempDir(), "none")); id != "atrium-a" {
		t.Fatalf("grub without grubenv selected %q", id)
	}
}

func TestWithDefault(t *testing.T) {
	for in, want := range map[string]string{
		"timeout 3\ndefault atrium-a.conf\neditor no\n": "timeout 3\ndefault atrium-*\neditor no\n",
		"default\tx\n#c\ndefault y\n":                   "default atrium-*\n#c\n",
		"timeout 3":                                     "timeout 3\ndefault atrium-*\n",
		"":                                              "default atrium-*\n",
	} {
		if got := string(withDefault([]byte(in), "atrium-*")); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

// newESP builds an ESP with the given entry file names and default line.
func newESP(t *testing.T, def string, entries ...string) (string, *SystemdBoot, *varSlot) {
	t.Helper()
	esp := t.TempDir()
	writeFile("loader/loader.conf", "timeout 0\ndefault "+def+"\n")(t, esp)
	for _, e := range entries {
		writeFile("loader/entries/"+e, "title "+e+"\n")(t, esp)
	}
	sel := &varSlot{}
	c, err := NewSystemdBoot(SystemdBootConfig{ESP: esp, SelectedEntry: func(context.Context) (string, error) { return sel.get(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	return esp, c, sel
}

// TestSystemdBootInterruptedStates covers the states a power cut can leave
// between the steps of Bless and TryNext, and systemd-bless-boot's rename:
// each reads sensibly, the loader starts the right slot, and repeating the
// operation finishes it.
func TestSystemdBootInterruptedStates(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		def      string
		entries  []string
		booted   string
		want     Status
		loader   string // entry systemd-boot starts
		finish   func(Control) error
		after    []string
		afterDef string
	}{
		{
			name: "bless step 1 done", def: "atrium-*", entries: []string{"atrium-a.conf", "atrium-try-b.conf"},
			booted: "atrium-try-b+2-1.conf", want: Status{Booted: SlotB, Default: SlotB}, loader: "atrium-try-b.conf",
			finish: func(c Control) error { return c.Bless(ctx, SlotB) },
			after:  []string{"atrium-a.conf", "atrium-b.conf"}, afterDef: "atrium-b.conf",
		},
		{
			name: "bless step 2 done, slot a", def: "atrium-a.conf", entries: []string{"atrium-try-a.conf", "atrium-b.conf"},
			booted: "atrium-try-a+0-2.conf", want: Status{Booted: SlotA, Default: SlotA}, loader: "atrium-try-a.conf",
			finish: func(c Control) error { return c.Bless(ctx, SlotA) },
			after:  []string{"atrium-a.conf", "atrium-b.conf"}, afterDef: "atrium-a.conf",
		},
		{
			name: "systemd-bless-boot renamed it", def: "atrium-*", entries: []string{"atrium-b.conf", "atrium-try-a.conf"},
			booted: "atrium-try-a+1-0.conf", want: Status{Booted: SlotA, Default: SlotA}, loader: "atrium-try-a.conf",
			// Trying b from here must first settle a as the plain default.
			finish: func(c Control) error { return c.TryNext(ctx, SlotB, 2) },
			after:  []string{"atrium-a.conf", "atrium-try-b+2-0.conf"}, afterDef: "atrium-*",
		},
		{
			name: "try step 1 done", def: "atrium-a.conf", entries: []string{"atrium-a.conf", "atrium-try-b+3-0.conf"},
			booted: "atrium-a.conf", want: Status{Booted: SlotA, Default: SlotA}, loader: "atrium-a.conf",
			finish: func(c Control) error { return c.TryNext(ctx, SlotB, 3) },
			after:  []string{"atrium-a.conf", "atrium-try-b+3-0.conf"}, afterDef: "atrium-*",
		},
		{
			name: "reject step 1 done", def: "atrium-*", entries: []string{"atrium-a.conf", "atrium-try-b+0-1.conf"},
			booted: "atrium-a.conf", want: Status{Booted: SlotA, Default: SlotA, Bad: []Slot{SlotB}}, loader: "atrium-a.conf",
			finish: func(c Control) error { return c.Reject(ctx, SlotB) },
			after:  []string{"atrium-a.conf", "atrium-try-b+0-1.conf"}, afterDef: "atrium-a.conf",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			esp, ctl, sel := newESP(t, c.def, c.entries...)
			sel.set(c.booted)
			wantStatus(t, ctl, c.want)
			// The loader's choice, on a copy so the real ESP is untouched.
			cp := t.TempDir()
			writeFile("loader/loader.conf", "default "+c.def+"\n")(t, cp)
			for _, e := range c.entries {
				writeFile("loader/entries/"+e, "")(t, cp)
			}
			if got := bootSystemd(t, cp); got != c.loader {
				t.Fatalf("loader starts %q, want %q", got, c.loader)
			}
			must(t, c.finish(ctl))
			des, _ := os.ReadDir(filepath.Join(esp, "loader", "entries"))
			var names []string
			for _, d := range des {
				names = append(names, d.Name())
			}
			if strings.Join(names, " ") != strings.Join(c.after, " ") {
				t.Fatalf("entries %v, want %v", names, c.after)
			}
			conf, _ := os.ReadFile(filepath.Join(esp, "loader", "loader.conf"))
			if string(conf) != "timeout 0\ndefault "+c.afterDef+"\n" {
				t.Fatalf("loader.conf %q", conf)
			}
		})
	}
}

func TestSystemdBootNoEntry(t *testing.T) {
	_, c, sel := newESP(t, "atrium-a.conf", "atrium-a.conf")
	sel.set("atrium-a.conf")
	wantStatus(t, c, Status{Booted: SlotA, Default: SlotA})
	if err := c.TryNext(context.Background(), SlotB, 3); !errors.Is(err, ErrNoEntry) {
		t.Fatalf("TryNext without an entry: %v, want ErrNoEntry", err)
	}
	_, c, _ = newESP(t, "atrium-*", "atrium-try-a+1-0.conf", "atrium-try-b+0-3.conf")
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("no blessed entry: %v, want ErrCorrupt", err)
	}
	_, c, sel = newESP(t, "atrium-a.conf", "atrium-a.conf")
	sel.set("atrium-x+1.conf")
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("selected entry of unknown slot: %v, want ErrCorrupt", err)
	}
	sel.set("windows.conf") // started from something else: booted unknown
	wantStatus(t, c, Status{Default: SlotA})
}

func TestFileControlConstructor(t *testing.T) {
	if _, err := NewFileControl(filepath.Join(t.TempDir(), "x.json"), "c", nil); !errors.Is(err, ErrUnknownSlot) {
		t.Fatalf("initial slot c: %v", err)
	}
	fc, err := NewFileControl(filepath.Join(t.TempDir(), "x.json"), SlotB, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, fc, Status{Booted: SlotB, Default: SlotB})
}

// TestSystemdBootBootFiles reads the kernel and initramfs paths from the
// slot's entry, whatever its boot-counting name, and refuses entries that
// lack them or point off the ESP.
func TestSystemdBootBootFiles(t *testing.T) {
	ctx := context.Background()
	esp, c, sel := newESP(t, "atrium-a.conf", "atrium-a.conf", "atrium-try-b+2-1.conf")
	sel.set("atrium-a.conf")
	writeFile("loader/entries/atrium-try-b+2-1.conf",
		"title Atrium (b)\nlinux /atrium/b/vmlinuz\ninitrd \\atrium\\b\\initrd.img\ninitrd /extra.img\noptions root=PARTLABEL=root-b\n")(t, esp)
	got, err := c.BootFiles(ctx, SlotB)
	if err != nil {
		t.Fatal(err)
	}
	want := BootFiles{Kernel: filepath.Join(esp, "atrium/b/vmlinuz"), Initrd: filepath.Join(esp, "atrium/b/initrd.img")}
	if got != want {
		t.Fatalf("boot files of b: %+v, want %+v", got, want)
	}
	for name, entry := range map[string]string{
		"no initrd":   "linux /atrium/a/vmlinuz\n",
		"no kernel":   "initrd /atrium/a/initrd.img\n",
		"off the ESP": "linux /../../etc/passwd\ninitrd /atrium/a/initrd.img\n",
		"empty path":  "linux /\ninitrd /atrium/a/initrd.img\n",
	} {
		writeFile("loader/entries/atrium-a.conf", entry)(t, esp)
		if _, err := c.BootFiles(ctx, SlotA); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	if err := os.Remove(filepath.Join(esp, "loader/entries/atrium-a.conf")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.BootFiles(ctx, SlotA); !errors.Is(err, ErrNoEntry) {
		t.Errorf("slot without an entry: %v, want ErrNoEntry", err)
	}
}

// TestSystemdBootSetOptions rewrites one slot's options under its counting
// name, keeps every other line, and leaves the default's entry alone.
func TestSystemdBootSetOptions(t *testing.T) {
	ctx := context.Background()
	esp, c, sel := newESP(t, "atrium-a.conf", "atrium-a.conf", "atrium-try-b+0-3.conf")
	sel.set("atrium-a.conf")
	entryB := "title Atrium (b)\nlinux /atrium/b/vmlinuz\noptions root=PARTLABEL=root-b ro\ninitrd /atrium/b/initrd.img\noptions quiet"
	writeFile("loader/entries/atrium-try-b+0-3.conf", entryB)(t, esp)
	entryA := "title Atrium (a)\noptions root=PARTLABEL=root-a\n"
	writeFile("loader/entries/atrium-a.conf", entryA)(t, esp)

	var seen []string
	err := c.SetOptions(ctx, SlotB, func(old []string) []string {
		seen = old
		return append([]string{"root=/dev/mapper/atrium-root", "atrium.verity=ab,4096"}, old[1:]...)
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"root=PARTLABEL=root-b", "ro", "quiet"}; !slices.Equal(seen, want) {
		t.Errorf("edit saw %q, want %q", seen, want)
	}
	got, err := os.ReadFile(filepath.Join(esp, "loader/entries/atrium-try-b+0-3.conf"))
	if err != nil {
		t.Fatal(err)
	}
	want := "title Atrium (b)\nlinux /atrium/b/vmlinuz\noptions root=/dev/mapper/atrium-root atrium.verity=ab,4096 ro quiet\ninitrd /atrium/b/initrd.img\n"
	if string(got) != want {
		t.Errorf("entry b:\n%s\nwant:\n%s", got, want)
	}
	if left, _ := filepath.Glob(filepath.Join(esp, "loader/entries/.*")); len(left) != 0 {
		t.Errorf("left behind: %q", left)
	}

	if err := c.SetOptions(ctx, SlotA, func(o []string) []string { return nil }); !errors.Is(err, ErrIsDefault) {
		t.Errorf("options of the default slot: %v, want ErrIsDefault", err)
	}
	if got, _ := os.ReadFile(filepath.Join(esp, "loader/entries/atrium-a.conf")); string(got) != entryA {
		t.Errorf("the default's entry changed:\n%s", got)
	}
	if err := c.SetOptions(ctx, SlotB, func(o []string) []string { return []string{"root=x y"} }); err == nil {
		t.Error("an argument with a space was written")
	}
}
