package meeting

import (
	"context"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// selectProvider joins sessions that implement VideoSelector.
type selectProvider struct {
	*fakeProvider
	selectErr error

	mu    sync.Mutex
	calls [][]VideoWant
}

func (p *selectProvider) Join(ctx context.Context, u *url.URL) (Session, error) {
	s, err := p.fakeProvider.Join(ctx, u)
	if err != nil {
		return nil, err
	}
	return &selectSession{fakeSession: s.(*fakeSession), p: p}, nil
}

func (p *selectProvider) got() [][]VideoWant {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]VideoWant(nil), p.calls...)
}

type selectSession struct {
	*fakeSession
	p *selectProvider
}

func (s *selectSession) SelectVideo(_ context.Context, wants []VideoWant) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.calls = append(s.p.calls, wants)
	return s.p.selectErr
}

var someWants = []VideoWant{
	{PeerLabel: "subscriber", MID: "1", Width: 1280, Height: 720},
	{PeerLabel: "subscriber", MID: "3", Width: 0, Height: 0},
}

func TestEngineSelectVideoIdle(t *testing.T) {
	p := &selectProvider{fakeProvider: &fakeProvider{name: "janus", scheme: "janus"}}
	h := newHarness(p.fakeProvider)
	h.e.providers = []Provider{p}
	if err := h.e.SelectVideo(ctxT(t), someWants); err != nil {
		t.Errorf("SelectVideo when idle = %v, want nil", err)
	}
	if len(p.got()) != 0 {
		t.Errorf("an idle engine forwarded %v", p.got())
	}
}

func TestEngineSelectVideoUnsupported(t *testing.T) {
	p := &fakeProvider{name: "whip", scheme: "whip"}
	h := newHarness(p)
	h.run(t)
	if _, err := h.e.Join(ctxT(t), "whip://whip.example.com/x"); err != nil {
		t.Fatal(err)
	}
	if err := h.e.SelectVideo(ctxT(t), someWants); err != nil {
		t.Errorf("SelectVideo on a session without VideoSelector = %v, want nil", err)
	}
}

func TestEngineSelectVideoForwards(t *testing.T) {
	p := &selectProvider{fakeProvider: &fakeProvider{name: "janus", scheme: "janus"}}
	h := newHarness(p.fakeProvider)
	h.e.providers = []Provider{p}
	h.run(t)
	if _, err := h.e.Join(ctxT(t), "janus://janus.example.com/1234"); err != nil {
		t.Fatal(err)
	}
	if err := h.e.SelectVideo(ctxT(t), someWants); err != nil {
		t.Fatal(err)
	}
	if err := h.e.SelectVideo(ctxT(t), nil); err != nil {
		t.Fatal(err)
	}
	want := [][]VideoWant{someWants, nil}
	if got := p.got(); !reflect.DeepEqual(got, want) {
		t.Errorf("session got %v, want %v", got, want)
	}

	// The session's error comes back wrapped.
	p.selectErr = errors.New("janus said 428")
	err := h.e.SelectVideo(ctxT(t), someWants)
	if !errors.Is(err, p.selectErr) || !strings.Contains(err.Error(), "select video") {
		t.Errorf("SelectVideo = %v, want the session's error, wrapped", err)
	}

	// An invalid list never reaches the session.
	calls := len(p.got())
	err = h.e.SelectVideo(ctxT(t), []VideoWant{{PeerLabel: "subscriber", MID: "1", Width: -1, Height: 10}})
	if !errors.Is(err, ErrInvalidVideoWant) {
		t.Errorf("SelectVideo with a negative width = %v, want ErrInvalidVideoWant", err)
	}
	if len(p.got()) != calls {
		t.Error("an invalid list reached the session")
	}

	// After leaving, it is a no-op again.
	if _, err := h.e.Leave(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	p.selectErr = nil
	calls = len(p.got())
	if err := h.e.SelectVideo(ctxT(t), someWants); err != nil || len(p.got()) != calls {
		t.Errorf("SelectVideo after leave = %v (calls %d → %d), want a no-op", err, calls, len(p.got()))
	}
}

func TestValidateVideoWants(t *testing.T) {
	ok := func(mid string, w, h int) VideoWant {
		return VideoWant{PeerLabel: "subscriber", MID: mid, Width: w, Height: h}
	}
	for _, tt := range []struct {
		name    string
		wants   []VideoWant
		wantErr string // "" for valid
	}{
		{"nil", nil, ""},
		{"shown and hidden", []VideoWant{ok("1", 640, 360), ok("3", 0, 0)}, ""},
		{"largest", []VideoWant{ok("1", MaxShownSide, MaxShownSide)}, ""},
		{"no peer", []VideoWant{{MID: "1", Width: 1, Height: 1}}, `video want 0 (peer "" mid "1"): no peer label`},
		{"no mid", []VideoWant{ok("1", 1, 1), {PeerLabel: "subscriber", Width: 1, Height: 1}}, `video want 1 (peer "subscriber" mid ""): no mid`},
		{"negative", []VideoWant{ok("1", 640, -360)}, "size 640x-360 out of range"},
		{"too large", []VideoWant{ok("1", MaxShownSide+1, 10)}, "out of range 0..16384"},
		{"half zero", []VideoWant{ok("1", 0, 360)}, "size 0x360: give 0x0"},
		{"twice", []VideoWant{ok("1", 640, 360), ok("2", 0, 0), ok("1", 0, 0)}, `video want 2 (peer "subscriber" mid "1"): the same stream as video want 0`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateVideoWants(tt.wants)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("ValidateVideoWants = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidVideoWant) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ValidateVideoWants = %v, want ErrInvalidVideoWant with %q", err, tt.wantErr)
			}
		})
	}
	if (VideoWant{Width: 1, Height: 1}).Shown() != true || (VideoWant{}).Shown() != false {
		t.Error("Shown is wrong")
	}
}
