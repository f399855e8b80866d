// Command atrium-image builds the appliance's read-only root file system
// and exports its kernel and initramfs (package rootfs/image):
//
//	atrium-image build -out DIR -version V -roomd BIN -roomctl BIN -roomkiosk BIN \
//	    -update-root FILE [-build-time RFC3339] [-comp zstd|lz4]
//
// It writes DIR/rootfs.squashfs, DIR/vmlinuz, DIR/initrd.img and
// DIR/image.json, then the bootable factory disk DIR/disk.img (package
// rootfs/disk: both slots hold this release), and prints the manifest. Run it as root from the
// repository's top directory (or give -rootfs and -cache). Without
// -build-time the build time is $SOURCE_DATE_EPOCH, else now.
//
// Exit status: 0 built, 1 failed, 2 usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/atriumroom/atrium/rootfs/disk"
	"github.com/atriumroom/atrium/rootfs/image"
)

// DiskFile is the bootable disk image written beside the root image.
const DiskFile = "disk.img"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, time.Now))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: atrium-image build -out DIR -version V -roomd BIN -roomctl BIN -roomkiosk BIN -update-root FILE [-build-time RFC3339] [-comp zstd|lz4]")
}

func run(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	if len(args) == 0 || args[0] != "build" {
		usage(stderr)
		return 2
	}
	opts, err := parseBuild(args[1:], stderr, now)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "atrium-image:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	opts.Runner = image.ExecRunner{}
	m, err := image.Build(ctx, opts)
	if err != nil {
		opts.Logger.Error("image build failed", "err", err)
		return 1
	}
	// The factory disk: both slots hold this release, slot a boots first.
	slot, err := image.DiskSlot(opts.Out)
	if err != nil {
		opts.Logger.Error("disk build failed", "err", err)
		return 1
	}
	if err := disk.Build(ctx, disk.Options{Output: filepath.Join(opts.Out, DiskFile), Version: opts.Layer.Version,
		A: slot, ModTime: opts.Layer.BuildTime, Logger: opts.Logger}); err != nil {
		opts.Logger.Error("disk build failed", "err", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return 1
	}
	return 0
}

func parseBuild(args []string, stderr io.Writer, now func() time.Time) (image.Options, error) {
	var o image.Options
	var buildTime string
	fs := flag.NewFlagSet("atrium-image build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Out, "out", "", "output `directory`")
	fs.StringVar(&o.Layer.Version, "version", "", "the image's `version` (os-release IMAGE_VERSION)")
	fs.StringVar(&o.Layer.Roomd, "roomd", "", "the built roomd `program`")
	fs.StringVar(&o.Layer.Roomctl, "roomctl", "", "the built roomctl `program`")
	fs.StringVar(&o.Layer.Roomkiosk, "roomkiosk", "", "the built roomkiosk `program`")
	fs.StringVar(&o.Layer.UpdateRoot, "update-root", "", "the release repository's root.json `file` (fleetd release root)")
	fs.StringVar(&buildTime, "build-time", "", "build `time` (RFC 3339); default $SOURCE_DATE_EPOCH, else now")
	fs.StringVar(&o.Comp, "comp", "zstd", "squashfs `compressor`: zstd or lz4")
	fs.StringVar(&o.Layer.Source, "rootfs", "rootfs", "the repository's rootfs `directory` (overlay, units, packages.txt)")
	fs.StringVar(&o.CacheDir, "cache", ".cache/image", "cache `directory` for the Debian base")
	fs.StringVar(&o.Sources, "sources", image.DefaultSources, "apt sources `file` the base is downloaded from")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for name, v := range map[string]string{"-out": o.Out, "-version": o.Layer.Version, "-roomd": o.Layer.Roomd, "-roomctl": o.Layer.Roomctl, "-roomkiosk": o.Layer.Roomkiosk, "-update-root": o.Layer.UpdateRoot} {
		if v == "" {
			return o, fmt.Errorf("%s is required", name)
		}
	}
	if !image.ValidVersion(o.Layer.Version) {
		return o, fmt.Errorf("-version %q: use letters, digits and ._+~- only", o.Layer.Version)
	}
	t, err := resolveBuildTime(buildTime, os.Getenv("SOURCE_DATE_EPOCH"), now)
	if err != nil {
		return o, err
	}
	o.Layer.BuildTime = t
	return o, nil
}

// resolveBuildTime: the flag, else SOURCE_DATE_EPOCH (seconds), else now;
// whole seconds in UTC, as the image records them.
func resolveBuildTime(flagValue, epoch string, now func() time.Time) (time.Time, error) {
	switch {
	case flagValue != "":
		t, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return time.Time{}, fmt.Errorf("-build-time: %w", err)
		}
		return t.UTC().Truncate(time.Second), nil
	case epoch != "":
		s, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil || s < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: not a count of seconds", epoch)
		}
		return time.Unix(s, 0).UTC(), nil
	default:
		return now().UTC().Truncate(time.Second), nil
	}
}
