package image

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Paths inside the image that other parts of Atrium rely on.
const (
	// OSReleasePath carries IMAGE_ID=atrium and IMAGE_VERSION (roomd's
	// [update] os_release).
	OSReleasePath = "/usr/lib/os-release"
	// BuildTimePath holds the build time (RFC 3339, UTC): the image's
	// time floor for OTA.
	BuildTimePath = "/usr/share/atrium/build-time"
	// ClockEpochPath is systemd's clock floor: at boot the system clock is
	// moved forward to this file's mtime, which is the build time.
	ClockEpochPath = "/usr/lib/clock-epoch"
	// UpdateRootPath is the release repository's root.json (roomd's
	// [update] trusted_root).
	UpdateRootPath = "/usr/share/atrium/update-root.json"
	// UnitDir and SysusersDir are the vendor directories of systemd.
	UnitDir     = "/usr/lib/systemd/system"
	SysusersDir = "/usr/lib/sysusers.d"
	// DataMount is where the initramfs mounts the data partition (or a
	// tmpfs in its place); StateDir is roomd's state directory, the
	// partition's state/ bound there; the partition's os/etc is the
	// upper directory of an overlay on /etc. See DataScript.
	DataMount = "/data"
	StateDir  = "/var/lib/atrium"
	// DataScript (initramfs-tools, local-bottom) and DataHook (what it
	// needs in the initramfs) come from the overlay; Apply checks they
	// are there and executable, since the writable state depends on them.
	DataScript = "/etc/initramfs-tools/scripts/local-bottom/atrium-data"
	DataHook   = "/etc/initramfs-tools/hooks/atrium-data"
	// VerityScript (local-top) opens the root slot with dm-verity when
	// the entry gives a root hash; VerityHook puts veritysetup and the
	// dm-verity module in the initramfs. Checked like DataScript: a room
	// whose entry names the checked root cannot boot without them.
	VerityScript = "/etc/initramfs-tools/scripts/local-top/atrium-verity"
	VerityHook   = "/etc/initramfs-tools/hooks/atrium-verity"
)

// Layer is what Atrium lays over the Debian base.
type Layer struct {
	// Source is the repository's rootfs directory: overlay/ (copied to
	// /), systemd/ (units and sysusers) and pipewire/ (to /etc/pipewire).
	Source string
	// Version is the image's IMAGE_VERSION; BuildTime its build time.
	Version   string
	BuildTime time.Time
	// Roomd, Roomctl and Roomkiosk are the built programs.
	Roomd, Roomctl, Roomkiosk string
	// UpdateRoot is the release repository's root.json.
	UpdateRoot string
}

// enabled are the units the image starts, by the target that wants them.
var enabled = []struct{ target, unit string }{
	{"multi-user.target", "roomd.service"},
	{"graphical.target", "atrium-kiosk.service"},
}

// masked are units of the base the image must not start: the getty the
// kiosk replaces on tty1 (both are wanted at boot, and they conflict), and
// dpkg's database backup, which cannot write to a read-only root.
var masked = []string{"getty@tty1.service", "dpkg-db-backup.timer", "dpkg-db-backup.service"}

// ValidVersion reports whether v may be an os-release IMAGE_VERSION and a
// file name: letters, digits and ._+~- only, not starting with a dot or
// dash.
func ValidVersion(v string) bool {
	if v == "" || len(v) > 64 || v[0] == '.' || v[0] == '-' {
		return false
	}
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("._+~-", r):
		default:
			return false
		}
	}
	return true
}

func (l Layer) check() error {
	if !ValidVersion(l.Version) {
		return fmt.Errorf("image version %q: use letters, digits and ._+~- only", l.Version)
	}
	if l.BuildTime.IsZero() {
		return errors.New("image build time is not set")
	}
	for name, p := range map[string]string{"roomd": l.Roomd, "roomctl": l.Roomctl, "roomkiosk": l.Roomkiosk, "update root": l.UpdateRoot, "rootfs source": l.Source} {
		if p == "" {
			return fmt.Errorf("%s: no path given", name)
		}
	}
	return nil
}

