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

// verityRun is one run of the overlay's initramfs script VerityScript with
// stand-ins for veritysetup, head and sleep, and for initramfs-tools'
// panic, which record their calls.
type verityRun struct {
	calls []string // "PARTS" stands for the partitions' directory
	kmsg  string
	exit  int
}

// verityCase: cmdline is /proc/cmdline; the partition root-SLOT exists
// when present; veritysetup open and head exit with openExit and readExit.
type verityCase struct {
	cmdline            string
	present            string
	openExit, readExit int
}

const testRootHash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func runVerityScript(t *testing.T, c verityCase) verityRun {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the script's test makes a block device node: run the tests as root")
	}
	dir := t.TempDir()
	bin, parts := filepath.Join(dir, "bin"), filepath.Join(dir, "by-partlabel")
	log, kmsg := filepath.Join(dir, "calls"), filepath.Join(dir, "kmsg")
	for _, d := range []string{bin, parts} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if c.present != "" {
		if err := syscall.Mknod(filepath.Join(parts, "root-"+c.present), syscall.S_IFBLK|0o600, 7<<8|251); err != nil {
			t.Fatalf("mknod: %v", err)
		}
	}
	write := func(p, text string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	stub := func(name, body string) { stubProgram(t, bin, log, name, body) }
	stub("veritysetup", `[ "$1" = open ] && exit `+strconv.Itoa(c.openExit)+"\nexit 0")
	stub("head", "exit "+strconv.Itoa(c.readExit))
	stub("sleep", "exit 0")
	functions := filepath.Join(dir, "functions")
	write(functions, "panic() { echo \"panic $*\" >>"+log+"; exit 1; }\n", 0o644)
	cmdline := filepath.Join(dir, "cmdline")
	write(cmdline, c.cmdline+"\n", 0o644)

	cmd := exec.Command("/bin/sh", filepath.Join("..", "overlay", filepath.FromSlash(VerityScript)))
	cmd.Env = []string{
		"PATH=" + bin + ":/usr/bin:/bin",
		"ATRIUM_VERITY_FUNCTIONS=" + functions,
		"ATRIUM_VERITY_CMDLINE=" + cmdline,
		"ATRIUM_VERITY_KMSG=" + kmsg,
		"ATRIUM_VERITY_PARTS=" + parts,
	}
	var r verityRun
	if out, err := cmd.CombinedOutput(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("the script did not run: %v\n%s", err, out)
		}
		r.exit = ee.ExitCode()
	}
	calls, _ := os.ReadFile(log)
	for _, l := range strings.Split(strings.TrimSpace(string(calls)), "\n") {
		if l != "" {
			r.calls = append(r.calls, strings.ReplaceAll(l, parts, "PARTS"))
		}
	}
	k, _ := os.ReadFile(kmsg)
	r.kmsg = string(k)
	return r
}

func TestVerityScriptOpensTheSlot(t *testing.T) {
	r := runVerityScript(t, verityCase{
		cmdline: "BOOT_IMAGE=/atrium/b/vmlinuz root=/dev/mapper/atrium-root atrium.verity=" + testRootHash + ",685502464 ro atrium.slot=b panic=5",
		present: "b",
	})
	want := []string{
		"veritysetup open PARTS/root-b atrium-root PARTS/root-b " + testRootHash + " --hash-offset=685502464",
		"head -c 4096 /dev/mapper/atrium-root",
	}
	if r.exit != 0 || strings.Join(r.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("exit %d, calls:\n%s\nwant:\n%s", r.exit, strings.Join(r.calls, "\n"), strings.Join(want, "\n"))
	}
	if w := "<5>atrium-verity: root-b opened with dm-verity, root hash " + testRootHash + "\n"; r.kmsg != w {
		t.Errorf("kernel log %q, want %q", r.kmsg, w)
	}
}

// An entry from before images carried a tree names the partition: the
// script leaves it alone.
func TestVerityScriptWithoutRootHash(t *testing.T) {
	r := runVerityScript(t, verityCase{cmdline: "root=PARTLABEL=root-a ro atrium.slot=a", present: "a"})
	if r.exit != 0 || len(r.calls) != 0 || r.kmsg != "" {
		t.Errorf("exit %d, calls %q, kernel log %q: want nothing done", r.exit, r.calls, r.kmsg)
	}
}

// Whatever goes wrong ends in initramfs-tools' panic (which reboots with
// panic=), with the reason in the kernel log, and never in a boot of the
// root unchecked.
func TestVerityScriptRefuses(t *testing.T) {
	good := "root=/dev/mapper/atrium-root atrium.verity=" + testRootHash + ",4096 atrium.slot=a"
	for _, c := range []struct {
		name     string
		c        verityCase
		want     string
		openDone bool
	}{
		{"a changed slot", verityCase{cmdline: good, present: "a", readExit: 1}, "root-a does not match its root hash " + testRootHash + ": not booting it", true},
		{"veritysetup fails", verityCase{cmdline: good, present: "a", openExit: 1}, "veritysetup cannot open root-a", true},
		{"no partition", verityCase{cmdline: good}, "no partition named root-a", false},
		{"slot c", verityCase{cmdline: strings.Replace(good, "slot=a", "slot=c", 1), present: "a"}, "atrium.slot=c is neither a nor b", false},
		{"no slot", verityCase{cmdline: strings.Replace(good, " atrium.slot=a", "", 1), present: "a"}, "atrium.slot= is neither a nor b", false},
		{"upper-case hash", verityCase{cmdline: strings.Replace(good, "abcdef", "ABCDEF", 1), present: "a"}, "not lower-case hex", false},
		{"short hash", verityCase{cmdline: strings.Replace(good, testRootHash, testRootHash[:40], 1), present: "a"}, "not 64 hex digits", false},
		{"no offset", verityCase{cmdline: strings.Replace(good, ",4096", "", 1), present: "a"}, "want ROOTHASH,HASHOFFSET", false},
		{"bad offset", verityCase{cmdline: strings.Replace(good, ",4096", ",4k", 1), present: "a"}, "want ROOTHASH,HASHOFFSET", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runVerityScript(t, c.c)
			last := ""
			if len(r.calls) > 0 {
				last = r.calls[len(r.calls)-1]
			}
			if r.exit == 0 || last != "panic atrium-verity: "+messageOf(r.kmsg) || !strings.Contains(r.kmsg, c.want) {
				t.Errorf("exit %d, calls %q, kernel log %q: want a panic saying %q", r.exit, r.calls, r.kmsg, c.want)
			}
			opened := false
			for _, call := range r.calls {
				opened = opened || strings.HasPrefix(call, "veritysetup open")
			}
			if opened != c.openDone {
				t.Errorf("veritysetup open called: %v, want %v (calls %q)", opened, c.openDone, r.calls)
			}
			if c.c.readExit != 0 && !strings.Contains(strings.Join(r.calls, "\n"), "veritysetup close atrium-root") {
				t.Errorf("the refused device was not closed: %q", r.calls)
			}
		})
	}
}

// messageOf is the text of the one "<2>atrium-verity: …" line in kmsg.
func messageOf(kmsg string) string {
	return strings.TrimSuffix(strings.TrimPrefix(kmsg, "<2>atrium-verity: "), "\n")
}
