package whip

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/test/netns"
	"github.com/atriumroom/atrium/test/syncbuf"
	"github.com/atriumroom/atrium/test/whiptest"
)

// TestMain runs the tests in a network namespace of their own (Janus, in
// the integration tests, needs a non-loopback address and must not use
// this machine's). simple-whip-server is fetched first, outside, where
// the network is; whiptest.Start reports a failure to fetch it.
func TestMain(m *testing.M) {
	_ = whiptest.Provision()
	netns.Main(m)
}

// noLeaks checks, once everything else the test set up has been cleaned
// up, that no goroutine is left: it must be the test's first line.
// (netns.Main owns m.Run, so goleak.VerifyTestMain cannot wrap it.)
func noLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// testLog is everything a provider logged, at every level, printed when
// the test fails.
type testLog struct{ buf syncbuf.Buffer }

func newLogger(t *testing.T) (*slog.Logger, *testLog) {
	l := &testLog{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- provider log ---\n%s", l.String())
		}
	})
	return slog.New(slog.NewTextHandler(&l.buf, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

func (l *testLog) String() string { return l.buf.String() }

// has reports whether some line contains every one of parts.
func (l *testLog) has(parts ...string) bool {
	for line := range strings.SplitSeq(l.String(), "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testContext(t *testing.T, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := meeting.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// newProvider returns a provider on factory, logging into the returned
// log.
func newProvider(t *testing.T, cfg Config, factory meeting.PeerFactory) (*Provider, *testLog) {
	t.Helper()
	logger, log := newLogger(t)
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	p, err := New(cfg, func(context.Context) (meeting.PeerFactory, error) { return factory, nil }, logger)
	if err != nil {
		t.Fatal(err)
	}
	return p, log
}

// leaveAtCleanup leaves s at the end of the test if the test did not.
func leaveAtCleanup(t *testing.T, s meeting.Session) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Leave(ctx)
	})
}

// waitDone waits for s to end by itself.
func waitDone(t *testing.T, s meeting.Session, timeout time.Duration) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(timeout):
		t.Fatalf("the session did not end within %s", timeout)
	}
}

// fakePeers is a scripted meeting.PeerFactory for the protocol tests: its
// peers make canned offers, record what they are given, and report the
// states a test pushes.
type fakePeers struct {
	mu     sync.Mutex
	peers  []*fakePeer
	newErr error
	// trickle makes the peers meeting.Tricklers, whose candidates the
	// test sends with candidate and endCandidates.
	trickle bool
}

func (f *fakePeers) NewPeer(_ context.Context, opts meeting.PeerOptions) (meeting.Peer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.newErr != nil {
		return nil, f.newErr
	}
	p := &fakePeer{opts: opts, state: make(chan meeting.PeerState, 8)}
	f.peers = append(f.peers, p)
	if f.trickle {
		p.cands = make(chan meeting.Candidate, 16)
		return &tricklingFakePeer{p}, nil
	}
	return p, nil
}

func (f *fakePeers) all() []*fakePeer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*fakePeer(nil), f.peers...)
}

func (f *fakePeers) peer(label string) *fakePeer {
	for _, p := range f.all() {
		if p.opts.Label == label {
			return p
		}
	}
	return nil
}

type fakePeer struct {
	opts  meeting.PeerOptions
	state chan meeting.PeerState

	mu         sync.Mutex
	accepted   []string
	restarts   int
	restartErr error
	closed     bool

	cands     chan meeting.Candidate // nil unless trickling
	candsDone bool
}

func (p *fakePeer) Offer(context.Context) (string, error) {
	return fakeSDP("offerufrag", "offerpwd", p.opts.Role == meeting.RoleSend), nil
}

func (p *fakePeer) Accept(_ context.Context, answer string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.accepted = append(p.accepted, answer)
	return nil
}

func (p *fakePeer) Answer(context.Context, string) (string, error) {
	panic("a WHIP client never answers")
}

func (p *fakePeer) RestartICE(context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.restarts++
	if p.restartErr != nil {
		return "", p.restartErr
	}
	return fakeSDP("restartufrag", "restartpwd", p.opts.Role == meeting.RoleSend), nil
}

func (p *fakePeer) State() <-chan meeting.PeerState { return p.state }

func (p *fakePeer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.state)
	}
	p.endCandidatesLocked()
	return nil
}

// tricklingFakePeer is a fakePeer that implements meeting.Trickler.
type tricklingFakePeer struct{ *fakePeer }

// OfferTrickle returns the offer without its candidates; the test sends
// them.
func (p *tricklingFakePeer) OfferTrickle(context.Context) (string, <-chan meeting.Candidate, error) {
	var lines []string
	for _, l := range sdpLines(fakeSDP("offerufrag", "offerpwd", p.opts.Role == meeting.RoleSend)) {
		if !strings.HasPrefix(l, "a=candidate:") && l != "a=end-of-candidates" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\r\n") + "\r\n", p.cands, nil
}

// candidate sends a gathered candidate (the channel holds 16).
func (p *fakePeer) candidate(mid, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.candsDone {
		p.cands <- meeting.Candidate{Mid: mid, Line: line}
	}
}

// endCandidates ends gathering.
func (p *fakePeer) endCandidates() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endCandidatesLocked()
}

func (p *fakePeer) endCandidatesLocked() {
	if p.cands != nil && !p.candsDone {
		p.candsDone = true
		close(p.cands)
	}
}

// pending is how many sent candidates nobody has read yet.
func (p *fakePeer) pending() int { return len(p.cands) }

// push reports a state, as the media layer would.
func (p *fakePeer) push(st meeting.PeerState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.state <- st
	}
}

func (p *fakePeer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *fakePeer) answers() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.accepted...)
}

func (p *fakePeer) restartCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// fakeSDP is a bundled audio+video description with one host candidate.
func fakeSDP(ufrag, pwd string, send bool) string {
	dir := "recvonly"
	if send {
		dir = "sendonly"
	}
	lines := []string{
		"v=0",
		"o=- 4215 2 IN IP4 127.0.0.1",
		"s=-",
		"t=0 0",
		"a=group:BUNDLE 0 1",
		"m=audio 9 UDP/TLS/RTP/SAVPF 111",
		"c=IN IP4 0.0.0.0",
		"a=mid:0",
		"a=ice-ufrag:" + ufrag,
		"a=ice-pwd:" + pwd,
		"a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
		"a=end-of-candidates",
		"a=" + dir,
		"a=rtpmap:111 opus/48000/2",
		"m=video 9 UDP/TLS/RTP/SAVPF 96",
		"c=IN IP4 0.0.0.0",
		"a=mid:1",
		"a=ice-ufrag:" + ufrag,
		"a=ice-pwd:" + pwd,
		"a=" + dir,
		"a=rtpmap:96 VP8/90000",
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}
