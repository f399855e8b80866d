package daemon

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/nettest"
)

// networkTests keeps the last result where the fleet console will read it.
func (s *System) networkTests() nettest.Store {
	return nettest.Store{Path: filepath.Join(s.Config.Daemon.StateDir, "nettest.json")}
}

// RunNetworkTest implements api.Backend: the configured STUN and TURN
// servers over every transport, and a short probe; refused during a
// meeting, whose media the probe would disturb.
func (s *System) RunNetworkTest(ctx context.Context) (apiv1.NetworkTest, error) {
	if s.inCall() {
		return apiv1.NetworkTest{}, ErrInCallNetwork
	}
	r, err := nettest.Run(ctx, s.currentICE(), nettest.Options{Logger: s.Deps.Logger.With("subsystem", "nettest"), Now: s.Deps.Now})
	if err != nil {
		return apiv1.NetworkTest{}, err
	}
	if err := s.networkTests().Save(r); err != nil {
		s.Deps.Logger.Warn("network test result not kept", "err", err)
	}
	s.Deps.Logger.Info("network test", "verdict", r.Verdict.Text, "level", r.Verdict.Level)
	return convertNetworkTest(r), nil
}

// ErrInCallNetwork refuses a network test during a meeting.
var ErrInCallNetwork = errors.New("a meeting is in progress; the network test would disturb it")

// LastNetworkTest implements api.Backend.
func (s *System) LastNetworkTest() (apiv1.NetworkTest, error) {
	r, err := s.networkTests().Load()
	if err != nil {
		return apiv1.NetworkTest{}, err
	}
	return convertNetworkTest(r), nil
}

func convertNetworkTest(r nettest.Result) apiv1.NetworkTest {
	out := apiv1.NetworkTest{
		Time: r.Time, DurationMs: r.DurationMS, Checks: []apiv1.NetworkCheck{},
		Verdict: apiv1.NetworkVerdict{Level: string(r.Verdict.Level), Text: r.Verdict.Text, Path: r.Verdict.Path},
	}
	for _, c := range r.Checks {
		out.Checks = append(out.Checks, apiv1.NetworkCheck{
			Kind: c.Kind, URL: c.URL, Transport: c.Transport, OK: c.OK, ConnectMs: c.ConnectMS, RTTMs: c.RTTMS,
			Reflexive: c.Reflexive, Relay: c.Relay, Failure: string(c.Failure), Error: c.Error,
		})
	}
	if b := r.Bandwidth; b != nil {
		out.Bandwidth = &apiv1.NetworkBandwidth{
			URL: b.URL, Transport: b.Transport, TargetKbps: b.TargetKbps, DurationMs: b.DurationMS,
			SentPackets: b.SentPackets, ReceivedPackets: b.ReceivedPackets, LossPercent: b.LossPercent,
			ReceivedKbps: b.ReceivedKbps, Error: b.Error,
		}
	}
	return out
}
