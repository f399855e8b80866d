package appliance_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/ota/verity"
	"github.com/atriumroom/atrium/provisioning/fleet/console"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
	"github.com/atriumroom/atrium/rootfs/disk"
	"github.com/atriumroom/atrium/test/roomdtest"
)

var benchOut = flag.String("appliance.out", "", "file for BenchmarkImage's report (default: bench/results/image.txt in the repository)")

var (
	kernelStart   = regexp.MustCompile(`\] Linux version `)
	updateOffered = regexp.MustCompile(`roomd\[\d+\]: update offered`)
)

// BenchmarkImage measures the release image (zstd, as releases are built):
// its size, the factory disk's boot in QEMU to roomd and to the kiosk, and
// one update through the fleet, then writes bench/results/image.txt. One
// invocation is the whole report:
//
//	go test -run '^$' -bench Image -benchtime 1x -timeout 40m ./test/appliance/
func BenchmarkImage(b *testing.B) {
	if b.N > 1 {
		b.Fatal("BenchmarkImage is one boot and one update: use -benchtime 1x")
	}
	ctx := roomdtest.Context(b, 38*time.Minute)
	w := newWorld(b)
	w.comp = "zstd"
	started := time.Now()

	t0 := time.Now()
	v1 := w.buildImages(ctx, release{"1.0.0", w.bins.roomd, 2 * time.Hour})[0]
	build1 := time.Since(t0)
	m1 := readManifest(b, v1)
	v2 := w.buildImages(ctx, release{"2.0.0", w.bins.roomd, time.Hour})[0]
	m2 := readManifest(b, v2)
	// The whole image, without a delta: what a room far behind fetches.
	target := w.publish(v2, "2.0.0", "")
	w.makeDisk(ctx, v1, "1.0.0")

	w.powerOn(ctx)
	w.waitConsole(3*time.Minute, "the kernel", kernelStart)
	toKernel := time.Since(w.machine.Started())
	w.waitConsole(5*time.Minute, "roomd ready", roomdUp)
	toReady := time.Since(w.machine.Started())
	w.waitConsole(5*time.Minute, "the kiosk's home screen", kioskUp)
	toKiosk := time.Since(w.machine.Started())
	w.waitDevice(3*time.Minute, "the room enrolls", func(dd console.DeviceDetail) bool {
		return dd.Device.Online && dd.Update != nil && dd.Update.Status.Running == "1.0.0"
	})

	t0 = time.Now()
	w.rollout(target)
	w.waitConsole(5*time.Minute, "the offer", updateOffered)
	toOffer := time.Since(t0)
	w.waitConsole(20*time.Minute, "the reboot for 2.0.0", rebooting)
	toApplied := time.Since(t0)
	w.waitOff(2*time.Minute, "the reboot into 2.0.0")
	w.powerOn(ctx)
	w.waitDevice(10*time.Minute, "2.0.0 committed", func(dd console.DeviceDetail) bool {
		return dd.Update != nil && dd.Update.Status.State == fleetapi.UpdateCommitted && dd.Update.Status.Running == "2.0.0"
	})
	toCommitted := time.Since(t0)
	diskSize := disk.DefaultLayout().Size()

	// What dm-verity costs a boot: the installed system booted twice
	// more, once with slot b's entry naming the partition (the root
	// unchecked), once as installed, each to the kiosk. The room is
	// shut down cleanly in between: the ESP is edited offline, and
	// mtools refuses a FAT that a power cut left unfinished.
	w.waitConsole(5*time.Minute, "2.0.0's kiosk", kioskUp)
	w.powerdown(ctx)
	entry := w.slotEntry(ctx, "b")
	unchecked := verity.WithRootArgs(strings.Fields(entryOptions(b, entry)), verity.RootArgs("b", nil))
	w.setSlotEntry(ctx, "b", strings.Replace(entry, entryOptions(b, entry), strings.Join(unchecked, " "), 1))
	plainReady, plainKiosk := w.bootToKiosk(ctx, false)
	w.powerdown(ctx)
	w.setSlotEntry(ctx, "b", entry)
	checkedReady, checkedKiosk := w.bootToKiosk(ctx, true)

	var sb strings.Builder
	fmt.Fprintf(&sb, "Appliance image: size, boot and one update in QEMU (issue 8)\n")
	fmt.Fprintf(&sb, "measured %s, source %s, %s; %d cores (nproc)\n\n", started.UTC().Format(time.RFC3339), gitDescribe(w.repoRoot), runtime.Version(), runtime.NumCPU())
	fmt.Fprintf(&sb, "Method. The image is built as `make image` builds it (rootfs/image from the cached\n")
	fmt.Fprintf(&sb, "Debian base, squashfs with zstd), then the factory disk (rootfs/disk). QEMU boots it\n")
	fmt.Fprintf(&sb, "through OVMF and systemd-boot with 2 vCPUs and 2 GiB on TCG: every instruction is\n")
	fmt.Fprintf(&sb, "emulated, so the times below are several times what a real device takes, and they\n")
	fmt.Fprintf(&sb, "move with the host's load. Times are wall clock from QEMU's start (power-on), read\n")
	fmt.Fprintf(&sb, "from the serial console, to which the journal is forwarded. The update is the same\n")
	fmt.Fprintf(&sb, "image rebuilt as 2.0.0, published with `fleetd release add` and rolled out by the\n")
	fmt.Fprintf(&sb, "built fleetd on the host (reached over QEMU's user network, check-in every 2 s).\n")
	fmt.Fprintf(&sb, "For the install path against raw writes on the host see ota.txt. dm-verity's cost is\n")
	fmt.Fprintf(&sb, "the installed 2.0.0 booted twice more, each after a clean shutdown: first with its entry\n")
	fmt.Fprintf(&sb, "naming the partition (root unchecked), then as installed (root checked by dm-verity).\n\n")
	fmt.Fprintf(&sb, "  root file system (squashfs, zstd)      %8.1f MB   build %.0f s (base cached)\n", float64(m1.RootfsSize)/1e6, build1.Seconds())
	fmt.Fprintf(&sb, "  factory disk (ESP, 2 slots, data)      %8.1f MB   sparse file\n", float64(diskSize)/1e6)
	fmt.Fprintf(&sb, "  power-on to the kernel                 %8.1f s\n", toKernel.Seconds())
	fmt.Fprintf(&sb, "  power-on to roomd ready                %8.1f s\n", toReady.Seconds())
	fmt.Fprintf(&sb, "  power-on to the kiosk's home screen    %8.1f s\n", toKiosk.Seconds())
	fmt.Fprintf(&sb, "  rollout created to the offer in roomd  %8.1f s\n", toOffer.Seconds())
	fmt.Fprintf(&sb, "  rollout to reboot (download, write, verify, arm) %6.1f s   %.1f MB/s over %.1f MB\n",
		toApplied.Seconds(), float64(m2.RootfsSize)/1e6/(toApplied-toOffer).Seconds(), float64(m2.RootfsSize)/1e6)
	fmt.Fprintf(&sb, "  rollout to committed (reboot, health gate)       %6.1f s\n", toCommitted.Seconds())
	fmt.Fprintf(&sb, "\n                              root unchecked   checked (dm-verity)   ratio\n")
	fmt.Fprintf(&sb, "  power-on to roomd ready     %10.1f s %14.1f s %15.2f\n", plainReady.Seconds(), checkedReady.Seconds(), checkedReady.Seconds()/plainReady.Seconds())
	fmt.Fprintf(&sb, "  power-on to the kiosk       %10.1f s %14.1f s %15.2f\n", plainKiosk.Seconds(), checkedKiosk.Seconds(), checkedKiosk.Seconds()/plainKiosk.Seconds())

	path := *benchOut
	if path == "" {
		path = filepath.Join(w.repoRoot, "bench", "results", "image.txt")
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote %s:\n%s", path, sb.String())
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(toReady.Seconds(), "s-to-ready")
	b.ReportMetric(toKiosk.Seconds(), "s-to-kiosk")
	b.ReportMetric(toApplied.Seconds(), "s-to-apply")
}

// bootToKiosk powers the room on and returns the times to roomd ready and
// to the kiosk's home screen; it checks that the initramfs opened the root
// with dm-verity, or did not.
func (w *world) bootToKiosk(ctx context.Context, checked bool) (ready, kiosk time.Duration) {
	w.t.Helper()
	w.powerOn(ctx)
	w.waitConsole(5*time.Minute, "roomd ready", roomdUp)
	ready = time.Since(w.machine.Started())
	w.waitConsole(5*time.Minute, "the kiosk's home screen", kioskUp)
	kiosk = time.Since(w.machine.Started())
	if opened := verityOpened.MatchString(w.console.Text(w.bootMark)); opened != checked {
		w.t.Fatalf("boot #%d: root opened with dm-verity: %v, want %v", w.boots, opened, checked)
	}
	return ready, kiosk
}

// powerdown shuts the room down with its power button.
func (w *world) powerdown(ctx context.Context) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := w.machine.Powerdown(ctx); err != nil {
		w.t.Fatalf("boot #%d: power button: %v\n--- console (this boot, last 3000 bytes) ---\n%s", w.boots, err, tail(w.console.Text(w.bootMark), 3000))
	}
}