// Apply writes the layer into tree, a Debian root extracted from the base.
// It runs no program; files are owned by root (the build runs as root).
func (l Layer) Apply(tree string) error {
	if err := l.check(); err != nil {
		return err
	}
	w := treeWriter{root: tree}

	if err := w.copyTree(filepath.Join(l.Source, "overlay"), "/"); err != nil {
		return err
	}
	if err := w.copyTree(filepath.Join(l.Source, "pipewire"), "/etc/pipewire"); err != nil {
		return err
	}
	if err := l.installUnits(w); err != nil {
		return err
	}
	for _, b := range []struct{ src, dst string }{
		{l.Roomd, "/usr/bin/roomd"}, {l.Roomctl, "/usr/bin/roomctl"}, {l.Roomkiosk, "/usr/bin/roomkiosk"},
	} {
		if err := w.copyFile(b.src, b.dst, 0o755); err != nil {
			return err
		}
	}

	root, err := os.ReadFile(l.UpdateRoot)
	if err != nil {
		return fmt.Errorf("read update root: %w", err)
	}
	if !json.Valid(root) {
		return fmt.Errorf("update root %s: not JSON", l.UpdateRoot)
	}
	if err := w.write(UpdateRootPath, root, 0o644); err != nil {
		return err
	}

	osr, err := os.ReadFile(filepath.Join(tree, OSReleasePath))
	if err != nil {
		return fmt.Errorf("read the base's os-release: %w", err)
	}
	if err := w.write(OSReleasePath, OSRelease(osr, l.Version), 0o644); err != nil {
		return err
	}
	if err := w.write(BuildTimePath, []byte(l.BuildTime.UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	if err := w.write(ClockEpochPath, nil, 0o644); err != nil {
		return err
	}

	// An empty machine-id: at the first boot systemd makes one, and
	// systemd-machine-id-commit writes it to /etc, which the initramfs
	// (DataScript) made writable with an overlay on the data partition;
	// a factory reset drops that overlay, so the next boot makes a new
	// one. The host name is the image's default until roomd sets one
	// through hostname1 (kept in the same overlay).
	if err := w.write("/etc/machine-id", nil, 0o444); err != nil {
		return err
	}
	if err := w.write("/etc/hostname", []byte("atrium\n"), 0o644); err != nil {
		return err
	}
	if err := w.write("/etc/hosts", []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"), 0o644); err != nil {
		return err
	}
	if err := w.symlink("../run/NetworkManager/resolv.conf", "/etc/resolv.conf"); err != nil {
		return err
	}
	// Mount points: the data partition, roomd's state directory on it,
	// and the ESP (fstab mounts it at an empty /efi).
	for _, d := range []struct {
		p    string
		mode os.FileMode
	}{{DataMount, 0o755}, {StateDir, 0o755}, {"/efi", 0o700}} {
		if err := w.mkdir(d.p, d.mode); err != nil {
			return err
		}
	}
	for _, p := range []string{DataScript, DataHook, VerityScript, VerityHook} {
		fi, err := os.Lstat(w.path(p))
		if err != nil {
			return fmt.Errorf("initramfs scripts: %w", err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("initramfs scripts: %s is not an executable file (%v): initramfs-tools would skip it", p, fi.Mode())
		}
	}
	return nil
}

// installUnits copies rootfs/systemd: units to UnitDir, NAME.sysusers.conf
// to SysusersDir/NAME.conf; then enables the image's units.
func (l Layer) installUnits(w treeWriter) error {
	dir := filepath.Join(l.Source, "systemd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read units: %w", err)
	}
	for _, e := range entries { // sorted by name
		if !e.Type().IsRegular() {
			continue
		}
		name := e.Name()
		src := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, ".sysusers.conf"):
			err = w.copyFile(src, path.Join(SysusersDir, strings.TrimSuffix(name, ".sysusers.conf")+".conf"), 0o644)
		case isUnit(name):
			err = w.copyFile(src, path.Join(UnitDir, name), 0o644)
		default:
			err = fmt.Errorf("install units: %s is neither a unit nor a sysusers file", src)
		}
		if err != nil {
			return err
		}
	}
	for _, e := range enabled {
		if _, err := os.Stat(filepath.Join(w.root, UnitDir, e.unit)); err != nil {
			return fmt.Errorf("enable %s: %w", e.unit, err)
		}
		if err := w.symlink(path.Join(UnitDir, e.unit), path.Join("/etc/systemd/system", e.target+".wants", e.unit)); err != nil {
			return err
		}
	}
	for _, u := range masked {
		if err := w.symlink("/dev/null", path.Join("/etc/systemd/system", u)); err != nil {
			return err
		}
	}
	return w.symlink(path.Join(UnitDir, "graphical.target"), "/etc/systemd/system/default.target")
}

