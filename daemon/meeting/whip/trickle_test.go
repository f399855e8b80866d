package whip

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
)

const (
	candA = "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"
	candB = "candidate:2 1 udp 2130706431 127.0.0.1 5002 typ host"
	candC = "candidate:3 1 udp 1694498815 192.0.2.7 5004 typ srflx raddr 0.0.0.0 rport 0"
	candD = "candidate:4 1 udp 16777215 198.51.100.9 3478 typ relay raddr 0.0.0.0 rport 0"
)

// joinTrickling joins srv's endpoint with a trickling peer that has sent
// candA before the offer.
func joinTrickling(t *testing.T, srv *fakeServer) (*Session, *fakePeer, *testLog) {
	t.Helper()
	peers := &fakePeers{trickle: true}
	p, log := newProvider(t, Config{}, peers)
	// The peer exists only within Join.
	done := make(chan struct{})
	go func() {
		defer close(done)
		eventually(t, 5*time.Second, "the peer", func() bool { return peers.peer("publisher") != nil })
		peers.peer("publisher").candidate("0", candA)
	}()
	s, err := p.JoinSession(testContext(t, 10*time.Second), mustParse(t, "whip+"+srv.endpoint()))
	<-done
	if err != nil {
		t.Fatal(err)
	}
	leaveAtCleanup(t, s)
	return s, peers.peer("publisher"), log
}

func patches(srv *fakeServer) []request {
	var out []request
	for _, r := range srv.requests() {
		if r.method == http.MethodPatch {
			out = append(out, r)
		}
	}
	return out
}

// TestTrickle: the offer carries the first candidate; the rest are
// PATCHed in batches as RFC 8840 fragments, with the POST's ETag, and the
// last with end-of-candidates.
func TestTrickle(t *testing.T) {
	noLeaks(t)
	srv := newFakeServer(t, nil)
	s, peer, _ := joinTrickling(t, srv)

	post, _ := srv.find(http.MethodPost)
	if !hasLine(post.body, "a="+candA) || hasLine(post.body, "a=end-of-candidates") || !hasLine(post.body, "a=ice-ufrag:offerufrag") {
		t.Fatalf("POST offer lacks the first candidate, or ends gathering:\n%s", post.body)
	}

	peer.candidate("0", candB)
	peer.candidate("1", candC)
	eventually(t, 5*time.Second, "a PATCH", func() bool { return len(patches(srv)) == 1 })
	time.Sleep(3 * TrickleBatch)
	peer.candidate("0", candD)
	peer.endCandidates()
	eventually(t, 5*time.Second, "a second PATCH", func() bool { return len(patches(srv)) == 2 })

	ps := patches(srv)
	want := [][]string{
		{"a=ice-ufrag:offerufrag", "a=ice-pwd:offerpwd", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=" + candB,
			"m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:1", "a=" + candC},
		{"a=ice-ufrag:offerufrag", "a=ice-pwd:offerpwd", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=" + candD, "a=end-of-candidates"},
	}
	for i, r := range ps {
		if got := strings.Join(sdpLines(r.body), "\n"); got != strings.Join(want[i], "\n") {
			t.Errorf("PATCH %d body:\n%s\nwant:\n%s", i, got, strings.Join(want[i], "\n"))
		}
		if ct := r.header.Get("Content-Type"); ct != typeSDPFrag {
			t.Errorf("PATCH %d Content-Type = %q", i, ct)
		}
		if im := r.header.Get("If-Match"); im != `"abc"` {
			t.Errorf("PATCH %d If-Match = %q, want the POST's ETag", i, im)
		}
		if r.path != "/whip/resource/1" {
			t.Errorf("PATCH %d to %s", i, r.path)
		}
	}
	if n := s.Trickled(); n != 3 {
		t.Errorf("Trickled = %d, want 3", n)
	}
	time.Sleep(3 * TrickleBatch)
	if n := len(patches(srv)); n != 2 {
		t.Errorf("%d PATCHes after end-of-candidates, want 2", n)
	}
}

// TestTrickleWithoutETag: If-Match is "*" when the POST had no ETag.
func TestTrickleWithoutETag(t *testing.T) {
	noLeaks(t)
	srv := newFakeServer(t, func(s *fakeServer) { s.noETag = true })
	_, peer, _ := joinTrickling(t, srv)
	peer.endCandidates()
	eventually(t, 5*time.Second, "a PATCH", func() bool { return len(patches(srv)) == 1 })
	r := patches(srv)[0]
	if im := r.header.Get("If-Match"); im != `"*"` {
		t.Errorf("If-Match = %q, want \"*\"", im)
	}
	if !hasLine(r.body, "a=end-of-candidates") || strings.Contains(r.body, "a=candidate") {
		t.Errorf("PATCH body:\n%s\nwant end-of-candidates alone", r.body)
	}
}

// TestTrickleNotSupported: a 405 to the first PATCH stops trickling; the
// session goes on with the offer's candidates, and the rest are read
// and dropped.
func TestTrickleNotSupported(t *testing.T) {
	for _, code := range []int{http.StatusMethodNotAllowed, http.StatusNotImplemented} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			noLeaks(t)
			srv := newFakeServer(t, func(s *fakeServer) { s.patchStatus = code })
			s, peer, log := joinTrickling(t, srv)
			peer.candidate("0", candB)
			eventually(t, 5*time.Second, "a PATCH", func() bool { return len(patches(srv)) == 1 })
			eventually(t, 5*time.Second, "the log", func() bool { return log.has("the server does not trickle") })
			peer.candidate("0", candC)
			peer.candidate("0", candD)
			eventually(t, 5*time.Second, "the candidates to be drained", func() bool { return peer.pending() == 0 })
			peer.endCandidates()
			time.Sleep(3 * TrickleBatch)
			if n := len(patches(srv)); n != 1 {
				t.Errorf("%d PATCHes, want 1", n)
			}
			if s.Trickled() != 0 {
				t.Errorf("Trickled = %d", s.Trickled())
			}
			select {
			case <-s.Done():
				t.Fatalf("the session ended: %v", s.Err())
			default:
			}
			peer.push(meeting.PeerState{Connected: true})
			eventually(t, 5*time.Second, "connected", func() bool { return log.has("media", "connected=true") })
			if err := s.Leave(testContext(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, ok := srv.find(http.MethodDelete); !ok {
				t.Error("no DELETE")
			}
		})
	}
}

