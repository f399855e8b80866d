// Package selftest is the room's audio self-test as the API offers it: it
// plays a noise burst on the room's own speaker and records it on its own
// microphone, then does the same through the echo canceller, and reports
// the echo return loss of both (hal/audiotest measures), so IT can see on
// the spot that the canceller works and the devices are connected.
package selftest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/devsel"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/audiotest"
)

// ErrInCall refuses the audio self-test during a meeting: it plays noise
// into the room and needs the speaker and microphone to itself.
var ErrInCall = errors.New("a meeting is in progress; leave it before testing the audio")

// ErrNoAudioPair means the room has no speaker and microphone to test.
var ErrNoAudioPair = errors.New("no speaker and microphone to test")

// Lister finds devices by ID (the registry).
type Lister interface {
	Lookup(id string) (hal.Device, bool)
}

// Tester runs the self-test.
type Tester struct {
	sel    *devsel.Selector
	devs   Lister
	inCall func() bool
	log    *slog.Logger
}

// New returns a Tester; inCall reports whether a meeting holds the devices.
func New(sel *devsel.Selector, devs Lister, inCall func() bool, log *slog.Logger) *Tester {
	return &Tester{sel: sel, devs: devs, inCall: inCall, log: log}
}

// Run measures the raw pair (req's devices, or the room's own), then the
// echo-cancelled one, one after the other (they share the room's hardware).
func (t *Tester) Run(ctx context.Context, req apiv1.AudioTestRequest) (apiv1.AudioTestResult, error) {
	if t.inCall() {
		return apiv1.AudioTestResult{}, ErrInCall
	}
	raw, cancelled := t.sel.AudioTestPairs()
	if req.Speaker != "" {
		d, ok := t.devs.Lookup(req.Speaker)
		spk, isSpk := d.(hal.Speaker)
		if !ok || !isSpk {
			return apiv1.AudioTestResult{}, fmt.Errorf("speaker %q: %w", req.Speaker, hal.ErrNotFound)
		}
		raw.Speaker = spk
	}
	if req.Microphone != "" {
		d, ok := t.devs.Lookup(req.Microphone)
		mic, isMic := d.(hal.Microphone)
		if !ok || !isMic {
			return apiv1.AudioTestResult{}, fmt.Errorf("microphone %q: %w", req.Microphone, hal.ErrNotFound)
		}
		raw.Microphone = mic
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	log := t.log
	var out apiv1.AudioTestResult
	run := func(p devsel.AudioPair) (*apiv1.AudioTestRun, error) {
		if p.Speaker == nil || p.Microphone == nil {
			return nil, nil
		}
		r, err := audiotest.Run(ctx, audiotest.Pair{Speaker: p.Speaker, Microphone: p.Microphone}, audiotest.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("audio self-test on %s and %s: %w", p.Speaker.Info().ID, p.Microphone.Info().ID, err)
		}
		log.Info("audio self-test", "speaker", p.Speaker.Info().ID, "microphone", p.Microphone.Info().ID, "result", r.String())
		return &apiv1.AudioTestRun{
			Speaker: p.Speaker.Info().ID, Microphone: p.Microphone.Info().ID,
			EchoFound: r.Detected, DelayMs: float64(r.Delay) / float64(time.Millisecond),
			ERLdB: r.ERL, BelowNoise: r.BelowNoise,
		}, nil
	}
	var err error
	if out.Raw, err = run(raw); err != nil {
		return apiv1.AudioTestResult{}, err
	}
	if out.Cancelled, err = run(cancelled); err != nil {
		return apiv1.AudioTestResult{}, err
	}
	switch {
	case out.Raw == nil && out.Cancelled == nil:
		return apiv1.AudioTestResult{}, ErrNoAudioPair
	case out.Raw != nil && out.Cancelled != nil:
		out.ImprovementDB = out.Cancelled.ERLdB - out.Raw.ERLdB
	}
	return out, nil
}
