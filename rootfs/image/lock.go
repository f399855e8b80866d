package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/atriumroom/atrium/internal/filelock"
)

// lockCache takes the cache directory's lock, waiting while another build
// (a test, make image) holds it. A build holds it while it makes, picks or
// reads the base tarball and sets up its scratch tree, and lets go before
// the long single-threaded steps (the layer, the initramfs), so builds
// overlap there. The lock is released with the returned function, or by
// the kernel when the process dies.
func lockCache(ctx context.Context, dir string, log *slog.Logger) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create image cache: %w", err)
	}
	path := filepath.Join(dir, "lock")
	return filelock.Lock(ctx, path, time.Second, func() {
		log.Info("image: waiting for another build to release the cache", "lock", path)
	})
}

// treeLock is the lock file in a scratch tree's directory: its build
// holds it until the tree is gone.
const treeLock = ".lock"

// newTree makes a scratch directory in the cache and takes its lock; only
// called under the cache lock, as removeStaleTrees is, so that one never
// sees the other's directory without its lock.
func newTree(dir string) (work string, release func(), err error) {
	work, err = os.MkdirTemp(dir, "tree-")
	if err != nil {
		return "", nil, fmt.Errorf("image build: scratch directory: %w", err)
	}
	unlock, held, err := filelock.TryLock(filepath.Join(work, treeLock))
	if err == nil && !held {
		err = errors.New("held by another build")
	}
	if err != nil {
		os.RemoveAll(work)
		return "", nil, fmt.Errorf("image build: lock scratch directory: %w", err)
	}
	return work, func() {
		os.RemoveAll(work)
		unlock()
	}, nil
}

// removeStaleTrees removes scratch trees that a killed build left behind:
// those whose lock nobody holds. Only called under the cache lock.
func removeStaleTrees(dir string, log *slog.Logger) error {
	trees, err := filepath.Glob(filepath.Join(dir, "tree-*"))
	if err != nil {
		return err
	}
	for _, p := range trees {
		unlock, held, err := filelock.TryLock(filepath.Join(p, treeLock))
		if err != nil {
			return fmt.Errorf("remove stale scratch tree: %w", err)
		}
		if !held {
			continue // another build's, in use
		}
		log.Info("image: removing a stale scratch tree", "dir", p)
		err = os.RemoveAll(p)
		unlock()
		if err != nil {
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
