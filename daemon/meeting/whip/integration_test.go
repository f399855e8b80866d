package whip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/test/janustest"
	"github.com/atriumroom/atrium/test/whiptest"
)

// These tests run against the real simple-whip-server from test/whiptest
// in front of the real Janus from test/janustest, with pion peers standing
// in for the media layer. Janus gathers ICE on one host address
// (janustest.Server.ICEAddr), so the peers do too.

type realStack struct {
	janus *janustest.Server
	whip  *whiptest.Server
}

func startReal(t *testing.T) realStack {
	j := janustest.Start(t)
	return realStack{janus: j, whip: whiptest.Start(t, j.WSURL)}
}

func (r realStack) join(t *testing.T, raw string) (*Session, *pionPeers, *testLog, error) {
	t.Helper()
	peers := newPionPeers(r.janus.ICEAddr)
	p, log := newProvider(t, Config{}, peers)
	s, err := p.JoinSession(testContext(t, 20*time.Second), mustParse(t, raw))
	if err == nil {
		leaveAtCleanup(t, s)
	}
	return s, peers, log, err
}

// waitAcked waits until Janus's receiver reports acknowledge more of the
// publisher's RTP than before: the media is not just sent, it arrives.
func waitAcked(t *testing.T, pub *pionPeer, what string) {
	t.Helper()
	_, before := pub.reports()
	eventually(t, 15*time.Second, what, func() bool {
		n, seq := pub.reports()
		return pub.connected.Load() && n > 0 && seq > before+10 && pub.framesOut.Load() > 10
	})
}

