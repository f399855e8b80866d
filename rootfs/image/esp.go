package image

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ESPLabel is the GPT partition name of the EFI system partition
// (rootfs/disk's layout).
const ESPLabel = "esp"

// ESPFstab is the /etc/fstab line that mounts the ESP at /efi, writable by
// the atrium group (gid): roomd, running as atrium, moves systemd-boot's
// entries there during an update. FAT has no owners, so the mount
// options give them; systemd-gpt-auto-generator, which would mount it
// root-only, steps aside for an fstab entry. Pass 2: fsck.fat (dosfstools)
// checks it at every boot, since a power cut while an update copies a
// kernel there leaves it marked dirty and may leave lost clusters; nofail:
// a room whose ESP cannot be mounted still starts, only updates fail.
func ESPFstab(gid int) string {
	return fmt.Sprintf("PARTLABEL=%s  /efi  vfat  uid=0,gid=%d,fmask=0117,dmask=0007,noexec,nosuid,nodev,nofail,x-systemd.device-timeout=30s  0  2\n", ESPLabel, gid)
}

// groupID looks a group up in an /etc/group file.
func groupID(group []byte, name string) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(group))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) >= 3 && f[0] == name {
			return strconv.Atoi(f[2])
		}
	}
	return 0, fmt.Errorf("no group %q", name)
}

// addESPMount appends ESPFstab for the tree's atrium group to its
// /etc/fstab.
func addESPMount(tree string) error {
	group, err := os.ReadFile(filepath.Join(tree, "etc", "group"))
	if err != nil {
		return fmt.Errorf("ESP mount: %w", err)
	}
	gid, err := groupID(group, "atrium")
	if err != nil {
		return fmt.Errorf("ESP mount: /etc/group: %w", err)
	}
	fstab := filepath.Join(tree, "etc", "fstab")
	data, err := os.ReadFile(fstab)
	if err != nil {
		return fmt.Errorf("ESP mount: %w", err)
	}
	if mountsAt(data, "/efi") {
		return fmt.Errorf("ESP mount: %s already mounts /efi", fstab)
	}
	return treeWriter{root: tree}.write("/etc/fstab", append(data, ESPFstab(gid)...), 0o644)
}

// mountsAt reports whether an fstab has an entry for dir.
func mountsAt(fstab []byte, dir string) bool {
	sc := bufio.NewScanner(bytes.NewReader(fstab))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && f[1] == dir {
			return true
		}
	}
	return false
}
