package whip

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// join joins raw through a provider on a new fakePeers.
func join(t *testing.T, cfg Config, raw string) (*Session, *fakePeers, *testLog, error) {
	t.Helper()
	peers := &fakePeers{}
	p, log := newProvider(t, cfg, peers)
	s, err := p.JoinSession(testContext(t, 10*time.Second), mustParse(t, raw))
	if err == nil {
		leaveAtCleanup(t, s)
	}
	return s, peers, log, err
}

func TestJoinPublishAndLeave(t *testing.T) {
	noLeaks(t)
	srv := newFakeServer(t, nil)
	s, peers, _, err := join(t, Config{}, "whip+"+srv.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := srv.methods(), []string{"OPTIONS /whip/endpoint/ep", "POST /whip/endpoint/ep"}; !reflect.DeepEqual(got, want) {
		t.Errorf("requests = %q, want %q", got, want)
	}
	post, _ := srv.find(http.MethodPost)
	if post.header.Get("Content-Type") != "application/sdp" || post.header.Get("Accept") != "application/sdp" {
		t.Errorf("POST Content-Type %q, Accept %q; want application/sdp", post.header.Get("Content-Type"), post.header.Get("Accept"))
	}
	if h := post.header.Get("Authorization"); h != "" {
		t.Errorf("Authorization %q sent without a token", h)
	}
	if !hasLine(post.body, "a=ice-ufrag:offerufrag") || !hasLine(post.body, "a=sendonly") {
		t.Errorf("POST body is not the peer's offer:\n%s", post.body)
	}
	all := peers.all()
	if len(all) != 1 || all[0].opts.Role != meeting.RoleSend || all[0].opts.Label != "publisher" {
		t.Fatalf("peers = %+v, want one sending publisher", all)
	}
	pub := all[0]
	if a := pub.answers(); len(a) != 1 || !hasLine(a[0], "a=ice-ufrag:serverufrag") {
		t.Errorf("accepted = %q, want the server's answer", a)
	}

	pub.push(meeting.PeerState{Connected: true})
	select {
	case <-s.Done():
		t.Fatal("Done closed while connected")
	case <-time.After(50 * time.Millisecond):
	}

	if err := s.Leave(testContext(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := srv.methods(); got[len(got)-1] != "DELETE /whip/resource/1" {
		t.Errorf("requests = %q, want a DELETE of the resource last", got)
	}
	if !pub.isClosed() {
		t.Error("the peer is still open after Leave")
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done is open after Leave")
	}
	if s.Err() != nil {
		t.Errorf("Err after Leave = %v", s.Err())
	}
	if err := s.Leave(testContext(t, time.Second)); err != nil {
		t.Errorf("a second Leave = %v", err)
	}
	if n := len(srv.requests()); n != 3 {
		t.Errorf("%d requests after a second Leave, want 3", n)
	}
}

func TestOptionsICEServersReachNewPeer(t *testing.T) {
	noLeaks(t)
	srv := newFakeServer(t, func(s *fakeServer) {
		s.links = []string{
			`<stun:stun.example.net>; rel="ice-server", <https://example.net>; rel="help"`,
			`<turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="pass"; credential-type="password"`,
		}
		s.postLinks = []string{`<stun:late.example.net>; rel="ice-server"`}
	})
	_, peers, log, err := join(t, Config{}, "whip+"+srv.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	want := []meeting.ICEServer{
		{URLs: []string{"stun:stun.example.net"}},
		{URLs: []string{"turn:turn.example.net?transport=udp"}, Username: "user", Credential: "pass"},
	}
	if got := peers.all()[0].opts.ICEServers; !reflect.DeepEqual(got, want) {
		t.Errorf("NewPeer ICEServers = %+v, want %+v", got, want)
	}
	if strings.Contains(log.String(), "pass") {
		t.Errorf("the TURN credential is in the log:\n%s", log)
	}
	if !log.has("not used", "late.example.net") {
		t.Errorf("the POST's ICE servers are not logged as unused:\n%s", log)
	}
}

func TestOptionsRefusalTolerated(t *testing.T) {
	noLeaks(t)
	for _, code := range []int{http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented, http.StatusInternalServerError} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			srv := newFakeServer(t, func(s *fakeServer) {
				s.optionsStatus = code
				s.links = []string{`<stun:ignored.example.net>; rel="ice-server"`}
			})
			_, peers, _, err := join(t, Config{}, "whip+"+srv.endpoint())
			if err != nil {
				t.Fatal(err)
			}
			if got := peers.all()[0].opts.ICEServers; len(got) != 0 {
				t.Errorf("ICE servers from a %d: %+v", code, got)
			}
		})
	}
}

func TestLocationResolution(t *testing.T) {
	noLeaks(t)
	for _, c := range []struct{ location, want string }{
		{"/whip/resource/1", "/whip/resource/1"},
		{"resource/abc", "/whip/endpoint/resource/abc"},
		{"../sessions/9?x=1", "/whip/sessions/9?x=1"},
		{"ABSOLUTE/other/1", "/other/1"},
	} {
		t.Run(c.location, func(t *testing.T) {
			srv := newFakeServer(t, nil)
			srv.location = strings.Replace(c.location, "ABSOLUTE", srv.URL, 1)
			s, _, _, err := join(t, Config{}, "whip+"+srv.endpoint())
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Leave(testContext(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			if got := srv.methods(); got[len(got)-1] != "DELETE "+c.want {
				t.Errorf("requests = %q, want DELETE %s", got, c.want)
			}
		})
	}
}

func TestLocationRefused(t *testing.T) {
	noLeaks(t)
	srv := newFakeServer(t, func(s *fakeServer) { s.location = "http://media.example.com/r/1" })
	_, peers, _, err := join(t, Config{}, "whip+"+srv.endpoint())
	if !errors.Is(err, ErrInsecure) {
		t.Errorf("err = %v, want ErrInsecure", err)
	}
	if !peers.all()[0].isClosed() {
		t.Error("the peer of a failed join is open")
	}
}

func TestRedirects(t *testing.T) {
	noLeaks(t)
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			srv := newFakeServer(t, func(s *fakeServer) {
				s.location = "resource/1" // relative to the URL that answered
				s.hook = func(w http.ResponseWriter, r *http.Request) bool {
					if r.URL.Path != "/old/ep" {
						return false
					}
					w.Header().Set("Location", "/whip/endpoint/ep")
					w.WriteHeader(code)
					return true
				}
			})
			s, _, _, err := join(t, Config{}, "whip+"+srv.URL+"/old/ep#token=tok")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Leave(testContext(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			want := []string{"OPTIONS /old/ep", "OPTIONS /whip/endpoint/ep", "POST /old/ep", "POST /whip/endpoint/ep", "DELETE /whip/endpoint/resource/1"}
			if got := srv.methods(); !reflect.DeepEqual(got, want) {
				t.Errorf("requests = %q\nwant %q", got, want)
			}
			for _, r := range srv.requests() {
				if r.method == http.MethodPost && !hasLine(r.body, "a=ice-ufrag:offerufrag") {
					t.Errorf("%s %s lost the offer: %q", r.method, r.path, r.body)
				}
				if r.header.Get("Authorization") != "Bearer tok" {
					t.Errorf("%s %s: Authorization %q after a same-host redirect", r.method, r.path, r.header.Get("Authorization"))
				}
			}
		})
	}
}

func TestRedirectsRefused(t *testing.T) {
	noLeaks(t)
	for _, c := range []struct {
		name     string
		code     int
		location string
		want     error
	}{
		{"302 would lose the offer", http.StatusFound, "/whip/endpoint/ep", ErrRedirect},
		{"303", http.StatusSeeOther, "/whip/endpoint/ep", ErrRedirect},
		{"to plain http elsewhere", http.StatusTemporaryRedirect, "http://whip.example.com/ep", ErrInsecure},
		{"a loop", http.StatusTemporaryRedirect, "/old/ep", ErrRedirect},
		{"to plain http elsewhere, on OPTIONS", http.StatusTemporaryRedirect, "http://whip.example.com/ep", ErrInsecure},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newFakeServer(t, func(s *fakeServer) {
				s.hook = func(w http.ResponseWriter, r *http.Request) bool {
					options := strings.Contains(c.name, "OPTIONS")
					if r.URL.Path != "/old/ep" || (r.Method == http.MethodOptions) != options {
						return false
					}
					w.Header().Set("Location", c.location)
					w.WriteHeader(c.code)
					return true
				}
			})
			_, _, _, err := join(t, Config{}, "whip+"+srv.URL+"/old/ep")
			if !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// TestOptionsRedirectTolerated: a pre-flight that is redirected in a way
// the client does not follow is skipped like a missing one.
func TestOptionsRedirectTolerated(t *testing.T) {
	noLeaks(t)
	srv := newFakeServer(t, func(s *fakeServer) {
		s.hook = func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodOptions {
				return false
			}
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(http.StatusFound)
			return true
		}
	})
	if _, _, _, err := join(t, Config{}, "whip+"+srv.endpoint()); err != nil {
		t.Fatal(err)
	}
}

func TestErrorStatus(t *testing.T) {
	noLeaks(t)
	for _, c := range []struct {
		code  int
		body  string
		texts []string
		is    []error
	}{
		{http.StatusBadRequest, "Invalid SDP: no audio\n", []string{"400 Bad Request", "Invalid SDP: no audio", "POST offer"}, []error{ErrStatus}},
		{http.StatusForbidden, "Unauthorized", []string{"403 Forbidden: Unauthorized"}, []error{ErrStatus, ErrUnauthorized}},
		{http.StatusUnauthorized, "", []string{"401 Unauthorized"}, []error{ErrUnauthorized}},
		{http.StatusServiceUnavailable, "Janus unavailable\x00\x1b[31m", []string{"503 Service Unavailable: Janus unavailable [31m"}, []error{ErrStatus}},
		{http.StatusInternalServerError, strings.Repeat("x", 200<<10), []string{"500 Internal Server Error: xxx", "…"}, []error{ErrStatus}},
		{http.StatusOK, "v=0\r\nm=audio 9 RTP/AVP 0\r\n", []string{"200 OK"}, []error{ErrStatus}},
	} {
		t.Run(fmt.Sprint(c.code), func(t *testing.T) {
			srv := newFakeServer(t, func(s *fakeServer) {
				s.postStatus, s.postBody, s.contentType = c.code, c.body, "text/plain"
			})
			_, peers, _, err := join(t, Config{}, "whip+"+srv.endpoint())
			if err == nil {
				t.Fatal("joined")
			}
			for _, want := range c.texts {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %q, want it to mention %q", err, want)
				}
			}
			for _, want := range c.is {
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want errors.Is %v", err, want)
				}
			}
			var se *StatusError
			if !errors.As(err, &se) || se.Code != c.code {
				t.Errorf("err = %v, want a *StatusError with code %d", err, c.code)
			}
			if len(err.Error()) > 1024 {
				t.Errorf("error message is %d bytes long", len(err.Error()))
			}
			if !peers.all()[0].isClosed() {
				t.Error("the peer of a failed join is open")
			}
			if _, ok := srv.find(http.MethodDelete); ok {
				t.Error("DELETE of a session the server never created")
			}
		})
	}
}

func TestBadAnswers(t *testing.T) {
	noLeaks(t)
	for _, c := range []struct {
		name string
		set  func(*fakeServer)
		want error
	}{
		{"missing Location", func(s *fakeServer) { s.location = "-" }, ErrNoLocation},
		{"JSON", func(s *fakeServer) { s.contentType, s.postBody = "application/json", `{"sdp":"v=0"}` }, ErrNotSDP},
		{"no Content-Type", func(s *fakeServer) { s.contentType = "" }, nil},
		{"HTML labelled SDP", func(s *fakeServer) { s.postBody = "<html><body>oops</body></html>" }, ErrBadAnswer},
		{"SDP without media", func(s *fakeServer) { s.postBody = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" }, ErrBadAnswer},
		{"huge", func(s *fakeServer) {
			s.postBody = fakeSDP("u", "p", false) + strings.Repeat("a=x:"+strings.Repeat("y", 100)+"\r\n", 1000)
		}, ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newFakeServer(t, c.set)
			if c.want == nil {
				// http.ResponseWriter sniffs a type when none is set;
				// clear it for real.
				srv.hook = func(w http.ResponseWriter, r *http.Request) bool {
					if r.Method != http.MethodPost {
						return false
					}
					w.Header().Set("Location", "/whip/resource/1")
					w.Header()["Content-Type"] = nil
					w.WriteHeader(http.StatusCreated)
					_, _ = w.Write([]byte(fakeSDP("u", "p", false)))
					return true
				}
				c.want = ErrNotSDP
			}
			_, peers, _, err := join(t, Config{}, "whip+"+srv.endpoint())
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !peers.all()[0].isClosed() {
				t.Error("the peer of a failed join is open")
			}
			if len(peers.all()[0].answers()) != 0 {
				t.Error("a bad answer reached the peer")
			}
			// The server made a session: it is ended, where it can be.
			_, deleted := srv.find(http.MethodDelete)
			if wantDelete := c.want != ErrNoLocation; deleted != wantDelete {
				t.Errorf("DELETE sent: %v, want %v (requests %q)", deleted, wantDelete, srv.methods())
			}
		})
	}
}

func TestTokenSentAndRedacted(t *testing.T) {
	noLeaks(t)
	const secret = "s3cr3t-T0KEN"
	srv := newFakeServer(t, func(s *fakeServer) { s.token = secret })

	// From the fragment: every request carries it.
	s, _, log, err := join(t, Config{}, "whip+"+srv.endpoint()+"#token="+secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Leave(testContext(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, r := range srv.requests() {
		if got := r.header.Get("Authorization"); got != "Bearer "+secret {
			t.Errorf("%s %s: Authorization = %q", r.method, r.path, got)
		}
	}
	if strings.Contains(log.String(), secret) {
		t.Errorf("the token is in the log:\n%s", log)
	}

	// From the configuration, by host.
	host := strings.TrimPrefix(srv.URL, "http://")
	if _, _, _, err := join(t, Config{Tokens: map[string]string{host: secret}}, "whip+"+srv.endpoint()); err != nil {
		t.Errorf("token from Config.Tokens: %v", err)
	}

	// A wrong one: the server quotes it back; the error and log do not.
	_, _, log, err = join(t, Config{Tokens: map[string]string{host: secret}}, "whip+"+srv.endpoint()+"#token=wrong-"+secret)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "REDACTED") {
		t.Errorf("err = %q, want the token redacted", err)
	}
	if strings.Contains(log.String(), secret) {
		t.Errorf("the token is in the log:\n%s", log)
	}
}

func TestICERestart(t *testing.T) {
	noLeaks(t)
	srv := newFakeServer(t, func(s *fakeServer) { s.etag = "e1" })
	s, peers, log, err := join(t, Config{}, "whip+"+srv.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	pub := peers.all()[0]
	pub.push(meeting.PeerState{Connected: true})
	pub.push(meeting.PeerState{Failed: true, Reason: "ICE failed"})
	eventually(t, 5*time.Second, "the restart answer to reach the peer", func() bool { return len(pub.answers()) == 2 })

	patch, ok := srv.find(http.MethodPatch)
	if !ok {
		t.Fatalf("no PATCH: %q", srv.methods())
	}
	if patch.path != "/whip/resource/1" || patch.header.Get("Content-Type") != "application/trickle-ice-sdpfrag" || patch.header.Get("If-Match") != `"*"` {
		t.Errorf("PATCH %s Content-Type %q If-Match %q", patch.path, patch.header.Get("Content-Type"), patch.header.Get("If-Match"))
	}
	if !hasLine(patch.body, "a=ice-ufrag:restartufrag") || !hasLine(patch.body, "a=ice-pwd:restartpwd") || !hasLine(patch.body, "a=mid:0") {
		t.Errorf("PATCH body is not the restart offer's fragment:\n%s", patch.body)
	}
	answer := pub.answers()[1]
	if !hasLine(answer, "a=ice-ufrag:newufrag") || !hasLine(answer, "a=ice-pwd:newpwd") || strings.Contains(answer, "serverufrag") {
		t.Errorf("the restart answer lacks the server's new credentials:\n%s", answer)
	}

	// A failure after the restart is the end.
	pub.push(meeting.PeerState{Failed: true, Reason: "ICE failed again"})
	waitDone(t, s, 5*time.Second)
	if err := s.Err(); !errors.Is(err, ErrMediaFailed) || !strings.Contains(err.Error(), "ICE failed again") {
		t.Errorf("Err = %v, want ErrMediaFailed with the reason", err)
	}
	if pub.restartCount() != 1 {
		t.Errorf("%d restarts, want 1", pub.restartCount())
	}
	if got := srv.methods(); got[len(got)-1] != "DELETE /whip/resource/1" {
		t.Errorf("requests = %q, want the session DELETEd when it ended", got)
	}
	if !pub.isClosed() {
		t.Error("the peer is open after the session ended")
	}
	if err := s.Leave(testContext(t, time.Second)); err != nil {
		t.Errorf("Leave after the end = %v", err)
	}
	if !log.has("restarting ICE") {
		t.Errorf("the restart is not logged:\n%s", log)
	}
}

func TestICERestartRefused(t *testing.T) {
	noLeaks(t)
	for _, c := range []struct {
		name string
		set  func(*fakeServer)
		peer error
		want string
	}{
		{"412", func(s *fakeServer) { s.patchStatus = http.StatusPreconditionFailed }, nil, "412 Precondition Failed"},
		{"405", func(s *fakeServer) { s.patchStatus = http.StatusMethodNotAllowed }, nil, "405"},
		{"no credentials", func(s *fakeServer) { s.patchFrag = "a=end-of-candidates\r\n" }, nil, "no ICE credentials"},
		{"media layer", nil, errors.New("no restart today"), "no restart today"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newFakeServer(t, c.set)
			s, peers, _, err := join(t, Config{}, "whip+"+srv.endpoint())
			if err != nil {
				t.Fatal(err)
			}
			pub := peers.all()[0]
			pub.mu.Lock()
			pub.restartErr = c.peer
			pub.mu.Unlock()
			pub.push(meeting.PeerState{Failed: true, Reason: "ICE failed"})
			waitDone(t, s, 5*time.Second)
			if err := s.Err(); !errors.Is(err, ErrRestartFailed) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Err = %v, want ErrRestartFailed mentioning %q", err, c.want)
			}
			if _, ok := srv.find(http.MethodDelete); !ok {
				t.Errorf("requests = %q, want a DELETE", srv.methods())
			}
		})
	}
}

func TestPeerGoneEndsSession(t *testing.T) {
	noLeaks(t)
	srv := newFakeServer(t, nil)
	s, peers, _, err := join(t, Config{}, "whip+"+srv.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	_ = peers.all()[0].Close()
	waitDone(t, s, 5*time.Second)
	if !errors.Is(s.Err(), ErrMediaFailed) {
		t.Errorf("Err = %v, want ErrMediaFailed", s.Err())
	}
}

func TestLeaveBoundedByContext(t *testing.T) {
	noLeaks(t)
	srv := newFakeServer(t, func(s *fakeServer) { s.deleteBlock = true })
	s, peers, _, err := join(t, Config{}, "whip+"+srv.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Leave(ctx)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Leave took %s with a 200ms context", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Leave = %v, want the deadline", err)
	}
	if !peers.all()[0].isClosed() {
		t.Error("the peer is open after a Leave whose DELETE timed out")
	}

	// A context that has already ended still closes everything here.
	srv = newFakeServer(t, nil)
	s, peers, _, err = join(t, Config{}, "whip+"+srv.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := s.Leave(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Leave = %v, want context.Canceled", err)
	}
	if !peers.all()[0].isClosed() {
		t.Error("the peer is open after a Leave with an ended context")
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done is open after Leave")
	}
}

func TestWHEPSubscribe(t *testing.T) {
	noLeaks(t)
	srv := newFakeServer(t, func(s *fakeServer) { s.location = "/whep/resource/7" })
	s, peers, _, err := join(t, Config{}, "whep+"+srv.URL+"/whep/ep")
	if err != nil {
		t.Fatal(err)
	}
	all := peers.all()
	if len(all) != 1 || all[0].opts.Role != meeting.RoleReceive || all[0].opts.Label != "subscriber" {
		t.Fatalf("peers = %+v, want one receiving subscriber", all)
	}
	post, _ := srv.find(http.MethodPost)
	if post.path != "/whep/ep" || !hasLine(post.body, "a=recvonly") {
		t.Errorf("POST %s with\n%s\nwant the recvonly offer to /whep/ep", post.path, post.body)
	}
	if err := s.Leave(testContext(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := srv.methods(); got[len(got)-1] != "DELETE /whep/resource/7" {
		t.Errorf("requests = %q", got)
	}
}

func TestWHIPWithPairedWHEP(t *testing.T) {
	noLeaks(t)
	whep := newFakeServer(t, func(s *fakeServer) { s.token, s.location = "whep-token", "/whep/resource/2" })
	whip := newFakeServer(t, func(s *fakeServer) { s.token = "whip-token" })
	whepHost := strings.TrimPrefix(whep.URL, "http://")
	raw := "whip+" + whip.endpoint() + "?whep=" + strings.NewReplacer(":", "%3A", "/", "%2F").Replace(whep.URL+"/whep/ep") + "#token=whip-token"
	s, peers, _, err := join(t, Config{Tokens: map[string]string{whepHost: "whep-token"}}, raw)
	if err != nil {
		t.Fatal(err)
	}
	if pub, sub := peers.peer("publisher"), peers.peer("subscriber"); pub == nil || sub == nil || sub.opts.Role != meeting.RoleReceive {
		t.Fatalf("peers = %+v, want a publisher and a subscriber", peers.all())
	}
	if post, ok := whep.find(http.MethodPost); !ok || post.path != "/whep/ep" {
		t.Errorf("WHEP server requests = %q", whep.methods())
	}

	// Either leg failing for good ends the whole session, and both are
	// ended on the servers.
	sub := peers.peer("subscriber")
	sub.push(meeting.PeerState{Failed: true})
	eventually(t, 5*time.Second, "the subscriber's restart", func() bool { return sub.restartCount() == 1 })
	sub.push(meeting.PeerState{Failed: true, Reason: "gone"})
	waitDone(t, s, 5*time.Second)
	if err := s.Err(); !errors.Is(err, ErrMediaFailed) || !strings.Contains(err.Error(), "subscribe") {
		t.Errorf("Err = %v, want the subscriber's failure", err)
	}
	for _, srv := range []*fakeServer{whip, whep} {
		got := srv.methods()
		if !slices.ContainsFunc(got, func(m string) bool { return strings.HasPrefix(m, "DELETE ") }) {
			t.Errorf("requests = %q, want a DELETE", got)
		}
	}
	if !peers.peer("publisher").isClosed() || !sub.isClosed() {
		t.Error("a peer is open after the session ended")
	}
}

func TestPairedWHEPFailureUndoesPublish(t *testing.T) {
	noLeaks(t)
	whep := newFakeServer(t, func(s *fakeServer) { s.postStatus, s.postBody = http.StatusNotFound, "no such stream" })
	whip := newFakeServer(t, nil)
	raw := "whip+" + whip.endpoint() + "?whep=" + strings.NewReplacer(":", "%3A", "/", "%2F").Replace(whep.URL+"/whep/ep")
	_, peers, _, err := join(t, Config{}, raw)
	if err == nil || !strings.Contains(err.Error(), "no such stream") || !strings.Contains(err.Error(), "subscribe") {
		t.Fatalf("err = %v, want the WHEP refusal", err)
	}
	if got := whip.methods(); got[len(got)-1] != "DELETE /whip/resource/1" {
		t.Errorf("WHIP requests = %q, want the published session DELETEd", got)
	}
	for _, p := range peers.all() {
		if !p.isClosed() {
			t.Errorf("peer %s is open", p.opts.Label)
		}
	}
}

func TestJoinFailsEarly(t *testing.T) {
	noLeaks(t)
	// A join that cannot start sends nothing.
	srv := newFakeServer(t, nil)
	peers := &fakePeers{newErr: errors.New("no camera")}
	p, _ := newProvider(t, Config{}, peers)
	if _, err := p.Join(testContext(t, 5*time.Second), mustParse(t, "whip+"+srv.endpoint())); err == nil || !strings.Contains(err.Error(), "no camera") {
		t.Errorf("err = %v, want the media layer's", err)
	}
	if got := srv.methods(); !reflect.DeepEqual(got, []string{"OPTIONS /whip/endpoint/ep"}) {
		t.Errorf("requests = %q", got)
	}
	if _, err := p.Join(testContext(t, 5*time.Second), mustParse(t, "whip+http://whip.example.com/ep")); !errors.Is(err, ErrInsecure) {
		t.Errorf("err = %v, want ErrInsecure", err)
	}

	// A server that is not there.
	srv.Close()
	_, _, _, err := join(t, Config{}, "whip+"+srv.endpoint())
	if err == nil || !strings.Contains(err.Error(), "OPTIONS") {
		t.Errorf("err = %v, want the failed OPTIONS", err)
	}
}
