package vm

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestModuleClosure(t *testing.T) {
	dep := []string{
		"kernel/drivers/media/test-drivers/vivid/vivid.ko: kernel/drivers/media/common/v4l2-tpg/v4l2-tpg.ko kernel/drivers/media/v4l2-core/videodev.ko kernel/drivers/media/mc/mc.ko",
		"kernel/drivers/media/common/v4l2-tpg/v4l2-tpg.ko:",
		"kernel/drivers/media/v4l2-core/videodev.ko: kernel/drivers/media/mc/mc.ko",
		"kernel/drivers/media/mc/mc.ko:",
		"kernel/sound/drivers/snd-aloop.ko: kernel/sound/core/snd.ko",
		"kernel/sound/core/snd.ko:",
		"kernel/net/unrelated.ko:",
	}
	got, err := moduleClosure(dep, []string{"vivid", "snd-aloop", "snd_aloop"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/drivers/media/common/v4l2-tpg/v4l2-tpg.ko",
		"kernel/drivers/media/mc/mc.ko",
		"kernel/drivers/media/test-drivers/vivid/vivid.ko",
		"kernel/drivers/media/v4l2-core/videodev.ko",
		"kernel/sound/core/snd.ko",
		"kernel/sound/drivers/snd-aloop.ko",
	}
	if !slices.Equal(got, want) {
		t.Errorf("closure:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := moduleClosure(dep, []string{"vicodec"}); err == nil {
		t.Error("a module missing from modules.dep was accepted")
	}
}

// TestShellQuote checks quoting against a real shell.
func TestShellQuote(t *testing.T) {
	args := []string{"plain", "-test.run=^Test(A|B)$", "it's", "", "a b", `$HOME`, "`x`", `back\slash`, "-test.bench=."}
	var q []string
	for _, a := range args {
		q = append(q, shellQuote(a))
	}
	script := "for a in " + strings.Join(q, " ") + "; do printf '[%s]\\n' \"$a\"; done"
	out, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	var want strings.Builder
	for _, a := range args {
		want.WriteString("[" + a + "]\n")
	}
	if string(out) != want.String() {
		t.Errorf("sh saw:\n%s\nwant:\n%s", out, want.String())
	}
}

func TestInitScript(t *testing.T) {
	tests := []Test{{Name: "hal/v4l2"}, {Name: "test/vm/internal/guestcheck"}}
	s := initScript("n0nce", DefaultModules(), tests, []string{"-test.run=^$", "-test.bench=."}, 90*time.Second)
	for _, want := range []string{
		"export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TMPDIR=/tmp ATRIUM_VM=1\n",
		"mount -t devtmpfs devtmpfs /dev\n",
		"M='@@ATRIUM-VM n0nce'\n",
		"out=$(modprobe vivid 2>&1) || echo \"$M SETUP modprobe vivid failed: $out\"\n",
		"echo \"$M BEGIN hal/v4l2\"\ncd /atrium/hal/v4l2 && timeout -s KILL 120 /atrium/hal/v4l2/v4l2.test -test.v -test.timeout=1m30s '-test.run=^$' -test.bench=.\necho \"$M END hal/v4l2 exit=$?\"\n",
		"cd /atrium/test/vm/internal/guestcheck && timeout -s KILL 120 /atrium/test/vm/internal/guestcheck/guestcheck.test",
		"echo \"$M DONE\"\npoweroff -f\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("init script lacks %q:\n%s", want, s)
		}
	}
	// The script must at least parse.
	if out, err := exec.Command("sh", "-n", "-c", s).CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v\n%s", err, out)
	}
}

func TestModprobeConf(t *testing.T) {
	got := modprobeConf([]Module{{Name: "vivid", Options: "n_devs=2"}, {Name: "vim2m"}, {Name: "snd-aloop", Options: "index=0"}})
	want := "# Written by test/vm: the options of the modules loaded at boot.\noptions vivid n_devs=2\noptions snd_aloop index=0\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
