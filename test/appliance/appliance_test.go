package appliance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/atriumroom/atrium/provisioning/fleet/console"
	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
	"github.com/atriumroom/atrium/rootfs/disk"
	"github.com/atriumroom/atrium/rootfs/image"
	"github.com/atriumroom/atrium/test/fleettest"
	"github.com/atriumroom/atrium/test/roomdtest"
	"github.com/atriumroom/atrium/test/vm"
)

// hardware is roomd's default hardware ID on amd64, which the image's
// roomd.toml keeps.
const hardware = "atrium-amd64"

// Console lines the tier waits for. The journal is forwarded to the serial
// console (systemd.journald.forward_to_console=1), so roomd's own log lines
// are there too.
var (
	slotLine = regexp.MustCompile(`Command line: [^\n]*atrium\.slot=([ab])`)
	// The initramfs names the image it was built with: after an update,
	// the one the update copied to the ESP beside the new kernel. The
	// line's end is part of the match: the console arrives in pieces, and
	// "2" alone once matched where "2.0.0" was on its way.
	initrdLine = regexp.MustCompile(`atrium-data: initramfs of image (\S+)\r?\n`)
	roomdUp    = regexp.MustCompile(`systemd\[1\]: Started roomd\.service`)
	kioskUp    = regexp.MustCompile(`the kiosk shows its home screen`)
	rebooting  = regexp.MustCompile(`rebooting for the update`)
	staging    = regexp.MustCompile(`roomd\[\d+\]: staging boot files`)
	fromDelta  = regexp.MustCompile(`roomd\[\d+\]: install: image written from a delta and verified`)
	// The initramfs opens the root slot with dm-verity against the root
	// hash on the entry's command line, or refuses a slot that does not
	// match it.
	verityOpened  = regexp.MustCompile(`atrium-verity: root-([ab]) opened with dm-verity, root hash ([0-9a-f]{64})`)
	verityRefused = regexp.MustCompile(`atrium-verity: root-a does not match its root hash [0-9a-f]{64}: not booting it`)
	// The initramfs mounts the data partition (room state, saved OS
	// settings) at /data, or says why it could not.
	dataMounted = regexp.MustCompile(`atrium-data: (\S+ mounted at /data[^\n]*|[^\n]*live in memory[^\n]*)`)
)

// world is a fleet on the host with its release repository, and one room:
// a QEMU machine booting the appliance's disk image through UEFI.
type world struct {
	t               testing.TB
	dir, artifacts  string
	repoRoot, cache string
	bins            binaries
	repo, keys      string
	rootJSON        string
	fleet           *fleettest.Fleetd
	con             *fleettest.Console
	orgID, code     string
	deviceID        string

	disk, vars string
	console    *vm.Console
	machine    *vm.Machine
	boots      int
	bootMark   int // console offset where the current boot began
	// rootHash is each version's dm-verity root hash (image.json).
	rootHash map[string]string
	log      *slog.Logger
	// comp is the images' squashfs compressor: lz4 for the tests (fast to
	// build), zstd for the benchmark (what releases use).
	comp string
}

type binaries struct{ roomd, roomctl, roomkiosk, brokenRoomd, fleetd string }

