package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

const testMachineID = "5f2b1c7e9a0d4e3f8b6a1c2d3e4f5a6b"

// sysfs builds a MapFS of a PC with DMI, two physical interfaces and the
// virtual ones a meeting-room device typically has.
func sysfs() fstest.MapFS {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	dir := &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	return fstest.MapFS{
		"sys/class/dmi/id/product_name":   file("NUC13ANHi5\n"),
		"sys/class/dmi/id/sys_vendor":     file("Intel(R) Client Systems\n"),
		"sys/class/dmi/id/product_serial": file("G6AN3230012X\n"),
		// Physical: a "device" link to the PCI or USB device.
		"sys/class/net/enp86s0/address": file("48:21:0B:5A:1C:0E\n"),
		"sys/class/net/enp86s0/device":  dir,
		"sys/class/net/wlo1/address":    file("a0:b3:39:12:34:56\n"),
		"sys/class/net/wlo1/device":     dir,
		// Virtual: no "device".
		"sys/class/net/lo/address":      file("00:00:00:00:00:00\n"),
		"sys/class/net/veth3a1/address": file("9e:11:22:33:44:55\n"),
		"sys/class/net/br0/address":     file("48:21:0b:5a:1c:0e\n"),
		// Physical but without an address yet.
		"sys/class/net/eno2/address": file("00:00:00:00:00:00\n"),
		"sys/class/net/eno2/device":  dir,
		"etc/machine-id":             file(testMachineID + "\n"),
	}
}

func TestReadFacts(t *testing.T) {
	got, err := ReadFacts(sysfs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Facts{
		Model:     "NUC13ANHi5",
		Vendor:    "Intel(R) Client Systems",
		Serial:    "G6AN3230012X",
		MACs:      []string{"48:21:0b:5a:1c:0e", "a0:b3:39:12:34:56"},
		MachineID: testMachineID,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadFacts =\n%+v\nwant\n%+v", got, want)
	}
}

func TestReadFactsDeviceTree(t *testing.T) {
	fsys := fstest.MapFS{
		"sys/firmware/devicetree/base/model":         {Data: []byte("Raspberry Pi 5 Model B Rev 1.0\x00")},
		"sys/firmware/devicetree/base/serial-number": {Data: []byte("a1b2c3d4e5f60718\x00")},
		"etc/machine-id":                             {Data: []byte(testMachineID)},
	}
	got, err := ReadFacts(fsys, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Facts{Model: "Raspberry Pi 5 Model B Rev 1.0", Serial: "a1b2c3d4e5f60718", MachineID: testMachineID}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadFacts = %+v, want %+v", got, want)
	}
}

func TestReadFactsMachineID(t *testing.T) {
	for name, id := range map[string]*fstest.MapFile{
		"missing":    nil,
		"empty":      {Data: []byte("\n")},
		"upper case": {Data: []byte(strings.ToUpper(testMachineID))},
		"too short":  {Data: []byte(testMachineID[:31])},
	} {
		t.Run(name, func(t *testing.T) {
			fsys := sysfs()
			if id == nil {
				delete(fsys, "etc/machine-id")
			} else {
				fsys["etc/machine-id"] = id
			}
			f, err := ReadFacts(fsys, nil)
			if err == nil {
				t.Fatal("no error")
			}
			// What could be read is still returned.
			if f.Model != "NUC13ANHi5" {
				t.Errorf("Model = %q alongside the error", f.Model)
			}
		})
	}
}

// deniedFS refuses one file as the kernel refuses product_serial to a user
// other than root.
type deniedFS struct {
	fs.FS
	name string
}

func (d deniedFS) Open(name string) (fs.File, error) {
	if name == d.name {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return d.FS.Open(name)
}

func TestReadFactsUnreadableSerial(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	got, err := ReadFacts(deniedFS{sysfs(), "sys/class/dmi/id/product_serial"}, log)
	if err != nil {
		t.Fatal(err)
	}
	if got.Serial != "" || got.Model != "NUC13ANHi5" {
		t.Errorf("Serial %q, Model %q: want no serial, the rest read", got.Serial, got.Model)
	}
	if !strings.Contains(logs.String(), "/sys/class/dmi/id/product_serial") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no warning naming the serial's file; logs:\n%s", logs.String())
	}
	// A missing file is normal and not logged.
	logs.Reset()
	fsys := sysfs()
	delete(fsys, "sys/class/dmi/id/product_serial")
	if _, err := ReadFacts(fsys, log); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Errorf("missing serial logged:\n%s", logs.String())
	}
}

