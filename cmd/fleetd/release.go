package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atriumroom/atrium/ota/delta"
	"github.com/atriumroom/atrium/ota/release"
)

const releaseUsage = `usage:
  fleetd release init -repo DIR -keys DIR
  fleetd release add -repo DIR -keys DIR -image FILE -version V -security-version N -hardware H[,H...]
               [-name NAME] [-build-time RFC3339] [-delta-from OLDIMAGE]
  fleetd release timestamp -repo DIR -keys DIR
  fleetd release list -repo DIR
  fleetd release root -repo DIR
  fleetd release rotate -repo DIR -keys DIR -new-keys DIR

The release repository (-repo) is a TUF repository of plain files: publish
it where fleetd serve -updates reads it. Keys (-keys) are one ed25519 key
per role, DIR/ROLE.key, mode 0600:

  root, targets, snapshot  OFFLINE: on the release machine (or removable
                           media) only, never on the fleet server. init,
                           add, rotate need them.
  timestamp                ONLINE: the only key the fleet server holds
                           (fleetd serve -timestamp-keys DIR), to re-sign
                           timestamp.json before it expires.

add publishes FILE as NAME (default atrium-<version>.img) for the listed
hardware. -build-time defaults to $SOURCE_DATE_EPOCH, then to FILE's
modification time; reproducible builds pass it. -delta-from OLDIMAGE also
publishes a delta from OLDIMAGE (itself a published image) to the new one.
root prints the current root.json: the trust anchor baked into device
images. rotate replaces every key with the keys in -new-keys (generated
there when the directory holds none); devices follow on their next check.
`