func newWorld(t testing.TB) *world {
	if os.Geteuid() != 0 {
		t.Fatal("the appliance tier builds the image, which needs root (mmdebstrap, chroot)")
	}
	for _, prog := range []string{"mmdebstrap", "mksquashfs", "qemu-system-x86_64", "sgdisk", "mkfs.vfat", "mcopy", "mkfs.ext4"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s is needed (.ci/deps installs it)", prog)
		}
	}
	w := &world{t: t, dir: t.TempDir(), repoRoot: roomdtest.RepoRoot(t), comp: "lz4"}
	w.cache = filepath.Join(w.repoRoot, ".cache", "image")
	w.log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	w.artifacts = os.Getenv("ATRIUM_ARTIFACTS")
	if w.artifacts == "" {
		w.artifacts = filepath.Join(w.dir, "artifacts")
	}
	w.artifacts = filepath.Join(w.artifacts, "appliance")
	if err := os.MkdirAll(w.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	kioskEnv := "PKG_CONFIG_PATH=" + filepath.Join(w.repoRoot, "cmd", "roomkiosk", "pkgconfig")
	w.bins = binaries{
		roomd:       roomdtest.Build(t, "./cmd/roomd"),
		roomctl:     roomdtest.Build(t, "./cmd/roomctl"),
		roomkiosk:   roomdtest.Build(t, "./cmd/roomkiosk", kioskEnv),
		brokenRoomd: roomdtest.Build(t, "./test/appliance/internal/brokenroomd"),
		fleetd:      roomdtest.Build(t, "./cmd/fleetd"),
	}

	w.repo, w.keys = filepath.Join(w.dir, "repo"), filepath.Join(w.dir, "keys")
	w.release("init", "-repo", w.repo, "-keys", w.keys)
	w.rootJSON = filepath.Join(w.dir, "update-root.json")
	if err := os.WriteFile(w.rootJSON, []byte(w.release("root", "-repo", w.repo)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The guest reaches the host's loopback at 10.0.2.2, so the device
	// API's certificate names it.
	w.fleet = fleettest.Start(t, fleettest.Options{Binary: w.bins.fleetd,
		Serve: []string{"-updates", w.repo, "-server-name", "localhost,127.0.0.1," + vm.HostAddr}})
	w.con = w.fleet.Login()
	room := w.fleet.NewRoom(w.con, "Acme", "Head office", "Boardroom")
	w.orgID, w.code = room.OrgID, room.Code
	t.Cleanup(func() {
		if w.machine != nil {
			w.machine.Kill()
		}
		if w.console != nil {
			w.console.Close()
		}
	})
	return w
}

// release runs `fleetd release ARGS…` and returns its standard output.
func (w *world) release(args ...string) string {
	w.t.Helper()
	return fleettest.Release(w.t, w.bins.fleetd, args...)
}

// release is one image for buildImages to build.
type release struct {
	version, roomd string
	age            time.Duration // how long before now it was built
}

// buildImages builds the appliance image of each release into its own
// directory, from the repository's rootfs/ and the cached Debian base, all
// at once (most of a build is single-threaded), and returns the
// directories; the images trust this world's release repository.
func (w *world) buildImages(ctx context.Context, rels ...release) []string {
	w.t.Helper()
	dirs := make([]string, len(rels))
	g, gctx := errgroup.WithContext(ctx)
	for i, r := range rels {
		dirs[i] = filepath.Join(w.dir, "image-"+r.version)
		g.Go(func() error {
			start := time.Now()
			m, err := image.Build(gctx, image.Options{
				Out: dirs[i],
				Layer: image.Layer{
					Source: filepath.Join(w.repoRoot, "rootfs"), Version: r.version,
					BuildTime: time.Now().UTC().Add(-r.age).Truncate(time.Second),
					Roomd:     r.roomd, Roomctl: w.bins.roomctl, Roomkiosk: w.bins.roomkiosk, UpdateRoot: w.rootJSON,
				},
				CacheDir: w.cache, Comp: w.comp, Runner: image.ExecRunner{}, Logger: w.log,
			})
			if err != nil {
				return fmt.Errorf("build image %s: %w", r.version, err)
			}
			w.t.Logf("image %s built in %.0f s: root file system %d MB", r.version, time.Since(start).Seconds(), m.RootfsSize>>20)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		w.t.Fatal(err)
	}
	if w.rootHash == nil {
		w.rootHash = map[string]string{}
	}
	for i, r := range rels {
		w.rootHash[r.version] = readManifest(w.t, dirs[i]).VerityRootHash
	}
	return dirs
}

// publish adds the image in dir as release version, with a delta from the
// image in fromDir when that is not empty.
func (w *world) publish(dir, version, fromDir string) string {
	w.t.Helper()
	start := time.Now()
	args := []string{"add", "-repo", w.repo, "-keys", w.keys, "-image", filepath.Join(dir, image.RootfsFile), "-version", version,
		"-security-version", "1", "-hardware", hardware, "-build-time", readManifest(w.t, dir).BuildTime}
	if fromDir != "" {
		args = append(args, "-delta-from", filepath.Join(fromDir, image.RootfsFile))
	}
	w.release(args...)
	w.t.Logf("release %s published in %.1f s", version, time.Since(start).Seconds())
	return "atrium-" + version + ".img"
}

func readManifest(t testing.TB, dir string) image.Manifest {
	t.Helper()
	var m image.Manifest
	data, err := os.ReadFile(filepath.Join(dir, image.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// makeDisk writes the factory disk: both slots hold the image in dir, and
// the kernel command line carries the fleet's address, its CA's
// fingerprint and an activation code, as a factory image for one
// customer does.
func (w *world) makeDisk(ctx context.Context, dir, version string) {
	w.t.Helper()
	w.disk = filepath.Join(w.dir, "disk.img")
	w.vars = filepath.Join(w.dir, "OVMF_VARS.fd")
	port := strings.TrimPrefix(w.fleet.DeviceURL, "https://localhost:")
	slot, err := image.DiskSlot(dir)
	if err != nil {
		w.t.Fatal(err)
	}
	err = disk.Build(ctx, disk.Options{
		Output: w.disk, Version: version, A: slot, TempDir: w.dir, Logger: w.log,
		KernelArgs: []string{
			"atrium.fleet=https://" + vm.HostAddr + ":" + port,
			"atrium.fleet_ca_sha256=" + w.fleet.CAFingerprint(),
			"atrium.activation_code=" + w.code,
			"systemd.journald.forward_to_console=1",
		},
	})
	if err != nil {
		w.t.Fatalf("build disk: %v", err)
	}
	c, err := vm.NewConsole(filepath.Join(w.artifacts, "console.log"))
	if err != nil {
		w.t.Fatal(err)
	}
	w.console = c
}

// powerOn starts the machine on the room's disk.
func (w *world) powerOn(ctx context.Context) {
	w.t.Helper()
	if w.machine != nil {
		select {
		case <-w.machine.Done():
		default:
			w.t.Fatal("powerOn: the machine is still running")
		}
	}
	w.boots++
	fmt.Fprintf(w.console, "\n===== appliance tier: power on #%d =====\n", w.boots)
	w.bootMark = w.console.Mark()
	m, err := vm.StartMachine(ctx, vm.MachineOptions{Disk: w.disk, Vars: w.vars, Dir: w.dir, Console: w.console, Logger: w.log})
	if err != nil {
		w.t.Fatal(err)
	}
	w.machine = m
}

// powerCut kills the machine, as pulling the plug does.
func (w *world) powerCut(why string) {
	w.t.Helper()
	w.machine.Kill()
	fmt.Fprintf(w.console, "\n===== appliance tier: power cut (%s) =====\n", why)
	w.t.Logf("power cut: %s", why)
}

// waitConsole waits for re in the current boot's console output; it fails
// the test when the machine stops first.
func (w *world) waitConsole(timeout time.Duration, what string, re *regexp.Regexp) []string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := w.machine.Done()
	go func() {
		select {
		case <-done:
			// Let the last output land before giving up.
			time.Sleep(500 * time.Millisecond)
			cancel()
		case <-ctx.Done():
		}
	}()
	match, _, err := w.console.WaitFor(ctx, w.bootMark, re)
	if err != nil {
		state := "still running"
		select {
		case <-done:
			state = "stopped"
		default:
		}
		w.t.Fatalf("boot #%d: %s: not seen within %s (machine %s): %v\n--- console (this boot, last 6000 bytes) ---\n%s\n--- fleetd ---\n%s",
			w.boots, what, timeout, state, err, tail(w.console.Text(w.bootMark), 6000), tail(w.fleet.Log(), 4000))
	}
	return match
}

// flipRootByte inverts byte 8 of slot's partition while the machine is
// off: the squashfs superblock's time stamp, which squashfs itself never
// checks, so only dm-verity can tell. A second call restores it.
func (w *world) flipRootByte(slot string) {
	w.t.Helper()
	t, err := disk.ReadPartitions(w.disk)
	if err != nil {
		w.t.Fatal(err)
	}
	p, err := t.Find("root-" + slot)
	if err != nil {
		w.t.Fatal(err)
	}
	f, err := os.OpenFile(w.disk, os.O_RDWR, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, p.Offset+8); err != nil {
		w.t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, p.Offset+8); err != nil {
		w.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		w.t.Fatal(err)
	}
}

// waitOff waits for the guest to reboot or power off by itself.
func (w *world) waitOff(timeout time.Duration, what string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := w.machine.Wait(ctx); err != nil && ctx.Err() != nil {
		w.t.Fatalf("boot #%d: %s: the machine did not reboot within %s\n--- console (this boot, last 6000 bytes) ---\n%s",
			w.boots, what, timeout, tail(w.console.Text(w.bootMark), 6000))
	}
}

// checkData checks that this boot's initramfs mounted the data partition.
func (w *world) checkData() {
	w.t.Helper()
	if m := w.waitConsole(3*time.Minute, "the data partition", dataMounted); !strings.Contains(m[1], "mounted at /data") {
		w.t.Fatalf("boot #%d: the data partition was not mounted: %s", w.boots, m[1])
	}
}

// bootedSlot is the slot the current boot's kernel command line names.
func (w *world) bootedSlot() string {
	w.t.Helper()
	return w.waitConsole(3*time.Minute, "the kernel's command line", slotLine)[1]
}

// checkBoot checks that the current boot started slot with the kernel and
// initramfs of version, and its root checked against version's root hash:
// after an update, the hash the update put into the slot's entry.
func (w *world) checkBoot(slot, version, when string) {
	w.t.Helper()
	if got := w.bootedSlot(); got != slot {
		w.t.Fatalf("%s the room booted slot %s, want %s", when, got, slot)
	}
	if m := w.waitConsole(3*time.Minute, "the root opened with dm-verity", verityOpened); m[1] != slot || m[2] != w.rootHash[version] {
		w.t.Fatalf("%s the initramfs opened root-%s with root hash %s, want root-%s with %s's %s", when, m[1], m[2], slot, version, w.rootHash[version])
	}
	if got := w.waitConsole(3*time.Minute, "the initramfs", initrdLine)[1]; got != version {
		w.t.Fatalf("%s slot %s booted the initramfs of %s, want %s's", when, slot, got, version)
	}
}

func (w *world) device() console.DeviceDetail {
	w.t.Helper()
	var dd console.DeviceDetail
	w.fleet.Must(w.con.Do(http.MethodGet, "/api/v1/devices/"+url.PathEscape(w.deviceID), nil, &dd), http.StatusOK, "device")
	return dd
}

// waitDevice polls the fleet's view of the room until cond holds.
func (w *world) waitDevice(timeout time.Duration, what string, cond func(console.DeviceDetail) bool) console.DeviceDetail {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if w.deviceID == "" {
			var list []console.DeviceView
			w.fleet.Must(w.con.Do(http.MethodGet, "/api/v1/devices", nil, &list), http.StatusOK, "list devices")
			if len(list) > 1 {
				w.t.Fatalf("the fleet has %d devices, want 1: %+v", len(list), list)
			}
			if len(list) == 1 {
				w.deviceID = list[0].ID
			}
		}
		if w.deviceID != "" {
			dd := w.device()
			if cond(dd) {
				return dd
			}
			// No step of this story ends in a failed update: say why at
			// once rather than at the deadline.
			if dd.Update != nil && dd.Update.Status.State == fleetapi.UpdateFailed {
				w.t.Fatalf("boot #%d: %s: the update failed: %s\n--- console (this boot, last 6000 bytes) ---\n%s",
					w.boots, what, dd.Update.Status.Reason, tail(w.console.Text(w.bootMark), 6000))
			}
		}
		if time.Now().After(deadline) {
			var last any = "never enrolled"
			if w.deviceID != "" {
				dd := w.device()
				last = dd.Update
			}
			w.t.Fatalf("boot #%d: %s: not within %s; the fleet's last update status %+v\n--- console (this boot, last 6000 bytes) ---\n%s\n--- fleetd ---\n%s",
				w.boots, what, timeout, last, tail(w.console.Text(w.bootMark), 6000), tail(w.fleet.Log(), 4000))
		}
		time.Sleep(time.Second)
	}
}

func (w *world) rollout(target string) console.RolloutView {
	w.t.Helper()
	return w.fleet.Rollout(w.con, w.orgID, target)
}

func (w *world) waitRollout(id, state string, timeout time.Duration) console.RolloutDetail {
	w.t.Helper()
	return w.fleet.WaitRollout(w.con, id, state, timeout)
}

// screenshot saves the guest's screen as an artifact and returns how many
// distinct colours it has: a blank or text console screen has a handful,
// the kiosk's home screen (photo, text, buttons) hundreds.
func (w *world) screenshot(name string) int {
	w.t.Helper()
	path := filepath.Join(w.artifacts, name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.machine.Screendump(ctx, path); err != nil {
		w.t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		w.t.Fatalf("screendump %s: %v", path, err)
	}
	colours := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
		}
	}
	w.t.Logf("screenshot %s: %dx%d, %d colours", path, b.Dx(), b.Dy(), len(colours))
	return len(colours)
}

// TestAppliance is issue 8's whole story on one room, in order: the
// factory disk boots through UEFI to roomd and the kiosk and enrolls by
// itself; a rollout installs a second release while the power is cut
// twice (during the download, and during the new release's first boot);
// then a release whose daemon cannot start is installed, the loader falls
// back to the good slot by itself, the fleet sees the failure and the room
// never installs that release again.
func TestAppliance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	w := newWorld(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 8))
	t.Logf("power cut times from seed %d", seed)

	// All three releases are built first: a build beside the emulated
	// machine would slow both by half.
	start := time.Now()
	dirs := w.buildImages(ctx, release{"1.0.0", w.bins.roomd, 3 * time.Hour},
		release{"2.0.0", w.bins.roomd, 2 * time.Hour}, release{"3.0.0", w.bins.brokenRoomd, time.Hour})
	t.Logf("three images built in %.0f s", time.Since(start).Seconds())
	v1, v2, v3 := dirs[0], dirs[1], dirs[2]
	// Rooms fetch a delta from the release they run: 1.0.0 is published
	// too, as the base of 2.0.0's.
	w.publish(v1, "1.0.0", "")
	good := w.publish(v2, "2.0.0", v1)
	bad := w.publish(v3, "3.0.0", v2)
	w.makeDisk(ctx, v1, "1.0.0")

	// 1. The factory disk boots slot a to roomd and the kiosk, and enrolls.
	// 2. A good release, with the power cut during its download and during
	// its first boot. It is rolled out as soon as the room has enrolled, so
	// the download overlaps the kiosk's start, as it may in a room.
	w.powerOn(ctx)
	w.checkBoot("a", "1.0.0", "from the factory disk")
	w.checkData()
	w.waitConsole(5*time.Minute, "roomd ready", roomdUp)
	toReady := time.Since(w.machine.Started())
	dd := w.waitDevice(3*time.Minute, "the room enrolls and reports 1.0.0", func(dd console.DeviceDetail) bool {
		return dd.Device.Online && dd.Update != nil && dd.Update.Status.Running == "1.0.0" && dd.Update.Status.Slot == "a"
	})
	t.Logf("enrolled as %s, update status %+v", dd.Device.ID, dd.Update.Status)
	ro := w.rollout(good)
	w.waitConsole(5*time.Minute, "the kiosk's home screen", kioskUp)
	toKiosk := time.Since(w.machine.Started())
	t.Logf("power-on to roomd ready: %.1f s, to the kiosk's home screen: %.1f s with the download under way (emulated: QEMU TCG; bench/results/image.txt has a quiet boot)", toReady.Seconds(), toKiosk.Seconds())
	if n := w.screenshot("kiosk-home.png"); n < 50 {
		t.Errorf("the screen has %d colours: not the kiosk's home screen (see the artifact)", n)
	}
	length := readManifest(t, v2).RootfsSize
	cutAt := length/5 + rng.Int64N(length/2)
	w.waitDevice(10*time.Minute, fmt.Sprintf("the download past %d MB", cutAt>>20), func(dd console.DeviceDetail) bool {
		return dd.Update != nil && dd.Update.Status.Version == "2.0.0" && dd.Update.Status.Written >= cutAt
	})
	w.powerCut(fmt.Sprintf("install of 2.0.0 from its delta past %d of %d MB", cutAt>>20, length>>20))
	w.powerOn(ctx)
	w.checkBoot("a", "1.0.0", "after the power cut during the download")
	w.checkData()
	w.waitConsole(5*time.Minute, "roomd ready after the power cut", roomdUp)
	w.waitConsole(20*time.Minute, "2.0.0 written from its delta", fromDelta)
	w.waitConsole(5*time.Minute, "roomd reboots into 2.0.0", rebooting)
	w.waitOff(2*time.Minute, "the reboot into 2.0.0")

	w.powerOn(ctx)
	w.checkBoot("b", "2.0.0", "after installing 2.0.0")
	delay := time.Duration(rng.Int64N(int64(20 * time.Second)))
	w.waitConsole(5*time.Minute, "2.0.0's roomd starts", roomdUp)
	time.Sleep(delay)
	w.powerCut(fmt.Sprintf("first boot of 2.0.0, %s after roomd started, before the health gate", delay.Round(time.Millisecond)))
	w.powerOn(ctx)
	w.checkBoot("b", "2.0.0", "after the power cut in 2.0.0's first boot (one try of 3 used)")
	w.waitConsole(5*time.Minute, "2.0.0's kiosk", kioskUp)
	dd = w.waitDevice(5*time.Minute, "2.0.0 committed", func(dd console.DeviceDetail) bool {
		return dd.Update != nil && dd.Update.Status.State == fleetapi.UpdateCommitted && dd.Update.Status.Running == "2.0.0"
	})
	if dd.Update.Status.Slot != "b" {
		t.Fatalf("2.0.0 committed in slot %q, want b", dd.Update.Status.Slot)
	}
	w.waitRollout(ro.ID, rollout.StateCompleted, 2*time.Minute)

	// 3. A release whose daemon cannot start: systemd gives up on roomd
	// and reboots (StartLimitAction), each boot uses a try, and then
	// systemd-boot falls back to slot b. Its first try finds one byte of
	// slot a changed on the disk: the initramfs refuses the slot and
	// reboots (panic=5), which uses a try too.
	//
	// Its update takes the third power cut: while roomd copies 3.0.0's
	// kernel and initramfs to the ESP (about 9 s here), before the loader
	// is armed. The room boots 2.0.0 again and stages anew.
	ro = w.rollout(bad)
	w.waitConsole(20*time.Minute, "3.0.0 written from its delta", fromDelta)
	w.waitConsole(5*time.Minute, "roomd stages 3.0.0's kernel", staging)
	delay = time.Duration(rng.Int64N(int64(3 * time.Second)))
	time.Sleep(delay)
	w.powerCut(fmt.Sprintf("%s into copying 3.0.0's kernel to the ESP", delay.Round(time.Millisecond)))
	w.powerOn(ctx)
	w.checkBoot("b", "2.0.0", "after the power cut while 3.0.0's kernel was copied")
	w.waitConsole(10*time.Minute, "roomd reboots into 3.0.0", rebooting)
	w.waitOff(2*time.Minute, "the reboot into 3.0.0")
	w.flipRootByte("a")
	w.powerOn(ctx)
	if slot := w.bootedSlot(); slot != "a" {
		t.Fatalf("the first boot after installing 3.0.0 started slot %s, want a", slot)
	}
	w.waitConsole(3*time.Minute, "the initramfs refuses the changed slot a", verityRefused)
	w.waitOff(2*time.Minute, "the initramfs gives up on slot a and reboots")
	w.flipRootByte("a")
	slots := []string{"a"}
	for {
		w.powerOn(ctx)
		slot := w.bootedSlot()
		slots = append(slots, slot)
		if slot == "b" {
			w.checkBoot("b", "2.0.0", "after the fallback")
			break
		}
		w.checkBoot("a", "3.0.0", "on trial of 3.0.0")
		if len(slots) > 4 {
			t.Fatalf("3.0.0 (slot a) booted %d times without the loader falling back", len(slots))
		}
		w.waitOff(6*time.Minute, "3.0.0 gives up on its roomd and reboots")
	}
	t.Logf("boots after installing 3.0.0: slots %v", slots)
	if !slices.Equal(slots, []string{"a", "a", "a", "b"}) {
		t.Errorf("slots booted after installing 3.0.0: %v, want three tries of a (the first refused by dm-verity), then b", slots)
	}
	w.waitConsole(5*time.Minute, "roomd of 2.0.0 after the fallback", roomdUp)
	dd = w.waitDevice(5*time.Minute, "the rollback reported", func(dd console.DeviceDetail) bool {
		return dd.Update != nil && dd.Update.Status.State == fleetapi.UpdateRolledBack
	})
	if st := dd.Update.Status; st.Running != "2.0.0" || st.Slot != "b" || !slices.Contains(st.NeverRetry, "3.0.0") {
		t.Fatalf("after the rollback the fleet sees %+v", st)
	}
	rd := w.waitRollout(ro.ID, rollout.StateHalted, 2*time.Minute)
	t.Logf("rollout of 3.0.0 halted: %s", rd.Rollout.Reason)

	// Resumed by someone, the rollout still does not make the room try
	// 3.0.0 again.
	w.fleet.Must(w.con.Do(http.MethodPost, "/api/v1/rollouts/"+ro.ID+"/resume", nil, nil), http.StatusOK, "resume")
	time.Sleep(8 * time.Second) // four check-ins
	if dd := w.device(); dd.Update == nil || dd.Update.Status.State != fleetapi.UpdateRolledBack || dd.Update.Status.Running != "2.0.0" {
		t.Fatalf("after resuming the rollout the room changed: %+v", dd.Update)
	}
	select {
	case <-w.machine.Done():
		t.Fatal("the room rebooted after the rollout of 3.0.0 was resumed")
	default:
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
