package rollout

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/atriumroom/atrium/ota/release"
)

// Release is one image published in the TUF repository, as a rollout
// needs it.
type Release struct {
	Target          string    // the TUF target name
	Version         string    // from the image's signed metadata
	SecurityVersion int       // the anti-rollback floor it sets
	Hardware        []string  // hardware IDs it runs on
	BuildTime       time.Time // when it was built
	Length          int64     // the target's size in bytes
}

// RunsOn reports whether the release lists the hardware ID.
func (r Release) RunsOn(hardware string) bool { return slices.Contains(r.Hardware, hardware) }

// Catalog lists the releases a rollout can pick from.
type Catalog interface {
	// Releases lists every release, newest BuildTime first.
	Releases(ctx context.Context) ([]Release, error)
}

// ErrNoRelease: no release has the target name asked for.
var ErrNoRelease = errors.New("no such release")

// Find returns the release with the target name from a catalog
// ([ErrNoRelease] when there is none).
func Find(ctx context.Context, c Catalog, target string) (Release, error) {
	rels, err := c.Releases(ctx)
	if err != nil {
		return Release{}, err
	}
	for _, r := range rels {
		if r.Target == target {
			return r, nil
		}
	}
	return Release{}, fmt.Errorf("release %q: %w", target, ErrNoRelease)
}

// NewRepoCatalog returns the catalog of the TUF repository in dir (the
// directory the release tool publishes into and fleetd serves). Each call
// checks the repository's targets metadata and reads it again when it has
// changed, so a release published while fleetd runs shows up on the next
// call, while the check-in path costs a stat.
func NewRepoCatalog(dir string) Catalog { return &repoCatalog{dir: dir} }

type repoCatalog struct {
	dir string

	mu   sync.Mutex
	seen fileStamp // of metadata/targets.json when rels was read
	rels []Release
}

// fileStamp identifies one version of a file well enough to notice a
// publisher replacing it (it writes a new file and renames it over).
type fileStamp struct {
	size    int64
	modTime time.Time
	ok      bool
}

func (c *repoCatalog) Releases(ctx context.Context) ([]Release, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list releases in %s: %w", c.dir, err)
	}
	targetsFile := filepath.Join(c.dir, "metadata", "targets.json")
	fi, err := os.Stat(targetsFile)
	if err != nil {
		return nil, fmt.Errorf("list releases in %s: %w", c.dir, err)
	}
	stamp := fileStamp{fi.Size(), fi.ModTime(), true}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == stamp {
		return cloneReleases(c.rels), nil
	}
	rels, err := readReleases(c.dir, targetsFile)
	if err != nil {
		return nil, fmt.Errorf("list releases in %s: %w", c.dir, err)
	}
	c.seen, c.rels = stamp, rels
	return cloneReleases(rels), nil
}

// cloneReleases copies the cached list deeply, so a caller cannot change
// the cache through it.
func cloneReleases(rels []Release) []Release {
	out := slices.Clone(rels)
	for i := range out {
		out[i].Hardware = slices.Clone(out[i].Hardware)
	}
	return out
}

// readReleases reads the targets through ota/release (which decodes the
// images' metadata strictly) and their lengths from the same file.
func readReleases(dir, targetsFile string) ([]Release, error) {
	repo, err := release.Open(dir, nil, release.DefaultExpiry())
	if err != nil {
		return nil, err
	}
	metas, err := repo.Targets()
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(targetsFile)
	if err != nil {
		return nil, err
	}
	var lengths struct {
		Signed struct {
			Targets map[string]struct {
				Length int64 `json:"length"`
			} `json:"targets"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(raw, &lengths); err != nil {
		return nil, fmt.Errorf("%s: %w", targetsFile, err)
	}
	out := make([]Release, 0, len(metas))
	for name, m := range metas {
		out = append(out, Release{
			Target: name, Version: m.Version, SecurityVersion: m.SecurityVersion,
			Hardware: slices.Clone(m.Hardware), BuildTime: m.BuildTime,
			Length: lengths.Signed.Targets[name].Length,
		})
	}
	slices.SortFunc(out, func(a, b Release) int {
		if c := b.BuildTime.Compare(a.BuildTime); c != 0 {
			return c
		}
		return cmp.Compare(a.Target, b.Target)
	})
	return out, nil
}
