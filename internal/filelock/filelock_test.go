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