func TestUsableSerial(t *testing.T) {
	for serial, want := range map[string]bool{
		"G6AN3230012X":           true,
		"PF3ABCDE":               true,
		"":                       false,
		"0":                      false,
		"To Be Filled By O.E.M.": false,
		"Default string":         false,
		"System Serial Number":   false,
		"00000000":               false,
		"XXXXXXXXXX":             false,
		"  ":                     false,
	} {
		if got := (Facts{Serial: serial}).UsableSerial(); got != want {
			t.Errorf("UsableSerial(%q) = %v, want %v", serial, got, want)
		}
	}
}

func TestStableID(t *testing.T) {
	for _, c := range []struct {
		f       Facts
		want    string
		wantErr error
	}{
		{Facts{Serial: "G6AN3230012X", MachineID: testMachineID}, "G6AN3230012X", nil},
		{Facts{Serial: "Default string", MachineID: testMachineID}, "machine-id:" + testMachineID, nil},
		{Facts{MachineID: testMachineID}, "machine-id:" + testMachineID, nil},
		{Facts{Serial: "0"}, "", ErrNoStableID},
		{Facts{MachineID: "not-an-id"}, "", ErrNoStableID},
	} {
		got, err := c.f.StableID()
		if got != c.want || !errors.Is(err, c.wantErr) {
			t.Errorf("%+v.StableID() = %q, %v; want %q, %v", c.f, got, err, c.want, c.wantErr)
		}
	}
}

// checkCSR parses a CSR made by id and checks its signature, key and subject.
func checkCSR(t *testing.T, id *Identity, der []byte, wantCN, wantSerial string) {
	t.Helper()
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatalf("parse CSR: %v", err)
	}
	if err := req.CheckSignature(); err != nil {
		t.Fatalf("CSR signature: %v", err)
	}
	if !req.PublicKey.(*ecdsa.PublicKey).Equal(id.Public()) {
		t.Error("the CSR carries another public key")
	}
	if req.Subject.CommonName != wantCN || req.Subject.SerialNumber != wantSerial {
		t.Errorf("subject CN %q serialNumber %q, want %q %q", req.Subject.CommonName, req.Subject.SerialNumber, wantCN, wantSerial)
	}
	if req.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("signature algorithm %v", req.SignatureAlgorithm)
	}
}

func TestCSR(t *testing.T) {
	id := mustOpen(t, Options{StateDir: t.TempDir(), TPMPath: noTPM(t)})
	facts, err := ReadFacts(sysfs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := id.CSR(facts)
	if err != nil {
		t.Fatal(err)
	}
	checkCSR(t, id, der, "G6AN3230012X", "G6AN3230012X")

	facts.Serial = "To Be Filled By O.E.M."
	der, err = id.CSR(facts)
	if err != nil {
		t.Fatal(err)
	}
	checkCSR(t, id, der, "machine-id:"+testMachineID, "")

	if _, err := id.CSR(Facts{}); !errors.Is(err, ErrNoStableID) {
		t.Errorf("CSR without facts: err = %v, want ErrNoStableID", err)
	}
}

// TestReadFactsThisMachine reads the real /sys and /etc through os.DirFS,
// where the interfaces are symbolic links and "device" links point across
// sysfs, and compares the MACs with the kernel's own interface list.
func TestReadFactsThisMachine(t *testing.T) {
	got, err := ReadFacts(os.DirFS("/"), nil)
	if err != nil {
		t.Fatalf("ReadFacts(/): %v", err)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, ifc := range ifaces {
		if len(ifc.HardwareAddr) != 6 || bytes.Equal(ifc.HardwareAddr, make([]byte, 6)) {
			continue
		}
		if _, err := os.Stat(filepath.Join("/sys/class/net", ifc.Name, "device")); err != nil {
			t.Logf("%s (%s) is virtual", ifc.Name, ifc.HardwareAddr)
			continue
		}
		want = append(want, ifc.HardwareAddr.String())
	}
	slices.Sort(want)
	want = slices.Compact(want)
	if !slices.Equal(got.MACs, want) {
		t.Errorf("MACs = %q, want the physical interfaces' %q", got.MACs, want)
	}
	t.Logf("facts of this machine: %+v", got)
}
