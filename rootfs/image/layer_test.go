package image

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/config"
)

const debianOSRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
`

var testBuildTime = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// fakeBase makes a tree with the few files of a Debian base the layer
// reads or replaces.
func fakeBase(t *testing.T) string {
	t.Helper()
	tree := t.TempDir()
	for p, data := range map[string]string{
		"usr/lib/os-release":          debianOSRelease,
		"etc/initramfs-tools/modules": "# debian's list\n",
		"etc/resolv.conf":             "nameserver 10.0.0.1\n",
		"etc/machine-id":              "0123456789abcdef0123456789abcdef\n",
	} {
		full := filepath.Join(tree, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../usr/lib/os-release", filepath.Join(tree, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	return tree
}

// testLayer is a layer of the repository's rootfs with stand-in programs.
func testLayer(t *testing.T) Layer {
	t.Helper()
	dir := t.TempDir()
	l := Layer{Source: "..", Version: "2026.11.1", BuildTime: testBuildTime}
	for _, p := range []struct {
		dst  *string
		name string
		data string
	}{
		{&l.Roomd, "roomd", "#!/bin/sh\necho roomd\n"},
		{&l.Roomctl, "roomctl", "#!/bin/sh\necho roomctl\n"},
		{&l.Roomkiosk, "roomkiosk", "#!/bin/sh\necho roomkiosk\n"},
		{&l.UpdateRoot, "root.json", `{"signed":{"_type":"root","version":1},"signatures":[]}`},
	} {
		*p.dst = filepath.Join(dir, p.name)
		if err := os.WriteFile(*p.dst, []byte(p.data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func applied(t *testing.T) (string, Layer) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the layer writes root-owned files: run the tests as root (the image build needs root anyway)")
	}
	tree := fakeBase(t)
	l := testLayer(t)
	if err := l.Apply(tree); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return tree, l
}

func readTree(t *testing.T, tree, p string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(tree, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestApplyFilesModesOwners(t *testing.T) {
	tree, _ := applied(t)
	for _, c := range []struct {
		path string
		mode os.FileMode
		want string // a line the file must contain; "" checks nothing
	}{
		{"/usr/bin/roomd", 0o755, "echo roomd"},
		{"/usr/bin/roomctl", 0o755, "echo roomctl"},
		{"/usr/bin/roomkiosk", 0o755, "echo roomkiosk"},
		{"/usr/lib/systemd/system/roomd.service", 0o644, "ExecStart=/usr/bin/roomd -config /etc/atrium/roomd.toml"},
		{"/usr/lib/systemd/system/atrium-kiosk.service", 0o644, "User=atrium"},
		{"/usr/lib/sysusers.d/atrium.conf", 0o644, `u atrium -:atrium "Atrium room daemon" /var/lib/atrium`},
		{"/etc/pipewire/pipewire.conf.d/50-atrium-echo-cancel.conf", 0o644, ""},
		{"/etc/polkit-1/rules.d/50-atrium.rules", 0o644, "polkit.addRule"},
		{"/etc/atrium/roomd.toml", 0o644, `boot = "systemd-boot"`},
		{"/etc/initramfs-tools/modules", 0o644, "squashfs"},
		{"/etc/fstab", 0o644, "tmpfs           /var/lib/systemd tmpfs"},
		{"/etc/initramfs-tools/scripts/local-bottom/atrium-data", 0o755, `upperdir=$DATA/os/etc,workdir=$DATA/os/work`},
		{"/etc/initramfs-tools/hooks/atrium-data", 0o755, "copy_exec /sbin/e2fsck /sbin"},
		{"/etc/systemd/journald.conf.d/50-atrium.conf", 0o644, "Storage=volatile"},
		{"/usr/share/atrium/update-root.json", 0o644, `"_type":"root"`},
		{"/usr/share/atrium/build-time", 0o644, "2026-11-21T12:00:00Z"},
		{"/usr/lib/clock-epoch", 0o644, ""},
		{"/etc/machine-id", 0o444, ""},
		{"/etc/hostname", 0o644, "atrium"},
		{"/etc/udev/rules.d/70-atrium-slots.rules", 0o644, `ENV{ID_PART_ENTRY_NAME}=="root-a|root-b", GROUP="atrium"`},
		{"/usr/lib/systemd/system/roomd.service.d/50-atrium-image.conf", 0o644, "ReadWritePaths=/efi"},
		{"/usr/lib/systemd/system/roomd.service.d/50-atrium-image.conf", 0o644, `ExecStopPost=+/bin/sh -c 'if [ "$$EXIT_STATUS" = 75 ]; then`},
		{"/usr/lib/systemd/system/roomd.service.d/50-atrium-image.conf", 0o644, "StartLimitAction=reboot"},
	} {
		fi, err := os.Lstat(filepath.Join(tree, c.path))
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != c.mode {
			t.Errorf("%s: mode %v, want regular %v", c.path, fi.Mode(), c.mode)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: owner %d:%d, want 0:0", c.path, st.Uid, st.Gid)
		}
		if c.want != "" && !strings.Contains(readTree(t, tree, c.path), c.want) {
			t.Errorf("%s does not contain %q:\n%s", c.path, c.want, readTree(t, tree, c.path))
		}
	}
	if got := readTree(t, tree, "/etc/machine-id"); got != "" {
		t.Errorf("/etc/machine-id = %q, want empty (systemd makes the ID at the first boot)", got)
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{"/data", 0o755}, {"/var/lib/atrium", 0o755}, {"/efi", 0o700}} {
		fi, err := os.Lstat(filepath.Join(tree, d.path))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != d.mode {
			t.Errorf("mount point %s: %v %v, want directory %v", d.path, fi, err, d.mode)
		}
	}
}

