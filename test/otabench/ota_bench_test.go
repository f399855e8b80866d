package otabench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/roomdtest"
)

var (
	outPath    = flag.String("ota.out", "", "file for BenchmarkOTA's report (default: bench/results/ota.txt in the repository)")
	imageMiB   = flag.Int("ota.install-mib", 256, "size of the image the install part streams, MiB")
	rounds     = flag.Int("ota.rounds", 3, "rounds of the install part (the report gives the median and every round)")
	fromCommit = flag.String("ota.from", "588ca8e", "commit the base image's roomd is built from (release 1.0.0)")
	toCommit   = flag.String("ota.to", "HEAD", "commit the new image's roomd is built from (release 1.1.0)")
)

// BenchmarkOTA measures install throughput and delta savings and writes
// the report. One invocation is the whole report:
//
//	go test -run '^$' -bench OTA -benchtime 1x -timeout 30m ./test/otabench/
func BenchmarkOTA(b *testing.B) {
	if b.N > 1 {
		b.Fatal("BenchmarkOTA runs its rounds itself: use -benchtime 1x")
	}
	if *imageMiB <= 0 || *rounds <= 0 {
		b.Fatalf("-ota.install-mib %d and -ota.rounds %d must be positive", *imageMiB, *rounds)
	}
	ctx := roomdtest.Context(b, 28*time.Minute)
	repo := roomdtest.RepoRoot(b)
	rep := report{started: time.Now(), env: environment(ctx, repo)}
	rep.install = measureInstall(ctx, b, b.TempDir(), int64(*imageMiB)<<20, *rounds)
	rep.deltas = measureDeltas(ctx, b, repo, b.TempDir(), *fromCommit, *toCommit)
	path := *outPath
	if path == "" {
		path = filepath.Join(repo, "bench", "results", "ota.txt")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	text := rep.String()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote %s:\n%s", path, text)
	b.ReportMetric(0, "ns/op") // one op is the whole report
	b.ReportMetric(rep.install.ratio(), "install/raw")
	for _, r := range rep.deltas.results {
		b.ReportMetric(100*float64(r.stats.DeltaSize)/float64(r.newSize), "delta%-"+r.format)
	}
}

type env struct {
	nproc                   int
	cpu, goVersion, source  string
	memTotal, osRelease, fs string
	mksquashfs, mke2fs      string
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}

func environment(ctx context.Context, repo string) env {
	e := env{nproc: runtime.NumCPU(), goVersion: runtime.Version(), source: "unknown", cpu: "unknown"}
	if out, err := run(ctx, repo, nil, "git", "describe", "--tags", "--always", "--dirty"); err == nil {
		e.source = strings.TrimSpace(string(out))
	}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				e.cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(raw), "\n")
		e.memTotal = strings.Join(strings.Fields(line)[1:], " ")
	}
	if raw, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.SplitSeq(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				e.osRelease = strings.Trim(v, `"`)
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "df", "--output=fstype,source", os.TempDir()).Output(); err == nil {
		e.fs = strings.Join(strings.Fields(strings.Join(strings.Split(strings.TrimSpace(string(out)), "\n")[1:], " ")), " on ")
	}
	if out, err := exec.CommandContext(ctx, "mksquashfs", "-version").Output(); err == nil {
		e.mksquashfs = firstLine(out)
	}
	if out, err := exec.CommandContext(ctx, "mkfs.ext4", "-V").CombinedOutput(); err == nil {
		e.mke2fs = firstLine(out)
	}
	return e
}

type report struct {
	started time.Time
	env     env
	install installResult
	deltas  deltaRun
}

func (r installResult) pick(f func(installRun) time.Duration) time.Duration {
	var ds []time.Duration
	for _, run := range r.rounds {
		ds = append(ds, f(run))
	}
	return median(ds)
}

// spread is the fastest and slowest round.
func (r installResult) spread(f func(installRun) time.Duration) (lo, hi time.Duration) {
	for i, run := range r.rounds {
		d := f(run)
		if i == 0 || d < lo {
			lo = d
		}
		if d > hi {
			hi = d
		}
	}
	return lo, hi
}

