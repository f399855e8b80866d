package whip

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// pionServer is an in-process WHIP and WHEP server with pion on its side
// of the media, over loopback: the protocol code meets a real peer, ICE
// restart included, without Janus.
type pionServer struct {
	*httptest.Server
	api *webrtc.API

	rtpIn atomic.Int64 // RTP the WHIP side received

	mu       sync.Mutex
	sessions map[string]*serverSession
	next     int
	wg       sync.WaitGroup
}

type serverSession struct {
	pc     *webrtc.PeerConnection
	offer  string
	cancel context.CancelFunc
}

func newPionServer(t *testing.T) *pionServer {
	s := &pionServer{api: newPionAPI(net.IPv4(127, 0, 0, 1)), sessions: map[string]*serverSession{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /whip/ep", func(w http.ResponseWriter, r *http.Request) { s.post(w, r, false) })
	mux.HandleFunc("POST /whep/ep", func(w http.ResponseWriter, r *http.Request) { s.post(w, r, true) })
	mux.HandleFunc("PATCH /session/{id}", s.patch)
	mux.HandleFunc("DELETE /session/{id}", s.delete)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		s.Close()
		s.mu.Lock()
		for id, ss := range s.sessions {
			ss.cancel()
			_ = ss.pc.Close()
			delete(s.sessions, id)
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *pionServer) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *pionServer) post(w http.ResponseWriter, r *http.Request, send bool) {
	offer, _ := io.ReadAll(r.Body)
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	ss := &serverSession{pc: pc, offer: string(offer), cancel: cancel}
	fail := func(err error) {
		cancel()
		_ = pc.Close()
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				s.rtpIn.Add(1)
			}
		}()
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		fail(err)
		return
	}
	if send {
		video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "server")
		if err == nil {
			_, err = pc.AddTrack(video)
		}
		if err != nil {
			fail(err)
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			tick := time.NewTicker(33 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					_ = video.WriteSample(media.Sample{Data: []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a}, Duration: 33 * time.Millisecond})
				}
			}
		}()
	}
	answer, err := answer(ctx, pc)
	if err != nil {
		fail(err)
		return
	}
	s.mu.Lock()
	s.next++
	id := fmt.Sprint(s.next)
	s.sessions[id] = ss
	s.mu.Unlock()
	w.Header().Set("Location", "/session/"+id)
	w.Header().Set("ETag", `"v1"`)
	w.Header().Set("Content-Type", typeSDP)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

func answer(ctx context.Context, pc *webrtc.PeerConnection) (string, error) {
	desc, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		return "", err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return pc.LocalDescription().SDP, nil
}

// patch restarts ICE as a WHIP server does: the client's new credentials
// and candidates go into its stored offer, which is applied anew; the new
// answer's credentials and candidates go back.
func (s *pionServer) patch(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ss := s.sessions[r.PathValue("id")]
	s.mu.Unlock()
	if ss == nil {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("If-Match") != `"*"` {
		http.Error(w, "Precondition Failed", http.StatusPreconditionFailed)
		return
	}
	frag, _ := io.ReadAll(r.Body)
	// The stored offer takes the fragment's credentials and candidates
	// (this package's own helper, which does just that to answers).
	offer, err := applyRestart(ss.offer, string(frag))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ss.offer = offer
	if err := ss.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: ss.offer}); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ans, err := answer(r.Context(), ss.pc)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// pion regathers on a restart, on new ports: the reply carries the
	// new candidates along with the credentials.
	reply, err := restartFragment(ans)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("ETag", `"v2"`)
	w.Header().Set("Content-Type", typeSDPFrag)
	_, _ = io.WriteString(w, reply)
}

func (s *pionServer) delete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ss := s.sessions[r.PathValue("id")]
	delete(s.sessions, r.PathValue("id"))
	s.mu.Unlock()
	if ss == nil {
		http.NotFound(w, r)
		return
	}
	ss.cancel()
	_ = ss.pc.Close()
	w.WriteHeader(http.StatusOK)
}

// TestPionLoopback publishes and subscribes between real pion peers over
// loopback, restarts ICE on the publisher, and leaves.
func TestPionLoopback(t *testing.T) {
	noLeaks(t)
	srv := newPionServer(t)
	peers := newPionPeers(net.IPv4(127, 0, 0, 1))
	p, log := newProvider(t, Config{}, peers)
	raw := "whip+" + srv.URL + "/whip/ep?whep=" + url.QueryEscape(srv.URL+"/whep/ep")
	s, err := p.JoinSession(testContext(t, 20*time.Second), mustParse(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	leaveAtCleanup(t, s)

	pub, sub := peers.peer("publisher"), peers.peer("subscriber")
	eventually(t, 15*time.Second, "both peers to connect and media to flow both ways", func() bool {
		return pub.connected.Load() && sub.connected.Load() && srv.rtpIn.Load() > 20 && sub.rtpIn.Load() > 20
	})
	eventually(t, 15*time.Second, "a receiver report acknowledging the publisher's RTP", func() bool {
		n, seq := pub.reports()
		return n > 0 && seq > 0
	})

	// The publisher "fails": the session restarts ICE through PATCH, and
	// both ends take the new credentials.
	oldLocal, oldRemote := pub.iceCreds()
	pub.push(meeting.PeerState{Failed: true, Reason: "simulated failure"})
	eventually(t, 15*time.Second, "the ICE restart to complete", func() bool {
		local, remote := pub.iceCreds()
		return log.has("ICE restarted") && local != oldLocal && remote != oldRemote && pub.connected.Load()
	})
	before := srv.rtpIn.Load()
	eventually(t, 10*time.Second, "media after the restart", func() bool { return srv.rtpIn.Load() > before+20 })
	select {
	case <-s.Done():
		t.Fatalf("the session ended: %v", s.Err())
	default:
	}

	if err := s.Leave(testContext(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := srv.open(); n != 0 {
		t.Errorf("%d sessions open on the server after Leave", n)
	}
}
