package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/atriumroom/atrium/ota/release"
	"github.com/atriumroom/atrium/provisioning/fleet/server"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

const updatesPath = fleetapi.PathUpdates

// serverOptions adds the release repository to the server's options.
func serverOptions(o server.Options, updates string) server.Options {
	o.UpdatesDir = updates
	return o
}

// timestampKeeper opens the release repository with only the timestamp
// key (the online half of the key split) and returns the loop that keeps
// timestamp.json fresh, or nil without -timestamp-keys. The repository is
// opened here so a wrong directory or key fails before the server starts.
func timestampKeeper(updates, keyDir string, check time.Duration, log *slog.Logger) (func(context.Context) error, error) {
	if keyDir == "" {
		return nil, nil
	}
	keys, err := release.LoadKeys(keyDir)
	if err != nil {
		return nil, fmt.Errorf("-timestamp-keys %s: %w", keyDir, err)
	}
	if !keys.Has(release.RoleTimestamp) {
		return nil, fmt.Errorf("-timestamp-keys %s: %w: no timestamp.key", keyDir, release.ErrMissingKey)
	}
	for _, role := range []string{release.RoleRoot, release.RoleTargets, release.RoleSnapshot} {
		if keys.Has(role) {
			// Not refused (a lab may run everything on one machine), but
			// said loudly: these keys belong offline.
			log.Warn("an offline release key is on the fleet server", "role", role, "dir", keyDir)
		}
	}
	repo, err := release.Open(updates, keys, release.DefaultExpiry())
	if err != nil {
		return nil, fmt.Errorf("-updates %s: %w", updates, err)
	}
	return func(ctx context.Context) error {
		return repo.KeepTimestampFresh(ctx, time.Now, check, log.With("component", "release-timestamp"))
	}, nil
}

// serveWith runs the server and, when given, the timestamp loop under one
// context: when either ends the other is stopped, and both are waited for.
func serveWith(ctx context.Context, run func(context.Context) error, fresh func(context.Context) error) error {
	if fresh == nil {
		return run(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var freshErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		freshErr = fresh(ctx)
	}()
	err := run(ctx)
	cancel()
	wg.Wait()
	if freshErr != nil {
		err = errors.Join(err, fmt.Errorf("release timestamp: %w", freshErr))
	}
	return err
}
