package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// dataScriptRun is one run of the overlay's initramfs script DataScript
// with stand-ins for blkid, e2fsck, mke2fs, mount and sleep, which record
// their arguments; rootmnt is a temporary tree.
type dataScriptRun struct {
	root   string // ${rootmnt}
	calls  []string
	kmsg   string
	status string
}

// dataCase is what the stand-ins report: present makes the data
// partition's device (a block device node no one opens); blkid prints
// blkidType and exits blkidExit; cmp says the first MiB is zeros when
// zeros; e2fsck -p exits fsckP, e2fsck -y fsckY; prepare runs on
// ${rootmnt} before the script.
type dataCase struct {
	present      bool
	blkidType    string
	blkidExit    int
	zeros        bool
	fsckP, fsckY int
	prepare      func(root string)
}

// runDataScript runs the script for one case.
func runDataScript(t *testing.T, c dataCase) dataScriptRun {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the script's test makes a block device node: run the tests as root")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	root := filepath.Join(dir, "root")
	log := filepath.Join(dir, "calls")
	for _, d := range []string{bin, filepath.Join(root, "data"), filepath.Join(root, "etc"), filepath.Join(root, "var/lib/atrium")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if c.prepare != nil {
		c.prepare(root)
	}
	dev := filepath.Join(dir, "data-dev")
	if c.present {
		if err := syscall.Mknod(dev, syscall.S_IFBLK|0o600, 7<<8|250); err != nil {
			t.Fatalf("mknod: %v", err)
		}
	}
	stub := func(name, body string) { stubProgram(t, bin, log, name, body) }
	stub("blkid", "[ -n '"+c.blkidType+"' ] && echo '"+c.blkidType+"'\nexit "+strconv.Itoa(c.blkidExit))
	stub("e2fsck", "case \"$1\" in -p) exit "+strconv.Itoa(c.fsckP)+";; -y) exit "+strconv.Itoa(c.fsckY)+";; esac\nexit 8")
	cmpExit := 1
	if c.zeros {
		cmpExit = 0
	}
	stub("cmp", "exit "+strconv.Itoa(cmpExit))
	stub("mke2fs", "exit 0")
	stub("mount", "exit 0")
	stub("sleep", "exit 0")
	kmsg, status := filepath.Join(dir, "kmsg"), filepath.Join(dir, "status")
	cmd := exec.Command("/bin/sh", filepath.Join("..", "overlay", filepath.FromSlash(DataScript)))
	cmd.Env = []string{
		"PATH=" + bin + ":/usr/bin:/bin",
		"rootmnt=" + root,
		"ATRIUM_DATA_DEV=" + dev,
		"ATRIUM_DATA_KMSG=" + kmsg,
		"ATRIUM_DATA_STATUS=" + status,
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the script failed: %v\n%s", err, out)
	}
	r := dataScriptRun{root: root}
	calls, _ := os.ReadFile(log)
	for _, l := range strings.Split(strings.TrimSpace(string(calls)), "\n") {
		r.calls = append(r.calls, strings.ReplaceAll(strings.ReplaceAll(l, root, "ROOT"), dev, "DEV"))
	}
	k, _ := os.ReadFile(kmsg)
	st, _ := os.ReadFile(status)
	r.kmsg, r.status = strings.ReplaceAll(string(k), dev, "DEV"), strings.TrimSpace(strings.ReplaceAll(string(st), dev, "DEV"))
	return r
}

// stubProgram writes a shell script named name into bin that appends
// "name ARGS" to the file log and then runs body: a stand-in for a
// program an initramfs script calls.
func stubProgram(t *testing.T, bin, log, name, body string) {
	t.Helper()
	script := "#!/bin/sh\necho \"" + name + " $*\" >>" + log + "\n" + body + "\n"
	if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (r dataScriptRun) called(prefix string) bool {
	for _, c := range r.calls {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

func (r dataScriptRun) exists(p string) bool {
	_, err := os.Lstat(filepath.Join(r.root, p))
	return err == nil
}

const (
	overlayMount = "mount -t overlay -o lowerdir=ROOT/etc,upperdir=ROOT/data/os/etc,workdir=ROOT/data/os/work atrium-etc ROOT/etc"
	bindMount    = "mount -o bind ROOT/data/state ROOT/var/lib/atrium"
	tmpfsMount   = "mount -t tmpfs -o mode=0755,nosuid,nodev atrium-data ROOT/data"
	ext4Mount    = "mount -t ext4 -o noatime,nosuid,nodev DEV ROOT/data"
)

// Every case ends with /etc's overlay and the state directory's bind
// mount, whatever happened to the partition, and the reset marker.
func (r dataScriptRun) checkCommon(t *testing.T) {
	t.Helper()
	for _, want := range []string{overlayMount, bindMount} {
		if !r.called(want) {
			t.Errorf("no %q in %q", want, r.calls)
		}
	}
	for _, p := range []string{"data/state/.os-settings", "data/os/etc", "data/os/work"} {
		if !r.exists(p) {
			t.Errorf("%s is missing after the script", p)
		}
	}
}

func TestDataScriptKeepsSettings(t *testing.T) {
	r := runDataScript(t, dataCase{present: true, blkidType: "ext4", prepare: func(root string) {
		writeFile(t, filepath.Join(root, "data/state/.os-settings"), "")
		writeFile(t, filepath.Join(root, "data/os/etc/hostname"), "room-1\n")
	}})
	r.checkCommon(t)
	if !r.called("e2fsck -p DEV") || !r.called(ext4Mount) || r.called("mke2fs") || r.called(tmpfsMount) {
		t.Errorf("calls %q", r.calls)
	}
	if !r.exists("data/os/etc/hostname") {
		t.Error("the saved host name is gone although the state was not reset")
	}
	if r.status != "mounted" || !strings.Contains(r.kmsg, "<5>atrium-data: DEV mounted at /data\n") {
		t.Errorf("status %q, kernel log %q", r.status, r.kmsg)
	}
}

// A factory reset removed the marker with the rest of roomd's state: the
// saved /etc (host name, machine ID, profiles) goes too.
func TestDataScriptResetDropsSettings(t *testing.T) {
	r := runDataScript(t, dataCase{present: true, blkidType: "ext4", fsckP: 1, prepare: func(root string) {
		writeFile(t, filepath.Join(root, "data/os/etc/hostname"), "room-1\n")
		writeFile(t, filepath.Join(root, "data/os/etc/machine-id"), "0123456789abcdef0123456789abcdef\n")
	}})
	r.checkCommon(t)
	if r.exists("data/os/etc/hostname") || r.exists("data/os/etc/machine-id") {
		t.Error("settings saved before the reset survived it")
	}
	if r.called("e2fsck -y") || r.status != "mounted" {
		t.Errorf("e2fsck -p exit 1 (repaired) should mount: status %q, calls %q", r.status, r.calls)
	}
}

func TestDataScriptMissingPartition(t *testing.T) {
	r := runDataScript(t, dataCase{})
	r.checkCommon(t)
	if !r.called(tmpfsMount) || r.called("blkid") || r.called("e2fsck") || r.called(ext4Mount) {
		t.Errorf("calls %q", r.calls)
	}
	if r.status != "memory: no partition named data" ||
		!strings.Contains(r.kmsg, "<3>atrium-data: no partition named data; settings and room state live in memory until the next boot\n") {
		t.Errorf("status %q, kernel log %q", r.status, r.kmsg)
	}
}

// blkid -p on a blank partition exits 0 (it found the partition entry)
// with no TYPE; on a blank whole disk it exits 2.
func TestDataScriptFormatsBlankPartition(t *testing.T) {
	for _, exit := range []int{0, 2} {
		r := runDataScript(t, dataCase{present: true, blkidExit: exit, zeros: true})
		r.checkCommon(t)
		if !r.called("mke2fs -q -t ext4 -L data DEV") || !r.called(ext4Mount) || r.called(tmpfsMount) {
			t.Errorf("blkid exit %d: calls %q", exit, r.calls)
		}
		if r.status != "formatted" || !strings.Contains(r.kmsg, "<5>atrium-data: DEV is blank: formatting it (ext4)\n") {
			t.Errorf("blkid exit %d: status %q, kernel log %q", exit, r.status, r.kmsg)
		}
	}
}

func TestDataScriptBlkidFails(t *testing.T) {
	r := runDataScript(t, dataCase{present: true, blkidExit: 4, zeros: true})
	r.checkCommon(t)
	if r.called("mke2fs") || !r.called(tmpfsMount) || r.status != "memory: blkid cannot read DEV (exit 4)" {
		t.Errorf("status %q, calls %q", r.status, r.calls)
	}
}

func TestDataScriptLeavesOtherFileSystems(t *testing.T) {
	r := runDataScript(t, dataCase{present: true, blkidType: "vfat"})
	r.checkCommon(t)
	if r.called("mke2fs") || r.called("e2fsck") || !r.called(tmpfsMount) {
		t.Errorf("calls %q", r.calls)
	}
	if r.status != "memory: DEV holds a vfat file system, not ext4: left alone" {
		t.Errorf("status %q", r.status)
	}
}

func TestDataScriptDamagedFileSystem(t *testing.T) {
	r := runDataScript(t, dataCase{present: true, blkidType: "ext4", fsckP: 4, fsckY: 8})
	r.checkCommon(t)
	if !r.called("e2fsck -y DEV") || r.called(ext4Mount) || !r.called(tmpfsMount) || r.called("mke2fs") {
		t.Errorf("calls %q", r.calls)
	}
	if r.status != "memory: e2fsck cannot repair DEV (exit 8)" ||
		!strings.Contains(r.kmsg, "<3>atrium-data: e2fsck -p DEV: exit 4; repairing with e2fsck -y\n") {
		t.Errorf("status %q, kernel log %q", r.status, r.kmsg)
	}
}

// No signature, but not zeros either (an ext4 whose first superblock is
// damaged, say): not formatted, and the room runs from memory.
func TestDataScriptKeepsUnknownContent(t *testing.T) {
	r := runDataScript(t, dataCase{present: true, blkidExit: 2})
	r.checkCommon(t)
	if r.called("mke2fs") || r.called("e2fsck") || !r.called(tmpfsMount) || !r.called("cmp -s -n 1048576 DEV /dev/zero") {
		t.Errorf("calls %q", r.calls)
	}
	if r.status != "memory: DEV holds no file system blkid knows and is not blank: left alone" {
		t.Errorf("status %q", r.status)
	}
}

// Of the saved /etc only the settings roomd changes and the machine ID
// persist; whatever else was written there is dropped at boot.
func TestDataScriptPrunesSavedEtc(t *testing.T) {
	kept := []string{"hostname", "machine-id", "machine-info", "timezone", "adjtime", "NetworkManager/system-connections/atrium-wired.nmconnection"}
	dropped := []string{"passwd", ".pwd.lock", "NetworkManager/NetworkManager.conf", "NetworkManager/conf.d/x.conf", "systemd/system/evil.service"}
	r := runDataScript(t, dataCase{present: true, blkidType: "ext4", prepare: func(root string) {
		writeFile(t, filepath.Join(root, "data/state/.os-settings"), "")
		for _, p := range append(append([]string{}, kept...), dropped...) {
			writeFile(t, filepath.Join(root, "data/os/etc", p), "x\n")
		}
		if err := os.Symlink("../usr/share/zoneinfo/Europe/Berlin", filepath.Join(root, "data/os/etc/localtime")); err != nil {
			t.Fatal(err)
		}
		// A whiteout: the file was deleted from /etc.
		if err := syscall.Mknod(filepath.Join(root, "data/os/etc/issue"), syscall.S_IFCHR|0o600, 0); err != nil {
			t.Fatal(err)
		}
	}})
	r.checkCommon(t)
	for _, p := range append(kept, "localtime") {
		if !r.exists("data/os/etc/" + p) {
			t.Errorf("%s was dropped", p)
		}
	}
	for _, p := range append(dropped, "issue") {
		if r.exists("data/os/etc/" + p) {
			t.Errorf("%s was kept", p)
		}
	}
}