// ratio is the install's throughput over the raw write's (medians).
func (r installResult) ratio() float64 {
	raw := r.pick(func(x installRun) time.Duration { return x.raw })
	in := r.pick(func(x installRun) time.Duration { return x.install })
	return raw.Seconds() / in.Seconds()
}

func (r *report) String() string {
	var sb strings.Builder
	e := r.env
	fmt.Fprintf(&sb, "OTA updates: install throughput and delta savings (issue 7)\n")
	fmt.Fprintf(&sb, "measured %s, source %s, %s\n", r.started.UTC().Format(time.RFC3339), e.source, e.goVersion)
	fmt.Fprintf(&sb, "machine: %d cores (nproc), %s, %s RAM, %s; temporary files on %s\n", e.nproc, e.cpu, e.memTotal, e.osRelease, e.fs)
	fmt.Fprintf(&sb, "tools: %s; %s\n\n", e.mksquashfs, e.mke2fs)

	in := r.install
	mib := float64(in.size) / (1 << 20)
	fmt.Fprintf(&sb, `Install. A %.0f MiB image of random bytes, served by net/http's file server
on loopback from the page cache, streamed by ota/install.Installer into a
file-backed slot opened with ota/install/blockdev (a preexisting file %d MiB
larger than the image, as a partition would be): fsync every 4 MiB, each
followed by dropping the written pages from the page cache, the progress
persisted through internal/atomicfile after every sync as the engine does,
then the whole image read back from the disk and hashed. "read-back" is
the time spent in the slot's reads, i.e. the verify pass; "without
read-back" is the install minus it. The reference is the same bytes,
from memory, written to a new file on the same filesystem in 4 MiB writes
with one fsync at the end ("raw"), and with an fsync every 4 MiB; and the
HTTP download alone, hashed and written nowhere. One raw write to warm up,
then %d rounds, interleaved (raw, raw+fsync/4MiB, download, install);
medians, then each round.

`, mib, 16, len(in.rounds))
	raw := in.pick(func(x installRun) time.Duration { return x.raw })
	fmt.Fprintf(&sb, "  %-36s %8s %9s %12s %14s\n", "", "median s", "MiB/s", "vs raw", "min..max s")
	row := func(name string, f func(installRun) time.Duration) {
		d := in.pick(f)
		lo, hi := in.spread(f)
		vs := fmt.Sprintf("%.2fx", raw.Seconds()/d.Seconds())
		if name == "read-back verify alone" {
			vs = ""
		}
		fmt.Fprintf(&sb, "  %-36s %8.2f %9.1f %12s %6.2f..%.2f\n", name, d.Seconds(), mibps(in.size, d), vs, lo.Seconds(), hi.Seconds())
	}
	row("raw write + one fsync", func(x installRun) time.Duration { return x.raw })
	row("raw write + fsync every 4 MiB", func(x installRun) time.Duration { return x.rawSync4M })
	row("HTTP download + SHA-256, no disk", func(x installRun) time.Duration { return x.download })
	row("install (download, write, read-back)", func(x installRun) time.Duration { return x.install })
	row("install without read-back", func(x installRun) time.Duration { return x.install - x.readBack })
	row("read-back verify alone", func(x installRun) time.Duration { return x.readBack })
	fmt.Fprintf(&sb, `
  This VM's disk (virtio, host-cached) makes raw writes vary several-fold
  from round to round (min..max above), so the ratio below is loose; the
  download alone is the steadier yardstick for the installer's own cost.
`)
	fmt.Fprintf(&sb, "\n  install throughput / raw write throughput = %.2f\n", r.install.ratio())
	fmt.Fprintf(&sb, "  rounds (s): raw | raw+fsync/4MiB | download | install | of which read-back\n")
	for i, x := range in.rounds {
		fmt.Fprintf(&sb, "    %d: %6.2f | %6.2f | %6.2f | %6.2f | %6.2f\n", i+1, x.raw.Seconds(), x.rawSync4M.Seconds(), x.download.Seconds(), x.install.Seconds(), x.readBack.Seconds())
	}

	d := r.deltas
	fmt.Fprintf(&sb, `
Deltas. Two root file systems a release apart:
  1.0.0: roomd and roomctl built from commit %s
  1.1.0: roomd and roomctl built from commit %s
each with "go build -trimpath -buildvcs=false -ldflags '-s -w -X main.version=V'"
from "git archive" of the commit (SOURCE_DATE_EPOCH = commit time), plus the
commit's daemon/config/default.toml as /etc/atrium/roomd.toml, its roomd.service,
an /etc/os-release naming the version and /etc/hostname; under them the files
of %d Debian packages from this machine, %d files and links, without
/usr/share/{doc,man,locale,lintian,info}: identical in both, as in a release
without a Debian update. The packages:
%s
Trees: %.1f MiB and %.1f MiB of regular files.
Building both trees took %.0f s.
`, d.from.commit[:12], d.to.commit[:12], len(basePackages), d.files, wrap(strings.Join(basePackages, " "), 76, "  "),
		float64(d.treeFrom)/(1<<20), float64(d.treeTo)/(1<<20), d.buildTime.Seconds())
	fmt.Fprintf(&sb, "What differs between the trees (besides every file time):\n")
	for _, c := range d.changed {
		fmt.Fprintf(&sb, "  %s\n", c)
	}
	fmt.Fprintf(&sb, `Packed as squashfs: SOURCE_DATE_EPOCH=T mksquashfs -comp zstd -all-root
(T = the release's commit time), and as ext4: mkfs.ext4 -b 4096 -O ^has_journal
-U <fixed> -E hash_seed=<fixed>,root_owner=0:0 -d with E2FSPROGS_FAKE_TIME=T,
file times set to T, both images the same size. "repro diff": bytes that
differed when the base tree was packed twice (0: reproducible). For ext4
this is luck: mke2fs 1.47.0 does not take every time from
E2FSPROGS_FAKE_TIME (one earlier run of this benchmark saw 10575 differing
bytes; in a small trial they were inode time fields and the inode
checksums over them). ota/delta with its defaults (4 KiB blocks, DEFLATE
level 6); Make reads the base and new image from files and writes the
delta to a file; Apply reads the base and delta from files, writes the new
image to a file and fsyncs it; the result was checked against the new image.

`)
	fmt.Fprintf(&sb, "  %-9s %12s %12s %12s %9s %14s %14s %8s %9s %13s\n", "format", "base MiB", "new MiB", "delta KiB", "delta %", "copied MiB", "literal MiB", "make s", "apply s", "repro diff")
	for _, x := range d.results {
		fmt.Fprintf(&sb, "  %-9s %12.1f %12.1f %12.1f %8.2f%% %14.1f %14.2f %8.1f %9.1f %13d\n", x.format,
			float64(x.baseSize)/(1<<20), float64(x.newSize)/(1<<20), float64(x.stats.DeltaSize)/1024,
			100*float64(x.stats.DeltaSize)/float64(x.newSize), float64(x.stats.CopiedBytes)/(1<<20),
			float64(x.stats.LiteralBytes)/(1<<20), x.makeTime.Seconds(), x.applyDur.Seconds(), x.reproducible)
	}
	fmt.Fprintf(&sb, "\nPackages for this benchmark: squashfs-tools (mksquashfs), e2fsprogs (mkfs.ext4), git, tar, dpkg,\nand roomd's build dependencies (libx264-dev libvpx-dev libva-dev libasound2-dev); the base\npackages above must be installed (they are, where roomd's and roomkiosk's tests run).\n")
	return sb.String()
}

// wrap breaks s into lines of at most width, each after indent.
func wrap(s string, width int, indent string) string {
	var sb strings.Builder
	line := indent
	for _, w := range strings.Fields(s) {
		if len(line)+len(w)+1 > width && line != indent {
			sb.WriteString(strings.TrimRight(line, " ") + "\n")
			line = indent
		}
		line += w + " "
	}
	sb.WriteString(strings.TrimRight(line, " "))
	return sb.String()
}