// runRelease runs "fleetd release SUBCOMMAND ...".
func runRelease(_ context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: release: no subcommand", errUsage)
	}
	sub, args := args[0], args[1:]
	if sub == "-h" || sub == "-help" || sub == "--help" || sub == "help" {
		fmt.Fprint(stdout, releaseUsage)
		return nil
	}
	fl := flag.NewFlagSet("fleetd release "+sub, flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, releaseUsage) }
	repoDir := fl.String("repo", "", "release repository directory")
	keyDir := fl.String("keys", "", "directory of role keys (ROLE.key)")
	expiry := release.DefaultExpiry()
	switch sub {
	case "init":
		if err := parse(fl, args); err != nil {
			return err
		}
		if err := need(*repoDir, "-repo", *keyDir, "-keys"); err != nil {
			return err
		}
		// Checked before keys are made, so a refusal leaves no orphan keys.
		if _, err := os.Stat(filepath.Join(*repoDir, "metadata", "root.json")); err == nil {
			return fmt.Errorf("-repo %s: %w: already a release repository", *repoDir, os.ErrExist)
		}
		if err := os.MkdirAll(*keyDir, 0o700); err != nil {
			return fmt.Errorf("-keys %s: %w", *keyDir, err)
		}
		keys, err := release.GenerateKeys(*keyDir)
		if err != nil {
			return fmt.Errorf("-keys %s: %w", *keyDir, err)
		}
		if _, err := release.Init(*repoDir, keys, expiry, now()); err != nil {
			return fmt.Errorf("-repo %s: %w", *repoDir, err)
		}
		fmt.Fprintf(stdout, "repository %s created; keys in %s (move root, targets and snapshot offline)\n", *repoDir, *keyDir)
		return nil
	case "add":
		image := fl.String("image", "", "root-filesystem image file")
		version := fl.String("version", "", "release version (1.4.2)")
		secver := fl.String("security-version", "", "anti-rollback security version (integer)")
		hardware := fl.String("hardware", "", "comma-separated hardware IDs")
		name := fl.String("name", "", "target name (default atrium-<version>.img)")
		buildTime := fl.String("build-time", "", "RFC 3339 build time (default $SOURCE_DATE_EPOCH, then the image's mtime)")
		deltaFrom := fl.String("delta-from", "", "previous image file: also publish a delta from it")
		if err := parse(fl, args); err != nil {
			return err
		}
		if err := need(*repoDir, "-repo", *keyDir, "-keys", *image, "-image", *version, "-version", *secver, "-security-version", *hardware, "-hardware"); err != nil {
			return err
		}
		sv, err := strconv.Atoi(*secver)
		if err != nil || sv < 0 {
			return fmt.Errorf("%w: -security-version %q is not a non-negative integer", errUsage, *secver)
		}
		if *name == "" {
			*name = "atrium-" + *version + ".img"
		}
		repo, err := openRepo(*repoDir, *keyDir, expiry)
		if err != nil {
			return err
		}
		f, err := os.Open(*image)
		if err != nil {
			return fmt.Errorf("-image: %w", err)
		}
		defer func() { _ = f.Close() }()
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("-image: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("-image %s: not a regular file", *image)
		}
		bt, err := chooseBuildTime(*buildTime, fi, now())
		if err != nil {
			return err
		}
		sum, err := hashFile(f, fi.Size())
		if err != nil {
			return fmt.Errorf("-image %s: %w", *image, err)
		}
		meta := release.ImageMeta{
			Hardware: splitList(*hardware), Version: *version, SecurityVersion: sv, BuildTime: bt,
			Partitions: map[string]release.PartitionMeta{"rootfs": {Size: fi.Size(), SHA256: sum}},
		}
		if err := meta.Validate(); err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("-image %s: %w", *image, err)
		}
		var old *os.File
		var oldSize int64
		if *deltaFrom != "" {
			// Opened before publishing so a wrong path fails before the
			// image is out.
			if old, err = os.Open(*deltaFrom); err != nil {
				return fmt.Errorf("-delta-from: %w", err)
			}
			defer func() { _ = old.Close() }()
			ofi, err := old.Stat()
			if err != nil {
				return fmt.Errorf("-delta-from: %w", err)
			}
			oldSize = ofi.Size()
		}
		if err := repo.AddImage(*name, f, meta, now()); err != nil {
			return fmt.Errorf("-image %s: %w", *image, err)
		}
		fmt.Fprintf(stdout, "published %s: version %s, security version %d, %d bytes, sha256 %s, built %s, hardware %s\n",
			*name, meta.Version, sv, fi.Size(), sum, bt.Format(time.RFC3339), strings.Join(meta.Hardware, ","))
		if old != nil {
			dname, st, err := repo.PublishDelta(old, oldSize, *name, delta.Options{}, now())
			if err != nil {
				return fmt.Errorf("-delta-from %s: %w", *deltaFrom, err)
			}
			fmt.Fprintf(stdout, "published %s: %d bytes (%.1f%% of the image), %d bytes copied from the base, %d literal\n",
				dname, st.DeltaSize, 100*float64(st.DeltaSize)/float64(st.TargetSize), st.CopiedBytes, st.LiteralBytes)
		}
		return nil
	case "timestamp":
		if err := parse(fl, args); err != nil {
			return err
		}
		if err := need(*repoDir, "-repo", *keyDir, "-keys"); err != nil {
			return err
		}
		repo, err := openRepo(*repoDir, *keyDir, expiry)
		if err != nil {
			return err
		}
		if err := repo.RefreshTimestamp(now()); err != nil {
			return fmt.Errorf("-keys %s: %w", *keyDir, err)
		}
		fmt.Fprintf(stdout, "timestamp re-signed, expires %s\n", repo.TimestampExpires().Format(time.RFC3339))
		return nil
	case "list":
		if err := parse(fl, args); err != nil {
			return err
		}
		if err := need(*repoDir, "-repo"); err != nil {
			return err
		}
		repo, err := release.Open(*repoDir, nil, expiry)
		if err != nil {
			return fmt.Errorf("-repo: %w", err)
		}
		entries, err := repo.List()
		if err != nil {
			return fmt.Errorf("-repo %s: %w", *repoDir, err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tSECURITY\tBYTES\tSHA256\tFOR")
		for _, e := range entries {
			if e.Image != nil {
				fmt.Fprintf(tw, "%s\timage\t%s\t%d\t%d\t%s\t%s\n", e.Name, e.Image.Version, e.Image.SecurityVersion, e.Length, e.SHA256, strings.Join(e.Image.Hardware, ","))
			} else {
				fmt.Fprintf(tw, "%s\tdelta\t%s\t-\t%d\t%s\tfrom %s (%s)\n", e.Name, e.Delta.Target, e.Length, e.SHA256, e.Delta.BaseVersion, e.Delta.BaseSHA256[:16])
			}
		}
		return tw.Flush()
	case "root":
		if err := parse(fl, args); err != nil {
			return err
		}
		if err := need(*repoDir, "-repo"); err != nil {
			return err
		}
		repo, err := release.Open(*repoDir, nil, expiry)
		if err != nil {
			return fmt.Errorf("-repo: %w", err)
		}
		b, err := repo.RootJSON()
		if err != nil {
			return err
		}
		_, err = stdout.Write(append(b, '\n'))
		return err
	case "rotate":
		newKeys := fl.String("new-keys", "", "directory of the new role keys (generated when it holds none)")
		if err := parse(fl, args); err != nil {
			return err
		}
		if err := need(*repoDir, "-repo", *keyDir, "-keys", *newKeys, "-new-keys"); err != nil {
			return err
		}
		repo, err := openRepo(*repoDir, *keyDir, expiry)
		if err != nil {
			return err
		}
		next, err := release.LoadKeys(*newKeys)
		if errors.Is(err, release.ErrMissingKey) {
			if err := os.MkdirAll(*newKeys, 0o700); err != nil {
				return fmt.Errorf("-new-keys %s: %w", *newKeys, err)
			}
			next, err = release.GenerateKeys(*newKeys)
		}
		if err != nil {
			return fmt.Errorf("-new-keys %s: %w", *newKeys, err)
		}
		if err := repo.RotateKeys(next, now()); err != nil {
			return fmt.Errorf("-new-keys %s: %w", *newKeys, err)
		}
		fmt.Fprintf(stdout, "keys rotated to %s; publish the new root (fleetd release root) in new device images\n", *newKeys)
		return nil
	}
	return fmt.Errorf("%w: unknown release subcommand %q", errUsage, sub)
}