func TestApplySymlinks(t *testing.T) {
	tree, _ := applied(t)
	for link, want := range map[string]string{
		"/etc/systemd/system/multi-user.target.wants/roomd.service":       "/usr/lib/systemd/system/roomd.service",
		"/etc/systemd/system/graphical.target.wants/atrium-kiosk.service": "/usr/lib/systemd/system/atrium-kiosk.service",
		"/etc/systemd/system/default.target":                              "/usr/lib/systemd/system/graphical.target",
		"/etc/resolv.conf":                                                "../run/NetworkManager/resolv.conf",
		"/etc/os-release":                                                 "../usr/lib/os-release",
	} {
		got, err := os.Readlink(filepath.Join(tree, link))
		if err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", link, got, err, want)
		}
	}
}

func TestApplyOSRelease(t *testing.T) {
	tree, _ := applied(t)
	want := `NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
PRETTY_NAME="Atrium 2026.11.1 (Debian GNU/Linux 12 (bookworm))"
IMAGE_ID=atrium
IMAGE_VERSION=2026.11.1
`
	if got := readTree(t, tree, OSReleasePath); got != want {
		t.Errorf("os-release:\n%s\nwant:\n%s", got, want)
	}
	// Applying twice (an os-release that already names an image) gives
	// the same file: the old identity is replaced, not repeated.
	if got := string(OSRelease([]byte(want), "2026.11.1")); strings.Count(got, "IMAGE_VERSION=") != 1 {
		t.Errorf("OSRelease over an image's os-release:\n%s", got)
	}
}

