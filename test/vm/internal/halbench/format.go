package halbench

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Units of the metrics on a result line; see the package documentation.
const (
	UnitWork       = "ns/op"
	UnitLatency    = "ms-latency/frame"
	UnitWait       = "ms-wait/frame"
	UnitConvert    = "ms-convert/frame"
	UnitEncode     = "ms-encode/frame"
	UnitCPU        = "cpu-ms/frame"
	UnitSysCPU     = "sys-cpu-ms/frame"
	UnitMachineCPU = "machine-cpu-ms/frame"
	UnitCodedBytes = "bytes/frame"
	UnitAllocBytes = "B/op"
	UnitAllocs     = "allocs/op"
)

// BenchName is the benchmark name of a path's result line, without the
// "Benchmark" prefix and the GOMAXPROCS suffix: "Pipeline720p/x264/yuyv".
func (r Result) BenchName() string {
	return fmt.Sprintf("Pipeline%dp/%s", r.Mode.Height, r.Path)
}

// Work is the path's own time per frame: conversion and encoding.
func (r Result) Work() time.Duration { return r.Convert + r.Encode }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Line formats r as a Go benchmark result line (no newline), procs being
// GOMAXPROCS as the testing package appends it; the iteration count is the
// number of measured frames.
func (r Result) Line(procs int) string {
	name := "Benchmark" + r.BenchName()
	if procs != 1 {
		name += "-" + strconv.Itoa(procs)
	}
	return fmt.Sprintf("%s\t%d\t%.0f %s\t%.2f %s\t%.2f %s\t%.2f %s\t%.2f %s\t%.2f %s\t%.2f %s\t%.2f %s\t%.0f %s\t%.0f %s\t%.1f %s",
		name, r.Frames,
		float64(r.Work()), UnitWork,
		ms(r.Latency), UnitLatency,
		ms(r.Wait), UnitWait,
		ms(r.Convert), UnitConvert,
		ms(r.Encode), UnitEncode,
		ms(r.CPU), UnitCPU,
		ms(r.SysCPU), UnitSysCPU,
		ms(r.MachineCPU), UnitMachineCPU,
		r.CodedBytes, UnitCodedBytes,
		r.AllocBytes, UnitAllocBytes,
		r.Allocs, UnitAllocs)
}

// BenchLine is a parsed Go benchmark result line.
type BenchLine struct {
	Name    string // without "Benchmark" and the "-procs" suffix
	Procs   int
	N       int
	Metrics map[string]float64 // by unit
}

// ParseLine reads a Go benchmark result line; ok is false for any other
// line (comments, test output) or a malformed one.
func ParseLine(line string) (b BenchLine, ok bool) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 || !strings.HasPrefix(f[0], "Benchmark") {
		return BenchLine{}, false
	}
	b.Name, b.Procs = strings.TrimPrefix(f[0], "Benchmark"), 1
	if i := strings.LastIndexByte(b.Name, '-'); i >= 0 {
		if p, err := strconv.Atoi(b.Name[i+1:]); err == nil {
			b.Name, b.Procs = b.Name[:i], p
		}
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return BenchLine{}, false
	}
	b.N = n
	b.Metrics = make(map[string]float64, (len(f)-2)/2)
	for i := 2; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return BenchLine{}, false
		}
		b.Metrics[f[i+1]] = v
	}
	return b, true
}

// RatioLines compares each result with base, per frame, as comment lines
// (each starting with "# "): a ratio below 1 means less than base.
func RatioLines(base Result, rs []Result) []string {
	out := []string{
		fmt.Sprintf("# Per frame, as a ratio to %s in this run (below 1: less than %s):", base.Path, base.Path),
		fmt.Sprintf("#   %-16s %8s %8s %8s %8s %8s", "path", "latency", "work", "convert", "cpu", "machine"),
	}
	ratio := func(a, b time.Duration) string {
		if b <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", float64(a)/float64(b))
	}
	for _, r := range rs {
		out = append(out, fmt.Sprintf("#   %-16s %8s %8s %8s %8s %8s", r.Path,
			ratio(r.Latency, base.Latency), ratio(r.Work(), base.Work()), ratio(r.Convert, base.Work()),
			ratio(r.CPU, base.CPU), ratio(r.MachineCPU, base.MachineCPU)))
	}
	return append(out, fmt.Sprintf("# (convert: the path's conversion time as a share of %s's whole work)", base.Path))
}