// need checks required flags, given as value, name pairs.
func need(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i] == "" {
			return fmt.Errorf("%w: %s is required", errUsage, pairs[i+1])
		}
	}
	return nil
}

func openRepo(repoDir, keyDir string, expiry release.Expiry) (*release.Repo, error) {
	keys, err := release.LoadKeys(keyDir)
	if err != nil {
		return nil, fmt.Errorf("-keys %s: %w", keyDir, err)
	}
	repo, err := release.Open(repoDir, keys, expiry)
	if err != nil {
		if errors.Is(err, release.ErrWrongKey) {
			return nil, fmt.Errorf("-keys %s: %w", keyDir, err)
		}
		return nil, fmt.Errorf("-repo: %w", err)
	}
	return repo, nil
}

// chooseBuildTime takes -build-time, else SOURCE_DATE_EPOCH (what
// reproducible builds set), else the image's modification time. A build
// time in the future is refused: devices use it as a floor for their
// clock, and one ahead of real time would make them refuse fresh metadata.
func chooseBuildTime(flagValue string, fi fs.FileInfo, now time.Time) (time.Time, error) {
	var t time.Time
	switch {
	case flagValue != "":
		p, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return t, fmt.Errorf("%w: -build-time %q is not RFC 3339 (2026-03-01T12:00:00Z)", errUsage, flagValue)
		}
		t = p
	case os.Getenv("SOURCE_DATE_EPOCH") != "":
		sec, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
		if err != nil {
			return t, fmt.Errorf("%w: $SOURCE_DATE_EPOCH %q is not seconds since 1970", errUsage, os.Getenv("SOURCE_DATE_EPOCH"))
		}
		t = time.Unix(sec, 0)
	default:
		t = fi.ModTime()
	}
	t = t.UTC().Truncate(time.Second)
	if t.After(now.Add(5 * time.Minute)) {
		return t, fmt.Errorf("%w: build time %s is in the future", errUsage, t.Format(time.RFC3339))
	}
	return t, nil
}