// The image's roomd.toml is one roomd accepts, with updates on through
// systemd-boot and the slots and files the image provides.
func TestApplyRoomdConfig(t *testing.T) {
	tree, _ := applied(t)
	cfg, err := config.Parse("roomd.toml", []byte(readTree(t, tree, "/etc/atrium/roomd.toml")))
	if err != nil {
		t.Fatalf("roomd refuses the image's roomd.toml: %v", err)
	}
	u := cfg.Update
	if !u.Enabled || u.Boot != "systemd-boot" || u.ESP != "/efi" ||
		u.SlotA != "/dev/disk/by-partlabel/root-a" || u.SlotB != "/dev/disk/by-partlabel/root-b" ||
		u.TrustedRoot != UpdateRootPath || u.OSRelease != OSReleasePath {
		t.Errorf("[update] = %+v", u)
	}
	if cfg.Daemon.StateDir != "/var/lib/atrium" {
		t.Errorf("state_dir = %q, want the data partition's /var/lib/atrium", cfg.Daemon.StateDir)
	}
	for _, p := range []string{u.TrustedRoot, u.OSRelease} {
		if _, err := os.Stat(filepath.Join(tree, p)); err != nil {
			t.Errorf("roomd.toml names %s, which the image lacks: %v", p, err)
		}
	}
}

func TestApplyKioskUnit(t *testing.T) {
	tree, _ := applied(t)
	unit := readTree(t, tree, "/usr/lib/systemd/system/atrium-kiosk.service")
	for _, want := range []string{
		"ExecStart=/usr/bin/cage -d -s -- /usr/bin/roomkiosk -url http://127.0.0.1:8480/",
		"User=atrium", "PAMName=login", "Environment=WLR_RENDERER=pixman", "TTYPath=/dev/tty1", "Conflicts=getty@tty1.service", "WantedBy=graphical.target",
	} {
		if !strings.Contains(unit, want+"\n") {
			t.Errorf("kiosk unit lacks %q", want)
		}
	}
}

// The polkit rules, run in node with a stand-in polkit object: the atrium
// user gets exactly what provisioning/osconfig calls, others nothing.
func TestPolkitRules(t *testing.T) {
	tree, _ := applied(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node (Debian's nodejs) is needed to run the polkit rules: apt-get install nodejs")
	}
	harness := `
const fs = require("fs");
const rules = [];
const polkit = { Result: { YES: "yes", NO: "no", NOT_HANDLED: null }, addRule: f => rules.push(f) };
new Function("polkit", fs.readFileSync(process.argv[1], "utf8"))(polkit);
const out = JSON.parse(fs.readFileSync(0, "utf8")).map(q => {
	const action = { id: q.id, lookup: k => (q.details || {})[k] };
	for (const r of rules) { const v = r(action, { user: q.user }); if (v !== null && v !== undefined) return v; }
	return null;
});
process.stdout.write(JSON.stringify(out));
`
	type query struct {
		User    string            `json:"user"`
		ID      string            `json:"id"`
		Details map[string]string `json:"details,omitempty"`
		want    any
	}
	yes := "yes"
	qs := []query{
		{User: "atrium", ID: "org.freedesktop.hostname1.set-static-hostname", want: yes},
		{User: "atrium", ID: "org.freedesktop.hostname1.set-hostname", want: yes},
		{User: "atrium", ID: "org.freedesktop.timedate1.set-timezone", want: yes},
		{User: "atrium", ID: "org.freedesktop.timedate1.set-ntp", want: yes},
		{User: "atrium", ID: "org.freedesktop.login1.reboot", want: yes},
		{User: "atrium", ID: "org.freedesktop.login1.power-off", want: yes},
		{User: "atrium", ID: "org.freedesktop.login1.inhibit-block-shutdown", want: yes},
		{User: "atrium", ID: "org.freedesktop.login1.inhibit-block-sleep", want: yes},
		{User: "atrium", ID: "org.freedesktop.NetworkManager.settings.modify.system", want: yes},
		{User: "atrium", ID: "org.freedesktop.NetworkManager.network-control", want: yes},
		{User: "atrium", ID: "org.freedesktop.systemd1.manage-units", Details: map[string]string{"verb": "restart", "unit": "roomd.service"}, want: yes},
		{User: "atrium", ID: "org.freedesktop.systemd1.manage-units", Details: map[string]string{"verb": "stop", "unit": "roomd.service"}, want: nil},
		{User: "atrium", ID: "org.freedesktop.systemd1.manage-units", Details: map[string]string{"verb": "restart", "unit": "ssh.service"}, want: nil},
		{User: "atrium", ID: "org.freedesktop.timedate1.set-time", want: nil},
		{User: "atrium", ID: "org.freedesktop.login1.reboot-ignore-inhibit", want: nil},
		{User: "nobody", ID: "org.freedesktop.login1.reboot", want: nil},
		{User: "nobody", ID: "org.freedesktop.NetworkManager.settings.modify.system", want: nil},
	}
	in, err := json.Marshal(qs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "-e", harness, filepath.Join(tree, "etc/polkit-1/rules.d/50-atrium.rules"))
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node on the polkit rules: %v\n%s", err, out)
	}
	var got []any
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(qs) {
		t.Fatalf("harness output %s: %v", out, err)
	}
	for i, q := range qs {
		if got[i] != q.want {
			t.Errorf("%s asks %s %v: %v, want %v", q.User, q.ID, q.Details, got[i], q.want)
		}
	}
}