func TestRealPublish(t *testing.T) {
	noLeaks(t)
	r := startReal(t)
	ep := r.whip.EndpointURL("atrium-room", janustest.Room)
	ctx := testContext(t, 90*time.Second)

	s, peers, log, err := r.join(t, "whip+"+ep)
	if err != nil {
		t.Fatal(err)
	}
	pub := peers.peer("publisher")
	waitAcked(t, pub, "Janus to acknowledge the publisher's RTP")
	eventually(t, 10*time.Second, "the publisher in the room", func() bool {
		p, ok := participant(t, ctx, r.janus, "atrium-room")
		return ok && p.Publisher
	})

	// The server knows the session; Leave ends it there and in Janus.
	eps, err := r.whip.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 || !eps[0].Enabled || eps[0].Resource != "/whip/resource/atrium-room" {
		t.Errorf("endpoints = %+v, want atrium-room live", eps)
	}
	if err := s.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	eventually(t, 10*time.Second, "the publisher to leave the room", func() bool {
		_, ok := participant(t, ctx, r.janus, "atrium-room")
		return !ok
	})
	if !strings.Contains(r.whip.Log(), "[atrium-room] Terminating WHIP session") {
		t.Errorf("simple-whip-server did not end the session:\n%s", r.whip.Log())
	}
	if strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("errors in the log:\n%s", log)
	}

	// The endpoint is free again: a second join publishes anew.
	s2, peers2, _, err := r.join(t, "whip+"+ep)
	if err != nil {
		t.Fatalf("rejoin: %v", err)
	}
	waitAcked(t, peers2.peer("publisher"), "RTP acknowledged after a rejoin")
	if err := s2.Leave(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRealTokenAndICEServers(t *testing.T) {
	noLeaks(t)
	r := startReal(t)
	ctx := testContext(t, 60*time.Second)
	const token = "whip-T0KEN-for-tests"
	ep, err := r.whip.CreateEndpoint(ctx, whiptest.Endpoint{
		ID: "secured", Room: janustest.Room, Token: token,
		ICEServers: []whiptest.ICEServer{
			{URI: "stun:stun.example.net:3478"},
			{URI: "turn:turn.example.net:3478?transport=udp", Username: "user", Credential: "pass"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	_, _, _, err = r.join(t, "whip+"+ep)
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "403 Forbidden: Unauthorized") {
		t.Errorf("no token: err = %v, want ErrUnauthorized quoting the server", err)
	}
	_, _, _, err = r.join(t, "whip+"+ep+"#token=wrong")
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong token: err = %v, want ErrUnauthorized", err)
	}

	s, peers, log, err := r.join(t, "whip+"+ep+"#token="+token)
	if err != nil {
		t.Fatal(err)
	}
	// The real server's Link headers, from OPTIONS, reached NewPeer. (The
	// test peers do not use them: there is no such server to reach.)
	want := []meeting.ICEServer{
		{URLs: []string{"stun:stun.example.net:3478"}},
		{URLs: []string{"turn:turn.example.net:3478?transport=udp"}, Username: "user", Credential: "pass"},
	}
	pub := peers.peer("publisher")
	if !reflect.DeepEqual(pub.opts.ICEServers, want) {
		t.Errorf("NewPeer ICEServers = %+v, want %+v", pub.opts.ICEServers, want)
	}
	waitAcked(t, pub, "RTP acknowledged")
	if err := s.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), token) {
		t.Errorf("the token is in the log:\n%s", log)
	}
}

// TestRealICERestart makes the session believe its connection failed: it
// restarts ICE through simple-whip-server's PATCH (with strict ETag checks
// on), which restarts Janus's side, and media flows on with new
// credentials.
func TestRealICERestart(t *testing.T) {
	noLeaks(t)
	r := startReal(t)
	ep := r.whip.EndpointURL("restarter", janustest.Room)
	s, peers, log, err := r.join(t, "whip+"+ep)
	if err != nil {
		t.Fatal(err)
	}
	pub := peers.peer("publisher")
	waitAcked(t, pub, "RTP acknowledged before the restart")

	oldLocal, oldRemote := pub.iceCreds()
	pub.push(meeting.PeerState{Failed: true, Reason: "simulated failure"})
	eventually(t, 15*time.Second, "the restart to complete", func() bool {
		local, remote := pub.iceCreds()
		return log.has("ICE restarted") && local != oldLocal && remote != oldRemote
	})
	if !strings.Contains(r.whip.Log(), "[restarter] Performing ICE restart") {
		t.Errorf("simple-whip-server did not restart:\n%s", r.whip.Log())
	}
	waitAcked(t, pub, "RTP acknowledged after the restart")
	select {
	case <-s.Done():
		t.Fatalf("the session ended: %v", s.Err())
	default:
	}
	if err := s.Leave(testContext(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// TestRealUnknownEndpoint: a join to an endpoint the server does not have
// says what the server said.
func TestRealUnknownEndpoint(t *testing.T) {
	noLeaks(t)
	r := startReal(t)
	_, _, _, err := r.join(t, "whip+"+r.whip.URL+"/endpoint/nosuch")
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound || !strings.Contains(err.Error(), "Invalid endpoint ID") {
		t.Errorf("err = %v, want 404 with the server's text", err)
	}
}

// participantInfo is one entry of the VideoRoom's listparticipants.
type participantInfo struct {
	ID        uint64 `json:"id"`
	Display   string `json:"display"`
	Publisher bool   `json:"publisher"`
}

// participant looks display up in janustest.Room through the Janus HTTP
// API, as an outside observer of the room would.
func participant(t *testing.T, ctx context.Context, j *janustest.Server, display string) (participantInfo, bool) {
	t.Helper()
	var created struct {
		Data struct{ ID uint64 } `json:"data"`
	}
	janusPost(t, ctx, j.HTTPURL, map[string]any{"janus": "create"}, &created)
	session := fmt.Sprintf("%s/%d", j.HTTPURL, created.Data.ID)
	defer janusPost(t, ctx, session, map[string]any{"janus": "destroy"}, nil)
	var attached struct {
		Data struct{ ID uint64 } `json:"data"`
	}
	janusPost(t, ctx, session, map[string]any{"janus": "attach", "plugin": "janus.plugin.videoroom"}, &attached)
	var reply struct {
		Plugindata struct {
			Data struct {
				Participants []participantInfo `json:"participants"`
				Error        string            `json:"error"`
			} `json:"data"`
		} `json:"plugindata"`
	}
	janusPost(t, ctx, fmt.Sprintf("%s/%d", session, attached.Data.ID),
		map[string]any{"janus": "message", "body": map[string]any{"request": "listparticipants", "room": janustest.Room}}, &reply)
	if reply.Plugindata.Data.Error != "" {
		t.Fatalf("listparticipants: %s", reply.Plugindata.Data.Error)
	}
	for _, p := range reply.Plugindata.Data.Participants {
		if p.Display == display {
			return p, true
		}
	}
	return participantInfo{}, false
}

func janusPost(t *testing.T, ctx context.Context, url string, msg map[string]any, out any) {
	t.Helper()
	msg["transaction"] = fmt.Sprint(time.Now().UnixNano())
	body, _ := json.Marshal(msg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"success"`)) {
		t.Fatalf("janus %s: %s", msg["janus"], data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("janus %s: %v: %s", msg["janus"], err, data)
		}
	}
}

// TestRealTrickle: the publisher's candidates reach simple-whip-server
// (allowTrickle) only by trickle PATCH, and Janus gets the media.
func TestRealTrickle(t *testing.T) {
	noLeaks(t)
	r := startReal(t)
	ep := r.whip.EndpointURL("atrium-room", janustest.Room)
	ctx := testContext(t, 60*time.Second)

	peers := newPionPeers(r.janus.ICEAddr)
	peers.trickleDelay = 2 * TrickleOfferWait
	p, log := newProvider(t, Config{}, peers)
	s, err := p.JoinSession(testContext(t, 20*time.Second), mustParse(t, "whip+"+ep))
	if err != nil {
		t.Fatal(err)
	}
	leaveAtCleanup(t, s)
	waitAcked(t, peers.peer("publisher"), "Janus to acknowledge the trickling publisher's RTP")
	if s.Trickled() == 0 || !log.has("trickle PATCH accepted", "end=true") {
		t.Errorf("no candidates trickled (%d), or no end-of-candidates accepted", s.Trickled())
	}
	if err := s.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
}