func isUnit(name string) bool {
	return slices.Contains([]string{".service", ".socket", ".target", ".timer", ".mount", ".path"}, path.Ext(name))
}

// OSRelease returns base (Debian's os-release) with the image's identity:
// IMAGE_ID=atrium, IMAGE_VERSION=version and a PRETTY_NAME naming both.
func OSRelease(base []byte, version string) []byte {
	var b bytes.Buffer
	pretty := "Atrium " + version
	sc := bufio.NewScanner(bytes.NewReader(base))
	for sc.Scan() {
		line := sc.Text()
		key, val, _ := strings.Cut(line, "=")
		switch key {
		case "IMAGE_ID", "IMAGE_VERSION":
			continue
		case "PRETTY_NAME":
			if v := strings.Trim(val, `"`); v != "" {
				pretty += " (" + v + ")"
			}
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "PRETTY_NAME=%q\nIMAGE_ID=atrium\nIMAGE_VERSION=%s\n", pretty, version)
	return b.Bytes()
}

// treeWriter writes into a root tree by absolute in-image paths. What it
// writes replaces what was there, is owned by root and has exactly the
// mode given.
type treeWriter struct{ root string }

func (w treeWriter) path(p string) string { return filepath.Join(w.root, filepath.FromSlash(p)) }

func (w treeWriter) mkdir(p string, mode os.FileMode) error {
	full := w.path(p)
	if err := os.MkdirAll(full, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	if err := os.Chmod(full, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	if err := os.Lchown(full, 0, 0); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return nil
}

func (w treeWriter) write(p string, data []byte, mode os.FileMode) error {
	full := w.path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return fmt.Errorf("create directory of %s: %w", p, err)
	}
	// Remove first: the base may have a symlink or a read-only file here,
	// and writing through a symlink could leave the tree.
	if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", p, err)
	}
	if err := os.WriteFile(full, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Chmod(full, mode); err != nil { // not the umask's
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	if err := os.Lchown(full, 0, 0); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return nil
}

func (w treeWriter) copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	return w.write(dst, data, mode)
}

func (w treeWriter) symlink(target, p string) error {
	full := w.path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return fmt.Errorf("create directory of %s: %w", p, err)
	}
	if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", p, err)
	}
	if err := os.Symlink(target, full); err != nil {
		return fmt.Errorf("link %s: %w", p, err)
	}
	if err := os.Lchown(full, 0, 0); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return nil
}

// copyTree copies the files under src to dst in the image: directories
// 0755, files 0755 when executable in the repository, 0644 otherwise
// (git keeps no other mode bits). A missing src copies nothing.
func (w treeWriter) copyTree(src, dst string) error {
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := path.Join(dst, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			if rel == "." {
				return nil
			}
			// Existing directories of the base keep their mode.
			if fi, err := os.Lstat(w.path(target)); err == nil && fi.IsDir() {
				return nil
			}
			return w.mkdir(target, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
			mode := os.FileMode(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			return w.copyFile(p, target, mode)
		default:
			return fmt.Errorf("copy %s: only files and directories belong in %s", p, src)
		}
	})
}
