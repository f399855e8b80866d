package image

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/atriumroom/atrium/internal/filelock"
)

// lockCache takes the cache directory's lock, waiting while another build
// (a test, make image) holds it: builds share the base tarball and the
// scratch trees, and two at once would only fight over 2 cores. The lock
// is released with the returned function, or by the kernel when the
// process dies.
func lockCache(ctx context.Context, dir string, log *slog.Logger) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create image cache: %w", err)
	}
	path := filepath.Join(dir, "lock")
	return filelock.Lock(ctx, path, time.Second, func() {
		log.Info("image: waiting for another build to release the cache", "lock", path)
	})
}

// removeStaleTrees removes scratch trees that a killed build left behind;
// only called under the cache lock, so no build is using them.
func removeStaleTrees(dir string, log *slog.Logger) error {
	stale, err := filepath.Glob(filepath.Join(dir, "tree-*"))
	if err != nil {
		return err
	}
	for _, p := range stale {
		log.Info("image: removing a stale scratch tree", "dir", p)
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove stale scratch tree: %w", err)
		}
	}
	return nil
}

// removeOldBases removes the cached bases other than keep (each is over a
// gigabyte; a changed package list makes the old one useless). Only
// called under the cache lock.
func removeOldBases(dir, keep string, log *slog.Logger) error {
	old, err := filepath.Glob(filepath.Join(dir, "base-*.tar"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if p == keep {
			continue
		}
		log.Info("image: removing an old base", "tarball", p)
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("remove old base: %w", err)
		}
	}
	return nil
}