// TestTrickleGatheredBeforeOffer: when gathering ends within the offer's
// wait, the offer is complete and nothing is PATCHed.
func TestTrickleGatheredBeforeOffer(t *testing.T) {
	noLeaks(t)
	peers := &fakePeers{trickle: true}
	srv := newFakeServer(t, nil)
	p, _ := newProvider(t, Config{}, peers)
	go func() {
		for peers.peer("publisher") == nil {
			time.Sleep(time.Millisecond)
		}
		peers.peer("publisher").candidate("0", candA)
		peers.peer("publisher").endCandidates()
	}()
	s, err := p.JoinSession(testContext(t, 10*time.Second), mustParse(t, "whip+"+srv.endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	leaveAtCleanup(t, s)
	post, _ := srv.find(http.MethodPost)
	if !hasLine(post.body, "a="+candA) || !hasLine(post.body, "a=end-of-candidates") {
		t.Fatalf("POST offer:\n%s\nwant candA and end-of-candidates", post.body)
	}
	time.Sleep(3 * TrickleBatch)
	if n := len(patches(srv)); n != 0 {
		t.Errorf("%d PATCHes, want none", n)
	}
}

// TestTrickleNoCandidates: gathering that ends empty before the offer
// fails the join without a POST.
func TestTrickleNoCandidates(t *testing.T) {
	noLeaks(t)
	peers := &fakePeers{trickle: true}
	srv := newFakeServer(t, nil)
	p, _ := newProvider(t, Config{}, peers)
	go func() {
		for peers.peer("publisher") == nil {
			time.Sleep(time.Millisecond)
		}
		peers.peer("publisher").endCandidates()
	}()
	_, err := p.JoinSession(testContext(t, 10*time.Second), mustParse(t, "whip+"+srv.endpoint()))
	if !errors.Is(err, ErrNoCandidates) {
		t.Fatalf("join: %v, want ErrNoCandidates", err)
	}
	if _, ok := srv.find(http.MethodPost); ok {
		t.Error("POSTed an offer without candidates")
	}
}