func TestApplyRefuses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("run the tests as root")
	}
	for name, mutate := range map[string]func(l *Layer){
		"bad version":   func(l *Layer) { l.Version = "1.0 beta" },
		"dot version":   func(l *Layer) { l.Version = "../x" },
		"no build time": func(l *Layer) { l.BuildTime = time.Time{} },
		"no roomd":      func(l *Layer) { l.Roomd = "" },
		"missing roomd": func(l *Layer) { l.Roomd = "/nonexistent/roomd" },
		"root not json": func(l *Layer) {
			if err := os.WriteFile(l.UpdateRoot, []byte("not json"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			l := testLayer(t)
			mutate(&l)
			if err := l.Apply(fakeBase(t)); err == nil {
				t.Error("Apply accepted it")
			}
		})
	}
}

func TestFinishCommands(t *testing.T) {
	tree := t.TempDir()
	writeFile(t, filepath.Join(tree, "etc/group"), "root:x:0:\nsystemd-journal:x:999:\natrium:x:998:\n")
	writeFile(t, filepath.Join(tree, "etc/fstab"), "# fstab\n")
	for _, p := range leftovers {
		full := filepath.Join(tree, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := &fakeRunner{}
	if err := Finish(context.Background(), r, tree, testBuildTime); err != nil {
		t.Fatal(err)
	}
	want := "SOURCE_DATE_EPOCH=1795262400 chroot " + tree + " systemd-sysusers\n" +
		"SOURCE_DATE_EPOCH=1795262400 chroot " + tree + " update-initramfs -u -k all\n"
	if got := r.String(); got != want {
		t.Errorf("commands:\n%s\nwant:\n%s", got, want)
	}
	for _, p := range leftovers {
		if _, err := os.Lstat(filepath.Join(tree, p)); !os.IsNotExist(err) {
			t.Errorf("%s left in the tree: %v", p, err)
		}
	}
	wantFstab := "# fstab\nPARTLABEL=esp  /efi  vfat  uid=0,gid=998,fmask=0117,dmask=0007,noexec,nosuid,nodev,nofail,x-systemd.device-timeout=30s  0  2\n"
	if got := readTree(t, tree, "/etc/fstab"); got != wantFstab {
		t.Errorf("fstab:\n%s\nwant:\n%s", got, wantFstab)
	}
	// Twice would mount /efi twice: refused.
	if err := Finish(context.Background(), r, tree, testBuildTime); err == nil {
		t.Error("a second Finish added a second /efi line")
	}
}

func TestFinishNeedsAtriumGroup(t *testing.T) {
	tree := t.TempDir()
	writeFile(t, filepath.Join(tree, "etc/group"), "root:x:0:\n")
	writeFile(t, filepath.Join(tree, "etc/fstab"), "")
	if err := Finish(context.Background(), &fakeRunner{}, tree, testBuildTime); err == nil || !strings.Contains(err.Error(), "atrium") {
		t.Errorf("Finish without the atrium group: %v", err)
	}
}
