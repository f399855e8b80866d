package filelock

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	unlock, err := Lock(t.Context(), path, 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A second holder waits, is told once, and gives up with its context.
	waited := 0
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := Lock(ctx, path, 10*time.Millisecond, func() { waited++ }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock while held: %v, want DeadlineExceeded", err)
	}
	if waited != 1 {
		t.Errorf("waiting called %d times, want 1", waited)
	}
	unlock()
	unlock2, err := Lock(t.Context(), path, 10*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock2()
}

func TestLockBadPath(t *testing.T) {
	if _, err := Lock(t.Context(), filepath.Join(t.TempDir(), "missing", "lock"), time.Millisecond, nil); err == nil {
		t.Fatal("Lock in a missing directory succeeded")
	}
}

func TestTryLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	unlock, held, err := TryLock(path)
	if err != nil || !held {
		t.Fatalf("TryLock of a free lock: held %v, %v", held, err)
	}
	if u, held, err := TryLock(path); err != nil || held || u != nil {
		t.Fatalf("TryLock of a held lock: held %v, %v", held, err)
	}
	unlock()
	unlock2, held, err := TryLock(path)
	if err != nil || !held {
		t.Fatalf("TryLock after unlock: held %v, %v", held, err)
	}
	unlock2()
	if _, _, err := TryLock(filepath.Join(t.TempDir(), "missing", "lock")); err == nil {
		t.Fatal("TryLock in a missing directory succeeded")
	}
}
