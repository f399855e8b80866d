package meeting

import (
	"context"
	"errors"
	"net/url"
	"reflect"
	"testing"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// restartProvider joins sessions that implement Restarter.
type restartProvider struct {
	*fakeProvider
	restartErr error
	// during records the engine's state while RestartICE runs.
	during chan apiv1.MeetingState
	e      *Engine
}

func (p *restartProvider) Join(ctx context.Context, u *url.URL) (Session, error) {
	s, err := p.fakeProvider.Join(ctx, u)
	if err != nil {
		return nil, err
	}
	return &restartSession{fakeSession: s.(*fakeSession), p: p}, nil
}

type restartSession struct {
	*fakeSession
	p *restartProvider
}

func (s *restartSession) RestartICE(ctx context.Context) error {
	s.j.add("restart %s", s.host)
	s.p.during <- s.p.e.State().State
	return s.p.restartErr
}

func TestEngineRestartICE(t *testing.T) {
	for _, tt := range []struct {
		name       string
		restartErr error
		want       []apiv1.MeetingState
	}{
		{"succeeds", nil, []apiv1.MeetingState{apiv1.MeetingJoining, apiv1.MeetingConnected, apiv1.MeetingReconnecting, apiv1.MeetingConnected}},
		{"fails", errors.New("janus said no"), []apiv1.MeetingState{apiv1.MeetingJoining, apiv1.MeetingConnected, apiv1.MeetingReconnecting}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &restartProvider{fakeProvider: &fakeProvider{name: "janus", scheme: "janus"}, restartErr: tt.restartErr, during: make(chan apiv1.MeetingState, 1)}
			h := newHarness(p.fakeProvider)
			h.e.providers = []Provider{p}
			p.e = h.e
			h.run(t)
			if _, err := h.e.Join(ctxT(t), "janus://janus.example.com/1234"); err != nil {
				t.Fatal(err)
			}
			err := h.e.RestartICE(ctxT(t))
			if !errors.Is(err, tt.restartErr) || (err == nil) != (tt.restartErr == nil) {
				t.Errorf("RestartICE = %v, want %v", err, tt.restartErr)
			}
			if st := <-p.during; st != apiv1.MeetingReconnecting {
				t.Errorf("state during the restart = %s, want reconnecting", st)
			}
			if got := h.rec.kinds(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("states = %v, want %v", got, tt.want)
			}
			last := h.rec.all()[len(tt.want)-1]
			if last.URL == "" || last.Provider != "janus" {
				t.Errorf("last state %+v lost the meeting's URL or provider", last)
			}
			if want := []string{"janus join janus.example.com", "restart janus.example.com"}; !reflect.DeepEqual(h.j.get(), want) {
				t.Errorf("journal = %v, want %v", h.j.get(), want)
			}
		})
	}
}

func TestEngineRestartICEWithoutSession(t *testing.T) {
	h := newHarness(&fakeProvider{name: "web", scheme: "https"})
	h.run(t)
	if err := h.e.RestartICE(ctxT(t)); err != nil {
		t.Errorf("RestartICE with no meeting = %v, want nil", err)
	}
	if len(h.rec.all()) != 0 {
		t.Errorf("published %v", h.rec.kinds())
	}
}

func TestEngineRestartICENotSupported(t *testing.T) {
	h := newHarness(&fakeProvider{name: "web", scheme: "https"})
	h.run(t)
	if _, err := h.e.Join(ctxT(t), "https://meet.example.com/r"); err != nil {
		t.Fatal(err)
	}
	if err := h.e.RestartICE(ctxT(t)); !errors.Is(err, ErrNoRestart) {
		t.Errorf("RestartICE = %v, want ErrNoRestart", err)
	}
	if got, want := h.rec.kinds(), []apiv1.MeetingState{apiv1.MeetingJoining, apiv1.MeetingConnected}; !reflect.DeepEqual(got, want) {
		t.Errorf("states = %v, want %v", got, want)
	}
}
