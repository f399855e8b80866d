package disk

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf16"
)

// GUID is a GUID in its textual byte order (as sgdisk prints it).
type GUID [16]byte

// String formats g as 8-4-4-4-12 upper-case hex digits.
func (g GUID) String() string {
	return fmt.Sprintf("%X-%X-%X-%X-%X", g[0:4], g[4:6], g[6:8], g[8:10], g[10:16])
}

// DeriveGUID returns the GUID named name for the image version: the first
// 16 bytes of SHA-256("atrium-disk" NUL version NUL name), marked as an
// RFC 9562 version 8 (custom) UUID. The same version gives the same GUIDs.
func DeriveGUID(version, name string) GUID {
	sum := sha256.Sum256([]byte("atrium-disk\x00" + version + "\x00" + name))
	var g GUID
	copy(g[:], sum[:16])
	g[6] = g[6]&0x0f | 0x80
	g[8] = g[8]&0x3f | 0x80
	return g
}

// Partition type GUIDs, as [GUID.String] prints them.
const (
	// TypeESP is the EFI System Partition (sgdisk EF00).
	TypeESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	// TypeRootX86_64 is the Discoverable Partitions root for x86-64 (8304).
	TypeRootX86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	// TypeLinuxData is a generic Linux file system (8300).
	TypeLinuxData = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

// Partition is one entry of a GPT as [ReadPartitions] finds it.
type Partition struct {
	Number int // 1-based
	Type   GUID
	GUID   GUID
	Label  string // PARTLABEL
	// Offset and Size are in bytes.
	Offset, Size int64
}

// Table is a parsed GPT.
type Table struct {
	DiskGUID   GUID
	Partitions []Partition
}

// Find returns the partition labelled label.
func (t Table) Find(label string) (Partition, error) {
	for _, p := range t.Partitions {
		if p.Label == label {
			return p, nil
		}
	}
	return Partition{}, fmt.Errorf("no partition labelled %q", label)
}

const sectorSize = 512

// guidFromDisk converts GPT's mixed-endian on-disk form to textual order.
func guidFromDisk(b []byte) GUID {
	var g GUID
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:16])
	return g
}

// ReadPartitions reads the primary GPT of the disk image at path (512-byte
// sectors) and returns its used entries in table order.
func ReadPartitions(path string) (Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return Table{}, fmt.Errorf("read GPT: %w", err)
	}
	defer f.Close()
	t, err := readGPT(f)
	if err != nil {
		return Table{}, fmt.Errorf("read GPT of %s: %w", path, err)
	}
	return t, nil
}

func readGPT(r io.ReaderAt) (Table, error) {
	hdr := make([]byte, 92)
	if _, err := r.ReadAt(hdr, sectorSize); err != nil {
		return Table{}, err
	}
	if !bytes.Equal(hdr[:8], []byte("EFI PART")) {
		return Table{}, errors.New("no GPT header at LBA 1")
	}
	le := binary.LittleEndian
	entriesLBA := le.Uint64(hdr[72:])
	count := le.Uint32(hdr[80:])
	size := le.Uint32(hdr[84:])
	if size < 128 || count > 1024 {
		return Table{}, fmt.Errorf("implausible GPT: %d entries of %d bytes", count, size)
	}
	buf := make([]byte, int(count)*int(size))
	if _, err := r.ReadAt(buf, int64(entriesLBA)*sectorSize); err != nil {
		return Table{}, err
	}
	t := Table{DiskGUID: guidFromDisk(hdr[56:72])}
	for i := range int(count) {
		e := buf[i*int(size) : (i+1)*int(size)]
		typ := guidFromDisk(e[0:16])
		if typ == (GUID{}) {
			continue
		}
		first, last := le.Uint64(e[32:]), le.Uint64(e[40:])
		var name []uint16
		for j := 56; j+1 < 128; j += 2 {
			c := le.Uint16(e[j:])
			if c == 0 {
				break
			}
			name = append(name, c)
		}
		t.Partitions = append(t.Partitions, Partition{
			Number: i + 1,
			Type:   typ,
			GUID:   guidFromDisk(e[16:32]),
			Label:  string(utf16.Decode(name)),
			Offset: int64(first) * sectorSize,
			Size:   int64(last-first+1) * sectorSize,
		})
	}
	return t, nil
}
