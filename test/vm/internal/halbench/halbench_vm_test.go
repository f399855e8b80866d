//go:build vmguest

package halbench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/vm"
)

// guestPaths are the paths the VM has: vivid's YUYV and I420 modes at 720p,
// each into x264, libvpx's VP8 and vicodec.
var guestPaths = []string{"x264/yuyv", "x264/i420", "vp8/yuyv", "vp8/i420", "m2m-fwht/yuyv", "m2m-fwht/i420"}

// make bench's run: vivid at 5 fps, a rate every emulated path keeps up
// with (see the package documentation), and 40 frames per path after 4
// warm-up ones, about 9 s per path, a minute in all: well inside the guest
// binary's 3-minute timeout.
const benchFrames, benchWarmup, benchCameraFPS = 40, 4, 5

// runHalbench runs the program with args, copying its standard output to
// out line by line as it comes, and returns the lines.
func runHalbench(ctx context.Context, out io.Writer, args ...string) ([]string, error) {
	argv := vm.GuestCommand("halbench", args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		fmt.Fprintln(out, sc.Text())
	}
	scanErr := sc.Err()
	if scanErr != nil {
		// Let the program finish writing rather than block on the pipe.
		_, _ = io.Copy(io.Discard, stdout)
	}
	if err := cmd.Wait(); err != nil {
		return lines, fmt.Errorf("halbench %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if scanErr != nil {
		return lines, fmt.Errorf("halbench: read its output: %w", scanErr)
	}
	return lines, nil
}

// results parses the program's result lines by path.
func results(lines []string) map[string]BenchLine {
	out := make(map[string]BenchLine)
	for _, l := range lines {
		if b, ok := ParseLine(l); ok {
			_, path, _ := strings.Cut(b.Name, "/")
			out[path] = b
		}
	}
	return out
}

// BenchmarkHALBench runs halbench over every path and relays its lines, which
// are Go benchmark lines of their own (BenchmarkPipeline720p/<path>): make
// bench appends them to bench/results/hal.txt. This function's own result
// line is the whole run's time. The run takes far longer than the testing
// package's 1 s, so the function is called once.
func BenchmarkHALBench(b *testing.B) {
	for range b.N {
		lines, err := runHalbench(b.Context(), os.Stdout, "-frames", fmt.Sprint(benchFrames), "-warmup", fmt.Sprint(benchWarmup),
			"-camera-fps", fmt.Sprint(benchCameraFPS))
		if err != nil {
			b.Fatal(err)
		}
		got := results(lines)
		for _, p := range guestPaths {
			if r, ok := got[p]; !ok || r.N != benchFrames {
				b.Errorf("no result for %s with %d frames", p, benchFrames)
			}
		}
	}
}

// TestPipelineProgram runs halbench briefly and checks that every path the
// VM has produced frames and sane numbers, so the test tier proves that the
// benchmark works.
func TestPipelineProgram(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out strings.Builder
	start := time.Now()
	lines, err := runHalbench(ctx, &out, "-frames", "3", "-warmup", "1")
	t.Logf("halbench took %s:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatal(err)
	}
	got := results(lines)
	if len(got) != len(guestPaths) {
		t.Errorf("%d result lines, want %d (%v)", len(got), len(guestPaths), guestPaths)
	}
	for _, p := range guestPaths {
		r, ok := got[p]
		if !ok {
			t.Errorf("%s: no result line", p)
			continue
		}
		m := r.Metrics
		if r.Name != "Pipeline720p/"+p || r.N != 3 || r.Procs < 1 {
			t.Errorf("%s: name %q, %d frames, procs %d", p, r.Name, r.N, r.Procs)
		}
		for _, u := range []string{UnitWork, UnitLatency, UnitEncode, UnitCPU, UnitMachineCPU, UnitCodedBytes} {
			if m[u] <= 0 {
				t.Errorf("%s: %s is %v, want more than 0", p, u, m[u])
			}
		}
		// Nothing takes 10 s per frame, even emulated.
		for _, u := range []string{UnitLatency, UnitWait, UnitConvert, UnitEncode, UnitCPU, UnitSysCPU, UnitMachineCPU} {
			if m[u] < 0 || m[u] > 10_000 {
				t.Errorf("%s: %s is %v ms", p, u, m[u])
			}
		}
		if m[UnitSysCPU] > m[UnitCPU] {
			t.Errorf("%s: %v ms of kernel CPU, more than the process's %v ms", p, m[UnitSysCPU], m[UnitCPU])
		}
		// vicodec encodes inside the process's VIDIOC_QBUF (see the package
		// documentation): its work shows as the process's kernel time.
		if strings.HasPrefix(p, "m2m-") && m[UnitSysCPU] < m[UnitEncode]/2 {
			t.Errorf("%s: %v ms of kernel CPU for an encode of %v ms", p, m[UnitSysCPU], m[UnitEncode])
		}
		if converts := strings.HasSuffix(p, "/yuyv"); converts != (m[UnitConvert] > 0) {
			t.Errorf("%s: conversion %v ms per frame", p, m[UnitConvert])
		}
		// The latency covers the wait, the conversion and the encode (as
		// means over the same frames, the rounding to 0.01 ms aside).
		if parts := m[UnitWait] + m[UnitConvert] + m[UnitEncode]; m[UnitLatency] < parts-0.03 {
			t.Errorf("%s: latency %v ms, less than wait + convert + encode %v ms", p, m[UnitLatency], parts)
		}
		if work := (m[UnitConvert] + m[UnitEncode]) * 1e6; m[UnitWork] < work-0.02e6 || m[UnitWork] > work+0.02e6 {
			t.Errorf("%s: %v ns/op, not convert + encode (%v ns)", p, m[UnitWork], work)
		}
	}
	if !strings.Contains(out.String(), "# Per frame, as a ratio to x264/yuyv") {
		t.Error("no ratio lines")
	}
}
