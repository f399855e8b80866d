package whip

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// RestartICE on request: a PATCH on each leg, the session going on.

func TestRestartICEOnRequest(t *testing.T) {
	noLeaks(t)
	whep := newFakeServer(t, func(s *fakeServer) { s.location = "/whep/resource/2" })
	whip := newFakeServer(t, nil)
	raw := "whip+" + whip.endpoint() + "?whep=" + strings.NewReplacer(":", "%3A", "/", "%2F").Replace(whep.URL+"/whep/ep")
	s, peers, log, err := join(t, Config{}, raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RestartICE(testContext(t, 5*time.Second)); err != nil {
		t.Fatalf("RestartICE: %v", err)
	}
	for _, c := range []struct {
		srv   *fakeServer
		label string
		path  string
	}{{whip, "publisher", "/whip/resource/1"}, {whep, "subscriber", "/whep/resource/2"}} {
		patch, ok := c.srv.find(http.MethodPatch)
		if !ok || patch.path != c.path || !hasLine(patch.body, "a=ice-ufrag:restartufrag") {
			t.Errorf("%s: PATCH %q ok %v with\n%s\nwant the restart fragment to %s", c.label, patch.path, ok, patch.body, c.path)
		}
		p := peers.peer(c.label)
		if p.restartCount() != 1 || len(p.answers()) != 2 || !hasLine(p.answers()[1], "a=ice-ufrag:newufrag") {
			t.Errorf("%s: %d restarts, answers %q; want one restart with the server's new credentials", c.label, p.restartCount(), p.answers())
		}
		if !log.has("ICE restarted", "leg="+map[string]string{"publisher": "publish", "subscriber": "subscribe"}[c.label]) {
			t.Errorf("%s: the restart is not logged:\n%s", c.label, log)
		}
	}

	// A requested restart is not the failing leg's one restart.
	pub := peers.peer("publisher")
	pub.push(meeting.PeerState{Failed: true, Reason: "ICE failed"})
	eventually(t, 5*time.Second, "the restart after the failure", func() bool { return pub.restartCount() == 2 })
	select {
	case <-s.Done():
		t.Fatalf("the session ended: %v", s.Err())
	default:
	}
}

func TestRestartICEOnRequestRefused(t *testing.T) {
	noLeaks(t)
	srv := newFakeServer(t, func(s *fakeServer) { s.patchStatus = http.StatusMethodNotAllowed })
	s, _, _, err := join(t, Config{}, "whip+"+srv.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	err = s.RestartICE(testContext(t, 5*time.Second))
	if !errors.Is(err, ErrRestartFailed) || !strings.Contains(err.Error(), "405") || !strings.Contains(err.Error(), "publish") {
		t.Errorf("RestartICE = %v, want ErrRestartFailed with the 405", err)
	}
	select {
	case <-s.Done():
		t.Fatalf("a refused restart ended the session: %v", s.Err())
	default:
	}

	if err := s.Leave(testContext(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.RestartICE(testContext(t, 5*time.Second)); !errors.Is(err, ErrRestartFailed) || !strings.Contains(err.Error(), "over") {
		t.Errorf("RestartICE after Leave = %v, want ErrRestartFailed", err)
	}
}
