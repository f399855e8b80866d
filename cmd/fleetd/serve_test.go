package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/ota/release"
)

// timestampOnly copies the timestamp key of keys into a new directory:
// what the fleet server holds.
func timestampOnly(t *testing.T, keys string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ts")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(keys, "timestamp.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "timestamp.key"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestServeUpdatesFlags(t *testing.T) {
	dir := t.TempDir()
	repo, keys := filepath.Join(dir, "repo"), filepath.Join(dir, "keys")
	mustFleetd(t, "release", "init", "-repo", repo, "-keys", keys)
	ts := timestampOnly(t, keys)
	data := filepath.Join(dir, "data")

	// Refused before the server starts, naming the flag.
	_, err := fleetd(t, "serve", "-data", data, "-updates", filepath.Join(dir, "nope"), "-timestamp-keys", ts)
	if err == nil || !strings.Contains(err.Error(), "-updates") {
		t.Errorf("missing repository: %v", err)
	}
	_, err = fleetd(t, "serve", "-data", data, "-updates", repo, "-timestamp-keys", filepath.Join(dir, "empty"))
	if !errors.Is(err, release.ErrMissingKey) || !strings.Contains(err.Error(), "-timestamp-keys") {
		t.Errorf("no keys: %v", err)
	}
	otherKeys := filepath.Join(dir, "keys2")
	mustFleetd(t, "release", "init", "-repo", filepath.Join(dir, "repo2"), "-keys", otherKeys)
	_, err = fleetd(t, "serve", "-data", data, "-updates", repo, "-timestamp-keys", timestampOnly(t, otherKeys))
	if !errors.Is(err, release.ErrWrongKey) {
		t.Errorf("another repository's timestamp key: %v", err)
	}
	if _, err := fleetd(t, "serve", "-data", data, "-updates", repo, "-timestamp-check", "0s"); !errors.Is(err, errUsage) {
		t.Errorf("zero -timestamp-check: %v", err)
	}

	// The real server with the keeper runs and stops with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var out, errOut strings.Builder
	err = run(ctx, []string{"serve", "-data", data, "-device-listen", "127.0.0.1:0", "-console-listen", "127.0.0.1:0",
		"-updates", repo, "-timestamp-keys", ts, "-timestamp-check", "50ms", "-log-level", "debug"}, strings.NewReader(""), &out, &errOut)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("serve: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "release timestamp checked") {
		t.Errorf("the timestamp keeper did not run:\n%s", errOut.String())
	}
}