// slotEntry is the text of slot's boot entry on the powered-off disk.
func (w *world) slotEntry(ctx context.Context, slot string) string {
	w.t.Helper()
	dir := filepath.Join(w.t.TempDir(), "esp")
	if err := disk.ReadESP(ctx, nil, w.disk, dir); err != nil {
		w.t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "loader", "entries", "atrium-"+slot+".conf"))
	if err != nil {
		w.t.Fatal(err)
	}
	return string(data)
}

// setSlotEntry replaces slot's boot entry on the powered-off disk.
func (w *world) setSlotEntry(ctx context.Context, slot, text string) {
	w.t.Helper()
	dir := filepath.Join(w.t.TempDir(), "esp")
	if err := disk.ReadESP(ctx, nil, w.disk, dir); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "loader", "entries", "atrium-"+slot+".conf"), []byte(text), 0o644); err != nil {
		w.t.Fatal(err)
	}
	if err := disk.WriteESP(ctx, nil, w.disk, dir); err != nil {
		w.t.Fatal(err)
	}
}

// entryOptions is the value of an entry's options line.
func entryOptions(t testing.TB, entry string) string {
	t.Helper()
	for _, line := range strings.Split(entry, "\n") {
		if o, ok := strings.CutPrefix(line, "options "); ok {
			return o
		}
	}
	t.Fatalf("no options line in the entry:\n%s", entry)
	return ""
}

func gitDescribe(repo string) string {
	out, err := exec.Command("git", "-C", repo, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
