package hal_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

func TestFallbackSwitchesWithTheServer(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	errNoServer := errors.New("no sound server")
	server := newFakeDriver("pipewire")
	server.set(errNoServer)
	server.watchErr = []error{errNoServer, errNoServer}
	alsa := newFakeDriver("alsa", newFakeDevice("alsa:mic", hal.KindMicrophone))
	r := newRegistry(t, hal.RegistryOptions{
		Drivers: []hal.Driver{hal.FallbackWithRetry("audio", server, alsa, 10*time.Millisecond)},
		Mode:    hal.SimNever,
	})
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Ready()
	waitIDs := func(want ...string) {
		t.Helper()
		for ctx.Err() == nil {
			if got := ids(r.Devices()); slices.Equal(got, want) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("devices %v, want %v", ids(r.Devices()), want)
	}
	waitIDs("alsa:mic")

	// The server starts: its Watch (retried) succeeds and reports a change.
	server.set(nil, newFakeDevice("pw:ec-source", hal.KindMicrophone))
	<-server.watching
	server.trigger()
	waitIDs("pw:ec-source")

	// ALSA hotplug still works behind it, and the server still wins.
	<-alsa.watching
	alsa.set(nil, newFakeDevice("alsa:mic", hal.KindMicrophone), newFakeDevice("alsa:usb", hal.KindMicrophone))
	alsa.trigger()
	server.set(errNoServer)
	server.trigger()
	waitIDs("alsa:mic", "alsa:usb")
}
