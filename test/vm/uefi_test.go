package vm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/ota/bootctl"
	"github.com/atriumroom/atrium/rootfs/disk"
)

// TestUEFIBootCounting builds an A/B disk with rootfs/disk whose slots
// boot Debian's kernel and a probe initramfs, and boots it through OVMF and
// the real systemd-boot: slot a first; after ota/bootctl arms a trial of b
// with two tries, b twice, with systemd-boot counting the tries in the
// entry's name; then, the tries used up, a again.
func TestUEFIBootCounting(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	log := testLogger(t)
	k, err := Prepare(ctx, PrepareOptions{Logger: log})
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd.img")
	if err := WriteProbeInitramfs(k, initrd); err != nil {
		t.Fatal(err)
	}
	// The probe never mounts its root: any bytes do as a root image.
	root := filepath.Join(dir, "root.img")
	if err := os.WriteFile(root, bytes.Repeat([]byte("atrium root\n"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.img")
	start := time.Now()
	err = disk.Build(ctx, disk.Options{
		Output:  img,
		Version: "uefi-test",
		Layout:  disk.Layout{ESP: 64 * disk.MiB, Root: 16 * disk.MiB, Data: 16 * disk.MiB},
		A:       disk.Slot{Root: root, Kernel: k.Image, Initrd: initrd},
		// panic=-1 with -no-reboot ends the VM at once should the probe
		// fail.
		KernelArgs: []string{"panic=-1"},
		Logger:     log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("disk built in %s", time.Since(start).Round(time.Millisecond))
	vars := filepath.Join(dir, "OVMF_VARS.fd")

	n := 0
	// boot boots the disk once and returns the slot the kernel was given
	// and the entries on the ESP afterwards.
	boot := func() (string, []string) {
		t.Helper()
		n++
		var con bytes.Buffer
		start := time.Now()
		bctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		err := BootUEFI(bctx, UEFIOptions{Disk: img, Vars: vars, Console: &con, Logger: log})
		took := time.Since(start)
		if artifacts := os.Getenv("ATRIUM_ARTIFACTS"); artifacts != "" {
			_ = os.WriteFile(filepath.Join(artifacts, fmt.Sprintf("uefi-boot-%d.log", n)), con.Bytes(), 0o644)
		}
		if err != nil {
			t.Fatalf("boot %d: %v\nconsole tail:\n%s", n, err, tail(con.String(), 30))
		}
		cmdline, ok := ProbeCmdline(con.String())
		if !ok {
			t.Fatalf("boot %d: the probe printed no command line\nconsole tail:\n%s", n, tail(con.String(), 30))
		}
		slot := ""
		for f := range strings.FieldsSeq(cmdline) {
			if v, ok := strings.CutPrefix(f, "atrium.slot="); ok {
				slot = v
			}
		}
		// systemd-boot puts the initrd it loaded first on the line.
		want := `initrd=\atrium\` + slot + `\initrd.img ` + disk.KernelCommandLine(slot, nil, []string{"panic=-1"})
		if cmdline != want {
			t.Errorf("boot %d: command line\n%s\nwant\n%s", n, cmdline, want)
		}
		esp := filepath.Join(dir, fmt.Sprintf("esp-after-%d", n))
		if err := disk.ReadESP(ctx, nil, img, esp); err != nil {
			t.Fatal(err)
		}
		t.Logf("boot %d: slot %s in %s", n, slot, took.Round(time.Millisecond))
		return slot, entries(t, esp)
	}
	check := func(what, slot string, ents []string, wantSlot string, wantEnts ...string) {
		t.Helper()
		if slot != wantSlot || !slices.Equal(ents, wantEnts) {
			t.Fatalf("%s: booted slot %q with entries %q afterwards; want slot %q and %q", what, slot, ents, wantSlot, wantEnts)
		}
	}

	slot, ents := boot()
	check("fresh disk", slot, ents, "a", "atrium-a.conf", "atrium-b.conf")

	// Arm a trial of b as the updater does, on a copy of the ESP.
	esp := filepath.Join(dir, "esp-arm")
	if err := disk.ReadESP(ctx, nil, img, esp); err != nil {
		t.Fatal(err)
	}
	ctl, err := bootctl.NewSystemdBoot(bootctl.SystemdBootConfig{
		ESP:           esp,
		SelectedEntry: func(context.Context) (string, error) { return "atrium-a.conf", nil },
		Logger:        log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.TryNext(ctx, bootctl.SlotB, 2); err != nil {
		t.Fatal(err)
	}
	if err := disk.WriteESP(ctx, nil, img, esp); err != nil {
		t.Fatal(err)
	}

	slot, ents = boot()
	check("first try of b", slot, ents, "b", "atrium-a.conf", "atrium-try-b+1-1.conf")
	slot, ents = boot()
	check("second try of b", slot, ents, "b", "atrium-a.conf", "atrium-try-b+0-2.conf")
	slot, ents = boot()
	check("tries used up", slot, ents, "a", "atrium-a.conf", "atrium-try-b+0-2.conf")
}

// entries lists loader/entries of an ESP copy, sorted.
func entries(t *testing.T, esp string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(esp, "loader", "entries"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}
