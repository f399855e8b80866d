package identity

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"path"
	"slices"
	"strings"
)

// Facts are the hardware facts a device reports at enrollment. Fields the
// hardware does not expose are empty.
type Facts struct {
	// Model and Vendor are the product name and its maker, from DMI, or
	// on device-tree machines (ARM boards) the tree's model string.
	Model  string `json:"model"`
	Vendor string `json:"vendor"`
	// Serial is the product's serial number as the firmware reports it,
	// placeholders included; UsableSerial says whether it means anything.
	Serial string `json:"serial"`
	// MACs are the addresses of the physical network interfaces, lower
	// case, sorted, without duplicates.
	MACs []string `json:"macs"`
	// MachineID is systemd's /etc/machine-id: 32 lower-case hex digits.
	MachineID string `json:"machine_id"`
}

// Paths inside the filesystem ReadFacts is given (rooted at "/").
const (
	dmiDir        = "sys/class/dmi/id"
	devicetreeDir = "sys/firmware/devicetree/base"
	netDir        = "sys/class/net"
	machineIDPath = "etc/machine-id"
)

// ReadFacts reads the hardware facts from fsys, which is os.DirFS("/") on
// the device and an fstest.MapFS in tests.
//
// Only the machine ID is required (systemd creates it on first boot): its
// absence is an error. Any other fact that is missing is left empty;
// one that exists but cannot be read is left empty and logged as a warning,
// since it usually means a permission to grant: the kernel makes
// product_serial readable by root only, and roomd does not run as root.
func ReadFacts(fsys fs.FS, log *slog.Logger) (Facts, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := factReader{fsys: fsys, log: log}
	var f Facts
	f.Model = r.text(path.Join(dmiDir, "product_name"))
	f.Vendor = r.text(path.Join(dmiDir, "sys_vendor"))
	f.Serial = r.text(path.Join(dmiDir, "product_serial"))
	// Boards without DMI describe themselves in the device tree.
	if f.Model == "" {
		f.Model = r.text(path.Join(devicetreeDir, "model"))
	}
	if f.Serial == "" {
		f.Serial = r.text(path.Join(devicetreeDir, "serial-number"))
	}
	f.MACs = r.macs()

	id, err := fs.ReadFile(fsys, machineIDPath)
	if err != nil {
		return f, fmt.Errorf("identity: read machine ID: %w", err)
	}
	f.MachineID = strings.TrimSpace(string(id))
	if !validMachineID(f.MachineID) {
		return f, fmt.Errorf("identity: machine ID %q is not 32 lower-case hex digits", f.MachineID)
	}
	return f, nil
}

type factReader struct {
	fsys fs.FS
	log  *slog.Logger
}

// text reads a one-line sysfs or device-tree attribute. Device-tree strings
// end in NUL; sysfs ones in a newline.
func (r factReader) text(name string) string {
	b, err := fs.ReadFile(r.fsys, name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("hardware fact unreadable", "path", "/"+name, "err", err)
		}
		return ""
	}
	b, _, _ = bytes.Cut(b, []byte{0})
	return strings.TrimSpace(string(b))
}

// macs lists the addresses of physical interfaces. An interface is
// physical when it has a "device" link to the bus device behind it; the
// loopback, bridges, veth pairs, tunnels and bonds have none. Bonds and
// bridges would also repeat a member's address.
func (r factReader) macs() []string {
	entries, err := fs.ReadDir(r.fsys, netDir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("network interfaces unreadable", "path", "/"+netDir, "err", err)
		}
		return nil
	}
	var macs []string
	for _, e := range entries {
		dir := path.Join(netDir, e.Name())
		if _, err := fs.Stat(r.fsys, path.Join(dir, "device")); err != nil {
			continue
		}
		addr := r.text(path.Join(dir, "address"))
		hw, err := net.ParseMAC(addr)
		// All zeros is what a device without an address reports.
		if err != nil || len(hw) != 6 || bytes.Equal(hw, make([]byte, 6)) {
			continue
		}
		macs = append(macs, hw.String())
	}
	slices.Sort(macs)
	return slices.Compact(macs)
}

func validMachineID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// UsableSerial reports whether Serial identifies this unit. Firmware often
// ships with placeholders that thousands of machines share ("To Be Filled
// By O.E.M.", "Default string", "0"); such a serial must not name a device.
func (f Facts) UsableSerial() bool {
	s := strings.ToLower(strings.TrimSpace(f.Serial))
	if len(s) < 4 {
		return false
	}
	switch s {
	case "to be filled by o.e.m.", "default string", "system serial number",
		"not specified", "not applicable", "none", "n/a", "unknown",
		"0123456789", "123456789", "serial", "chassis serial number":
		return false
	}
	// One character repeated ("00000000", "xxxxxxxx") is a placeholder too.
	return strings.Trim(s, s[:1]) != ""
}

// StableID is the name the device gives itself in its CSR: the serial
// number when it is usable, else "machine-id:" and the machine ID. It is a
// hint for people reading the fleet's records; the server decides the
// device's identity.
func (f Facts) StableID() (string, error) {
	if f.UsableSerial() {
		return strings.TrimSpace(f.Serial), nil
	}
	if validMachineID(f.MachineID) {
		return "machine-id:" + f.MachineID, nil
	}
	return "", ErrNoStableID
}
