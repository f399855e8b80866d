package vm

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

type cpioEntry struct {
	name       string
	mode       uint32
	rmaj, rmin uint32
	data       string
}

// readCPIO parses a newc archive strictly: magic, 4-byte alignment of
// headers and data, and the trailer at the end.
func readCPIO(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("header at %d is not aligned", off)
		}
		if len(b) < off+110 || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d", off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("header at %d field %d: %v", off, i, err)
			}
			return uint32(v)
		}
		mode, size, rmaj, rmin, namesize := field(1), field(6), field(9), field(10), field(11)
		nameStart := off + 110
		name := string(b[nameStart : nameStart+int(namesize)-1])
		if b[nameStart+int(namesize)-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", name)
		}
		dataStart := (nameStart + int(namesize) + 3) &^ 3
		data := string(b[dataStart : dataStart+int(size)])
		off = (dataStart + int(size) + 3) &^ 3
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, cpioEntry{name, mode, rmaj, rmin, data})
	}
}

func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	c.Dir("/etc", 0o755)
	c.CharDev("dev/console", 0o600, 5, 1)
	c.File("/usr/bin/x", 0o755, 5, strings.NewReader("hello"))
	c.Symlink("sbin/modprobe", "/bin/busybox")
	c.File("a/b/c/odd", 0o644, 3, strings.NewReader("abc"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range readCPIO(t, buf.Bytes()) {
		got = append(got, fmt.Sprintf("%s %o %d:%d %q", e.name, e.mode, e.rmaj, e.rmin, e.data))
	}
	want := []string{
		`etc 40755 0:0 ""`,
		`dev 40755 0:0 ""`,
		`dev/console 20600 5:1 ""`,
		`usr 40755 0:0 ""`,
		`usr/bin 40755 0:0 ""`,
		`usr/bin/x 100755 0:0 "hello"`,
		`sbin 40755 0:0 ""`,
		`sbin/modprobe 120777 0:0 "/bin/busybox"`,
		`a 40755 0:0 ""`,
		`a/b 40755 0:0 ""`,
		`a/b/c 40755 0:0 ""`,
		`a/b/c/odd 100644 0:0 "abc"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("archive:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCPIOWriterShortFile(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	c.File("f", 0o644, 10, strings.NewReader("short"))
	if err := c.Close(); err == nil {
		t.Fatal("a file shorter than its size was archived")
	}
}
