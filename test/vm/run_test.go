package vm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// feed writes s into c in chunks of n bytes, as a pipe might deliver it.
func feed(c *console, s string, n int) {
	for len(s) > 0 {
		k := min(n, len(s))
		c.Write([]byte(s[:k]))
		s = s[k:]
	}
}

func TestConsole(t *testing.T) {
	const transcript = "SeaBIOS\r\n" +
		"[    3.1] v4l2_mem2mem: loading out-of-tree module taints kernel.\r\n" +
		"@@ATRIUM-VM abc SETUP modprobe vim2m failed: boom\r\n" +
		"@@ATRIUM-VM abc READY 6.1.0-56-amd64\r\n" +
		"@@ATRIUM-VM abc BEGIN hal/v4l2\r\n" +
		"=== RUN   TestCapture\r\n" +
		"@@ATRIUM-VM fake END hal/v4l2 exit=0\r\n" + // another nonce: test output
		"[    5.0] WARNING: something\r\n" +
		"--- FAIL: TestCapture (0.10s)\r\n" +
		"@@ATRIUM-VM abc END hal/v4l2 exit=1\r\n" +
		"@@ATRIUM-VM abc BEGIN hal/m2m\r\n" +
		"PASS\r\n" +
		"@@ATRIUM-VM abc END hal/m2m exit=0\r\n" +
		"@@ATRIUM-VM abc BEGIN hal/alsa\r\n" +
		"=== RUN   TestHang\r\n" +
		"no newline at the end"
	for _, chunk := range []int{1, 7, 64, len(transcript)} {
		tick := time.Unix(0, 0)
		c := newConsole("abc", []Test{{Name: "hal/v4l2"}, {Name: "hal/m2m"}, {Name: "hal/alsa"}, {Name: "hal/hotplug"}}, func() time.Time {
			tick = tick.Add(time.Second)
			return tick
		})
		feed(c, transcript, chunk)
		results, done, setup := c.finish()
		if done {
			t.Errorf("chunk %d: done without DONE", chunk)
		}
		if len(setup) != 1 || setup[0] != "modprobe vim2m failed: boom" {
			t.Errorf("chunk %d: setup %q", chunk, setup)
		}
		want := []Result{
			{Name: "hal/v4l2", Started: true, Finished: true, ExitCode: 1, Duration: time.Second,
				Output: "=== RUN   TestCapture\n@@ATRIUM-VM fake END hal/v4l2 exit=0\n[    5.0] WARNING: something\n--- FAIL: TestCapture (0.10s)\n"},
			{Name: "hal/m2m", Started: true, Finished: true, ExitCode: 0, Duration: time.Second, Output: "PASS\n"},
			{Name: "hal/alsa", Started: true, ExitCode: -1, Output: "=== RUN   TestHang\nno newline at the end\n"},
			{Name: "hal/hotplug", ExitCode: -1},
		}
		for i, w := range want {
			if results[i] != w {
				t.Errorf("chunk %d: result %d\n got %+v\nwant %+v", chunk, i, results[i], w)
			}
		}
		if results[1].Passed() == false || results[0].Passed() || results[2].Passed() {
			t.Errorf("chunk %d: Passed wrong", chunk)
		}
	}
}

func TestConsoleDone(t *testing.T) {
	c := newConsole("n", nil, time.Now)
	feed(c, "@@ATRIUM-VM n READY x\n@@ATRIUM-VM n DONE\n", 5)
	if _, done, _ := c.finish(); !done {
		t.Error("DONE not seen")
	}
	for i := range consoleTailLines + 10 {
		feed(c, strings.Repeat("x", i)+"\n", 100)
	}
	if lines := strings.Split(c.tail(), "\n"); len(lines) != consoleTailLines || lines[len(lines)-1] != strings.Repeat("x", consoleTailLines+9) {
		t.Errorf("tail has %d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

// cancelOn cancels a context once the console shows a line with want.
type cancelOn struct {
	want   string
	cancel context.CancelFunc
	buf    []byte
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	if bytes.Contains(c.buf, []byte(c.want)) {
		c.cancel()
	}
	return len(p), nil
}

// TestRunHarness boots the guest with two shell scripts in place of test
// binaries: one exits 3 after printing what it sees, the other hangs until
// the VM is killed. It checks exit codes, arguments, environment, working
// directory, testdata, and that a run cut short kills QEMU and reports the
// unfinished test.
func TestRunHarness(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	k, err := Prepare(ctx, PrepareOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	testdata := filepath.Join(dir, "testdata")
	if err := os.MkdirAll(testdata, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(testdata, "hello.txt"), []byte("hello from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []Test{
		{Name: "pkg/exit3", Binary: script("exit3", `echo "args: $*"; echo "env: ATRIUM_VM=$ATRIUM_VM TMPDIR=$TMPDIR pwd=$(pwd) uid=$(id -u)"; cat testdata/hello.txt; echo; exit 3`), Testdata: testdata},
		{Name: "pkg/hang", Binary: script("hang", "echo hanging; sleep 1000")},
		{Name: "pkg/never", Binary: script("never", "echo unreachable")},
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	watch := &cancelOn{want: "hanging", cancel: stop}
	start := time.Now()
	results, err := Run(runCtx, RunOptions{
		Kernel:      k,
		Tests:       tests,
		Args:        []string{"-extra", "two words"},
		TestTimeout: time.Minute,
		Console:     watch,
		TempDir:     dir,
		Logger:      testLogger(t),
	})
	t.Logf("Run took %s", time.Since(start).Round(time.Millisecond))
	if !errors.Is(err, ErrIncomplete) || !errors.Is(err, context.Canceled) {
		t.Errorf("Run error %v, want ErrIncomplete and context.Canceled", err)
	}
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	r := results[0]
	if !r.Finished || r.ExitCode != 3 {
		t.Errorf("exit3: finished %v exit %d, want exit 3", r.Finished, r.ExitCode)
	}
	for _, want := range []string{
		"args: -test.v -test.timeout=1m0s -extra two words\n",
		"env: ATRIUM_VM=1 TMPDIR=/tmp pwd=/atrium/pkg/exit3 uid=0\n",
		"hello from the host\n",
	} {
		if !strings.Contains(r.Output, want) {
			t.Errorf("exit3 output lacks %q:\n%s", want, r.Output)
		}
	}
	if r := results[1]; !r.Started || r.Finished || !strings.Contains(r.Output, "hanging") {
		t.Errorf("hang: %+v, want started, not finished", r)
	}
	if r := results[2]; r.Started {
		t.Errorf("never: %+v, want not started", r)
	}
}
