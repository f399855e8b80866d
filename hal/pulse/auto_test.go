package pulse

import (
	"errors"
	"testing"
)

func TestAutoConnectsWhenTheServerComes(t *testing.T) {
	s := room()
	s.mu.Lock()
	s.dialErr = ErrNoServer
	s.mu.Unlock()
	a := NewAuto(Options{dial: s.dial})
	if _, err := a.Enumerate(t.Context()); !errors.Is(err, ErrNoServer) {
		t.Fatalf("Enumerate with no server = %v, want ErrNoServer", err)
	}
	if a.Name() != NamePipeWire {
		t.Errorf("Name before a server = %q", a.Name())
	}

	s.mu.Lock()
	s.dialErr = nil
	s.mu.Unlock()
	devs, err := a.Enumerate(t.Context())
	if err != nil || len(devs) == 0 {
		t.Fatalf("Enumerate once the server runs = %d devices, %v", len(devs), err)
	}

	// The server goes away: enumeration fails again (so hal.Fallback uses
	// ALSA), and the driver is asked afresh next time.
	s.mu.Lock()
	s.dialErr = ErrNoServer
	s.mu.Unlock()
	if _, err := a.Enumerate(t.Context()); !errors.Is(err, ErrNoServer) {
		t.Fatalf("Enumerate after the server left = %v", err)
	}
	a.mu.Lock()
	gone := a.drv == nil
	a.mu.Unlock()
	if !gone {
		t.Error("driver kept after its server left")
	}
}
