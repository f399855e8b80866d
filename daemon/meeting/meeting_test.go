package meeting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// timeout bounds every wait in these tests.
const timeout = 5 * time.Second

var epoch = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// journal records, in order, what the fakes were asked to do, so a test can
// check that the first meeting was left before the second was joined.
type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, fmt.Sprintf(format, args...))
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.lines...)
}

// fakeProvider joins URLs whose scheme is scheme.
type fakeProvider struct {
	name    string
	scheme  string
	joinErr error
	j       *journal
	// endAtOnce makes sessions that have already ended when Join returns.
	endAtOnce bool
	endErr    error

	mu       sync.Mutex
	sessions []*fakeSession
}

func (p *fakeProvider) Name() string          { return p.name }
func (p *fakeProvider) Match(u *url.URL) bool { return u.Scheme == p.scheme }

func (p *fakeProvider) Join(_ context.Context, u *url.URL) (Session, error) {
	p.j.add("%s join %s", p.name, u.Host)
	if p.joinErr != nil {
		return nil, p.joinErr
	}
	s := &fakeSession{host: u.Host, j: p.j, done: make(chan struct{})}
	if p.endAtOnce {
		s.end(p.endErr)
	}
	p.mu.Lock()
	p.sessions = append(p.sessions, s)
	p.mu.Unlock()
	return s, nil
}

func (p *fakeProvider) session(t *testing.T, i int) *fakeSession {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if i >= len(p.sessions) {
		t.Fatalf("provider %s has %d sessions, want at least %d", p.name, len(p.sessions), i+1)
	}
	return p.sessions[i]
}

type fakeSession struct {
	host     string
	j        *journal
	leaveErr error
	done     chan struct{}

	mu     sync.Mutex
	leaves int
	err    error
}

func (s *fakeSession) Leave(context.Context) error {
	s.j.add("leave %s", s.host)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaves++
	return s.leaveErr
}

func (s *fakeSession) Done() <-chan struct{} { return s.done }

func (s *fakeSession) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// end makes the session end by itself with err.
func (s *fakeSession) end(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	close(s.done)
}

func (s *fakeSession) leaveCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leaves
}

// recorder collects published states.
type recorder struct {
	mu     sync.Mutex
	states []apiv1.Meeting
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) publish(m apiv1.Meeting) {
	r.mu.Lock()
	r.states = append(r.states, m)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []apiv1.Meeting {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]apiv1.Meeting(nil), r.states...)
}

func (r *recorder) kinds() []apiv1.MeetingState {
	var out []apiv1.MeetingState
	for _, m := range r.all() {
		out = append(out, m.State)
	}
	return out
}

// waitFor waits until n states have been published.
func (r *recorder) waitFor(t *testing.T, n int) []apiv1.Meeting {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if s := r.all(); len(s) >= n {
			return s
		}
		select {
		case <-r.notify:
		case <-deadline:
			t.Fatalf("timed out waiting for %d published states; have %v", n, r.kinds())
		}
	}
}

type harness struct {
	e   *Engine
	rec *recorder
	j   *journal
}

func newHarness(providers ...*fakeProvider) *harness {
	h := &harness{rec: newRecorder(), j: &journal{}}
	var ps []Provider
	for _, p := range providers {
		p.j = h.j
		ps = append(ps, p)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h.e = NewEngine(logger, func() time.Time { return epoch }, h.rec.publish, ps...)
	return h
}

// run starts Engine.Run and returns a function that stops it and returns
// its result. The test fails if Run does not return in time.
func (h *harness) run(t *testing.T) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- h.e.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-result:
			case <-time.After(timeout):
				t.Fatal("Run did not return after its context ended")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		wantErr bool
		host    string
	}{
		{"https", "https://meet.example.com/room/42?pwd=x", false, "meet.example.com"},
		{"janus over wss", "janus+wss://janus.example.com:8989/janus#1234", false, "janus.example.com:8989"},
		{"surrounding space trimmed", "  https://meet.example.com/r\n", false, "meet.example.com"},
		{"with user info", "https://user:secret@meet.example.com/", false, "meet.example.com"},
		{"exactly max length", "https://h/" + strings.Repeat("a", MaxURLLength-len("https://h/")), false, "h"},
		{"empty", "", true, ""},
		{"only spaces", "   ", true, ""},
		{"inner space", "https://meet.example.com/my room", true, ""},
		{"tab", "https://meet.example.com/\troom", true, ""},
		{"nul", "https://meet.example.com/\x00", true, ""},
		{"escape", "https://meet\x1b.example.com/", true, ""},
		{"del", "https://meet.example.com/\x7f", true, ""},
		{"relative path", "/room/42", true, ""},
		{"no scheme", "meet.example.com/room", true, ""},
		{"scheme-relative", "//meet.example.com/room", true, ""},
		{"no host", "mailto:x", true, ""},
		{"empty host", "https:///room", true, ""},
		{"too long", "https://h/" + strings.Repeat("a", MaxURLLength), true, ""},
		{"bad escape", "https://meet.example.com/%zz", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ParseURL(tt.raw)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseURL(%q) = %v, want an error", tt.raw, u)
				}
				if !errors.Is(err, ErrInvalidURL) {
					t.Errorf("error %v does not wrap ErrInvalidURL", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.raw, err)
			}
			if u.Host != tt.host {
				t.Errorf("host = %q, want %q", u.Host, tt.host)
			}
		})
	}
}

func TestNewEngineIsIdle(t *testing.T) {
	h := newHarness()
	if got := h.e.State(); got.State != apiv1.MeetingIdle || !got.Since.Equal(epoch) {
		t.Errorf("State = %+v, want idle since %v", got, epoch)
	}
	if h.e.Session() != nil {
		t.Error("new engine has a session")
	}
}

func TestJoinRefusedLeavesStateUnchanged(t *testing.T) {
	tests := []struct {
		name      string
		providers []*fakeProvider
		url       string
		want      error
	}{
		{"no providers", nil, "https://meet.example.com/r", ErrNoProvider},
		{"no provider matches", []*fakeProvider{{name: "janus", scheme: "janus+wss"}}, "https://meet.example.com/r", ErrNoProvider},
		{"invalid URL", []*fakeProvider{{name: "web", scheme: "https"}}, "not a url", ErrInvalidURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(tt.providers...)
			before := h.e.State()
			m, err := h.e.Join(ctxT(t), tt.url)
			if !errors.Is(err, tt.want) {
				t.Errorf("Join error = %v, want %v", err, tt.want)
			}
			if m != before || h.e.State() != before {
				t.Errorf("state changed: returned %+v, now %+v, was %+v", m, h.e.State(), before)
			}
			if got := h.rec.all(); len(got) != 0 {
				t.Errorf("published %v, want nothing", got)
			}
			if got := h.j.get(); len(got) != 0 {
				t.Errorf("providers were called: %v", got)
			}
		})
	}
}

func TestJoinAndLeave(t *testing.T) {
	p := &fakeProvider{name: "web", scheme: "https"}
	h := newHarness(p)
	h.run(t)

	m, err := h.e.Join(ctxT(t), "https://meet.example.com/r")
	if err != nil {
		t.Fatal(err)
	}
	want := apiv1.Meeting{State: apiv1.MeetingConnected, URL: "https://meet.example.com/r", Provider: "web", Since: epoch}
	if m != want || h.e.State() != want {
		t.Errorf("Join returned %+v, State %+v; want %+v", m, h.e.State(), want)
	}
	sess := p.session(t, 0)
	if h.e.Session() != sess {
		t.Error("Session() is not the joined session")
	}
	if got, want := h.rec.kinds(), []apiv1.MeetingState{apiv1.MeetingJoining, apiv1.MeetingConnected}; !reflect.DeepEqual(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}

	m, err = h.e.Leave(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.State != apiv1.MeetingLeft || m.URL != want.URL || m.Provider != "web" || m.Reason != "left by request" {
		t.Errorf("Leave returned %+v, want left by request", m)
	}
	if n := sess.leaveCount(); n != 1 {
		t.Errorf("Session.Leave called %d times, want 1", n)
	}
	if h.e.Session() != nil {
		t.Error("Session() still set after Leave")
	}
	if got, want := h.rec.kinds(), []apiv1.MeetingState{apiv1.MeetingJoining, apiv1.MeetingConnected, apiv1.MeetingLeft}; !reflect.DeepEqual(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}

	// A second Leave is a no-op: the session is not left twice.
	m2, err := h.e.Leave(ctxT(t))
	if err != nil || m2 != m {
		t.Errorf("second Leave = %+v, %v; want %+v, nil", m2, err, m)
	}
	if n := sess.leaveCount(); n != 1 {
		t.Errorf("Session.Leave called %d times, want 1", n)
	}
}

func TestLeaveWhenIdle(t *testing.T) {
	h := newHarness(&fakeProvider{name: "web", scheme: "https"})
	m, err := h.e.Leave(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.State != apiv1.MeetingIdle {
		t.Errorf("Leave when idle = %+v, want idle", m)
	}
	if got := h.rec.all(); len(got) != 0 {
		t.Errorf("published %v, want nothing", got)
	}
}

func TestLeaveError(t *testing.T) {
	p := &fakeProvider{name: "web", scheme: "https"}
	h := newHarness(p)
	h.run(t)
	if _, err := h.e.Join(ctxT(t), "https://a.example/"); err != nil {
		t.Fatal(err)
	}
	leaveErr := errors.New("bye not acknowledged")
	p.session(t, 0).leaveErr = leaveErr
	m, err := h.e.Leave(ctxT(t))
	if !errors.Is(err, leaveErr) {
		t.Errorf("Leave error = %v, want it to wrap %v", err, leaveErr)
	}
	if m.State != apiv1.MeetingLeft || !strings.Contains(m.Reason, "did not complete cleanly") || !strings.Contains(m.Reason, leaveErr.Error()) {
		t.Errorf("state = %+v, want left with the leave error in the reason", m)
	}
}

func TestJoinWhileInMeetingLeavesFirst(t *testing.T) {
	p := &fakeProvider{name: "web", scheme: "https"}
	h := newHarness(p)
	h.run(t)
	if _, err := h.e.Join(ctxT(t), "https://first.example/"); err != nil {
		t.Fatal(err)
	}
	m, err := h.e.Join(ctxT(t), "https://second.example/")
	if err != nil {
		t.Fatal(err)
	}
	if m.State != apiv1.MeetingConnected || m.URL != "https://second.example/" {
		t.Errorf("second Join = %+v", m)
	}
	first, second := p.session(t, 0), p.session(t, 1)
	if first.leaveCount() != 1 || second.leaveCount() != 0 {
		t.Errorf("Leave calls: first %d, second %d; want 1, 0", first.leaveCount(), second.leaveCount())
	}
	if h.e.Session() != second {
		t.Error("Session() is not the second session")
	}
	wantJournal := []string{"web join first.example", "leave first.example", "web join second.example"}
	if got := h.j.get(); !reflect.DeepEqual(got, wantJournal) {
		t.Errorf("calls = %q, want %q", got, wantJournal)
	}
	got := h.rec.all()
	wantStates := []struct {
		state apiv1.MeetingState
		url   string
	}{
		{apiv1.MeetingJoining, "https://first.example/"},
		{apiv1.MeetingConnected, "https://first.example/"},
		{apiv1.MeetingLeft, "https://first.example/"},
		{apiv1.MeetingJoining, "https://second.example/"},
		{apiv1.MeetingConnected, "https://second.example/"},
	}
	if len(got) != len(wantStates) {
		t.Fatalf("published %v, want %d states", got, len(wantStates))
	}
	for i, w := range wantStates {
		if got[i].State != w.state || got[i].URL != w.url {
			t.Errorf("state %d = %s %s, want %s %s", i, got[i].State, got[i].URL, w.state, w.url)
		}
	}
	if got[2].Reason != "joined another meeting" {
		t.Errorf("first meeting left with reason %q", got[2].Reason)
	}

	// The first session ending late must not disturb the second.
	first.end(errors.New("late hangup"))
	time.Sleep(20 * time.Millisecond)
	if st := h.e.State(); st.State != apiv1.MeetingConnected || st.URL != "https://second.example/" {
		t.Errorf("after the old session ended: %+v, want second still connected", st)
	}
}

func TestProvidersTriedInOrder(t *testing.T) {
	a := &fakeProvider{name: "a", scheme: "https"}
	b := &fakeProvider{name: "b", scheme: "https"}
	h := newHarness(a, b)
	h.run(t)
	m, err := h.e.Join(ctxT(t), "https://x.example/")
	if err != nil {
		t.Fatal(err)
	}
	if m.Provider != "a" {
		t.Errorf("provider = %q, want the first that matches, a", m.Provider)
	}
}

func TestJoinFails(t *testing.T) {
	joinErr := errors.New("room is full")
	p := &fakeProvider{name: "web", scheme: "https", joinErr: joinErr}
	h := newHarness(p)
	h.run(t)
	m, err := h.e.Join(ctxT(t), "https://full.example/")
	if !errors.Is(err, joinErr) {
		t.Errorf("Join error = %v, want it to wrap %v", err, joinErr)
	}
	want := apiv1.Meeting{State: apiv1.MeetingFailed, URL: "https://full.example/", Provider: "web", Reason: "room is full", Since: epoch}
	if m != want || h.e.State() != want {
		t.Errorf("Join returned %+v, State %+v; want %+v", m, h.e.State(), want)
	}
	if got, want := h.rec.kinds(), []apiv1.MeetingState{apiv1.MeetingJoining, apiv1.MeetingFailed}; !reflect.DeepEqual(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
	if h.e.Session() != nil {
		t.Error("a failed join left a session")
	}
}

func TestSessionEndsByItself(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		state  apiv1.MeetingState
		reason string
	}{
		{"with an error", errors.New("ICE failed"), apiv1.MeetingFailed, "ICE failed"},
		{"without an error", nil, apiv1.MeetingLeft, "the meeting ended"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &fakeProvider{name: "web", scheme: "https"}
			h := newHarness(p)
			h.run(t)
			if _, err := h.e.Join(ctxT(t), "https://m.example/"); err != nil {
				t.Fatal(err)
			}
			sess := p.session(t, 0)
			sess.end(tt.err)
			got := h.rec.waitFor(t, 3)[2]
			want := apiv1.Meeting{State: tt.state, URL: "https://m.example/", Provider: "web", Reason: tt.reason, Since: epoch}
			if got != want || h.e.State() != want {
				t.Errorf("after the session ended: published %+v, State %+v; want %+v", got, h.e.State(), want)
			}
			if h.e.Session() != nil {
				t.Error("ended session is still current")
			}
			if n := sess.leaveCount(); n != 0 {
				t.Errorf("an ended session was left %d times", n)
			}
			// Leave afterwards is a no-op and keeps the reason readable.
			if m, err := h.e.Leave(ctxT(t)); err != nil || m != want {
				t.Errorf("Leave after the end = %+v, %v; want %+v", m, err, want)
			}
		})
	}
}

// A session that has already ended when the provider's Join returns (the far
// end hung up during setup) must end in failed, not stay "connected" with no
// session behind it.
func TestSessionEndsDuringJoin(t *testing.T) {
	for i := range 50 {
		p := &fakeProvider{name: "web", scheme: "https", endAtOnce: true, endErr: errors.New("hung up")}
		h := newHarness(p)
		stop := h.run(t)
		if _, err := h.e.Join(ctxT(t), "https://m.example/"); err != nil {
			t.Fatal(err)
		}
		states := h.rec.waitFor(t, 3)
		_ = stop()
		if got := h.e.State(); got.State != apiv1.MeetingFailed || got.Reason != "hung up" {
			t.Fatalf("run %d: final state %+v, want failed: hung up (published %v)", i, got, h.rec.kinds())
		}
		if last := states[len(states)-1]; last.State != apiv1.MeetingFailed {
			t.Fatalf("run %d: last published state %s, want failed (published %v)", i, last.State, h.rec.kinds())
		}
	}
}

func TestRunShutdownLeaves(t *testing.T) {
	p := &fakeProvider{name: "web", scheme: "https"}
	h := newHarness(p)
	stop := h.run(t)
	if _, err := h.e.Join(ctxT(t), "https://m.example/"); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if n := p.session(t, 0).leaveCount(); n != 1 {
		t.Errorf("Session.Leave called %d times at shutdown, want 1", n)
	}
	st := h.e.State()
	if st.State != apiv1.MeetingLeft || !strings.Contains(st.Reason, "shutting down") {
		t.Errorf("state after shutdown = %+v, want left because shutting down", st)
	}
}

func TestRunShutdownIdle(t *testing.T) {
	h := newHarness(&fakeProvider{name: "web", scheme: "https"})
	stop := h.run(t)
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if st := h.e.State(); st.State != apiv1.MeetingIdle {
		t.Errorf("state = %+v, want idle", st)
	}
	if got := h.rec.all(); len(got) != 0 {
		t.Errorf("published %v, want nothing", got)
	}
}

func TestRunShutdownLeaveError(t *testing.T) {
	p := &fakeProvider{name: "web", scheme: "https"}
	h := newHarness(p)
	stop := h.run(t)
	if _, err := h.e.Join(ctxT(t), "https://m.example/"); err != nil {
		t.Fatal(err)
	}
	leaveErr := errors.New("timeout")
	p.session(t, 0).leaveErr = leaveErr
	if err := stop(); !errors.Is(err, leaveErr) {
		t.Errorf("Run = %v, want it to wrap %v", err, leaveErr)
	}
}

func TestJoinAbandonedWithoutRun(t *testing.T) {
	// Nobody runs the engine: Join gives up with its ctx and leaves the
	// session rather than keep one nobody watches.
	p := &fakeProvider{name: "web", scheme: "https"}
	h := newHarness(p)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	m, err := h.e.Join(ctx, "https://m.example/")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Join error = %v, want DeadlineExceeded", err)
	}
	if m.State != apiv1.MeetingLeft || m.Reason != "join abandoned" {
		t.Errorf("state = %+v, want left: join abandoned", m)
	}
	if n := p.session(t, 0).leaveCount(); n != 1 {
		t.Errorf("abandoned session left %d times, want 1", n)
	}
	if h.e.Session() != nil {
		t.Error("abandoned session is still current")
	}
}

func TestURLPasswordRedacted(t *testing.T) {
	tests := []struct {
		name    string
		joinErr error
	}{
		{"connected", nil},
		{"failed", errors.New("refused")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &fakeProvider{name: "web", scheme: "https", joinErr: tt.joinErr}
			h := newHarness(p)
			h.run(t)
			m, err := h.e.Join(ctxT(t), "https://user:secret@meet.example.com/room")
			if (err != nil) != (tt.joinErr != nil) {
				t.Fatalf("Join error = %v", err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the password: %v", err)
			}
			if !strings.Contains(m.URL, "meet.example.com/room") {
				t.Errorf("URL = %q, want the redacted meeting URL", m.URL)
			}
			if _, err := h.e.Leave(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			states := append(h.rec.all(), m, h.e.State())
			for _, s := range states {
				if strings.Contains(fmt.Sprintf("%+v", s), "secret") {
					t.Errorf("state leaks the password: %+v", s)
				}
			}
		})
	}
	// The no-provider error names the URL; it must be redacted too.
	h := newHarness()
	_, err := h.e.Join(ctxT(t), "https://user:secret@meet.example.com/room")
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("no-provider error = %v, want an error without the password", err)
	}
}

func TestJoinAfterShutdownDoesNotHang(t *testing.T) {
	// Once Run has begun shutting down it reads no more sessions: a Join
	// whose context has no deadline must still return, with ErrStopping,
	// and leave the session it set up.
	p := &fakeProvider{name: "web", scheme: "https"}
	h := newHarness(p)
	stop := h.run(t)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := h.e.Join(context.Background(), "https://m.example/")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStopping) {
			t.Errorf("Join after shutdown = %v, want ErrStopping", err)
		}
	case <-time.After(timeout):
		t.Fatal("Join after shutdown hangs")
	}
	if n := p.session(t, 0).leaveCount(); n != 1 {
		t.Errorf("session left %d times, want 1", n)
	}
}

type formsProvider struct{ fakeProvider }

func (*formsProvider) URLForms() []string { return []string{"janus+wss://HOST/PATH?room=ID"} }

func TestNoProviderNamesServiceAndForms(t *testing.T) {
	cases := []struct {
		url   string
		forms bool
		want  []string
	}{
		{"https://teams.microsoft.com/l/meetup-join/19%3ameeting_x", true, []string{"Microsoft Teams", "cannot be joined natively", "janus+wss://HOST/PATH?room=ID"}},
		{"https://acme.zoom.us/j/123456789?pwd=secret", true, []string{"Zoom", "cannot be joined natively"}},
		{"https://meet.google.com/abc-defg-hij", false, []string{"Google Meet", "no meeting provider configured"}},
		{"https://acme.webex.com/meet/alice", true, []string{"Webex"}},
		{"https://meet.example.com/room/1", true, []string{"no meeting provider can join https://meet.example.com/room/1", "janus+wss://"}},
		{"https://notzoom.us/j/1", false, []string{"no meeting provider can join"}},
	}
	for _, c := range cases {
		var e *Engine
		if c.forms {
			e = NewEngine(slog.New(slog.DiscardHandler), time.Now, nil, &formsProvider{fakeProvider{name: "janus", scheme: "janus+wss"}})
		} else {
			e = NewEngine(slog.New(slog.DiscardHandler), time.Now, nil)
		}
		_, err := e.Join(context.Background(), c.url)
		if !errors.Is(err, ErrNoProvider) {
			t.Errorf("%s: %v, want ErrNoProvider", c.url, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.url, err, w)
			}
		}
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"https://m.example/r?room=1":                       "https://m.example/r?room=1",
		"janus+wss://m.example/janus?room=1234&pin=secret": "janus+wss://m.example/janus?pin=xxxxx&room=1234",
		"https://acme.zoom.us/j/1?pwd=abc":                 "https://acme.zoom.us/j/1?pwd=xxxxx",
		"whip+https://w.example/whip/ep#token=abc":         "whip+https://w.example/whip/ep#xxxxx",
		"https://alice:hunter2@m.example/r":                "https://alice:xxxxx@m.example/r",
		"https://m.example/r?Token=a&display=Board%20room": "https://m.example/r?Token=xxxxx&display=Board+room",
	}
	for in, want := range cases {
		u, err := ParseURL(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := Redact(u); got != want {
			t.Errorf("Redact(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestCheckPort(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://h.example/": true, "https://h.example:443/": true, "https://h.example:65535/": true,
		"https://h.example:/": false, "https://h.example:0/": false, "https://h.example:65536/": false,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckPort(u); (err == nil) != ok {
			t.Errorf("CheckPort(%s) = %v, want ok=%v", raw, err, ok)
		}
	}
}

func TestClassify(t *testing.T) {
	e := NewEngine(slog.New(slog.DiscardHandler), time.Now, nil, &fakeProvider{name: "janus", scheme: "janus+wss"})
	for _, c := range []struct {
		url, provider string
		joinable      bool
		reason        string
	}{
		{"janus+wss://meet.example.com/?room=1", "janus", true, ""},
		{"https://acme.zoom.us/j/123", "Zoom", false, "Zoom meetings cannot be joined natively yet"},
		{"https://docs.example.com/agenda", "", false, ""},
		{"not a url", "", false, ""},
	} {
		p, j, r := e.Classify(c.url)
		if p != c.provider || j != c.joinable || r != c.reason {
			t.Errorf("Classify(%q) = %q, %v, %q; want %q, %v, %q", c.url, p, j, r, c.provider, c.joinable, c.reason)
		}
	}
}

// A meeting joined from the calendar is named by its agenda ID in every
// state of the session, until the next meeting.
func TestJoinScheduledKeepsCalendarID(t *testing.T) {
	p := &fakeProvider{name: "web", scheme: "https"}
	h := newHarness(p)
	h.run(t)
	m, err := h.e.JoinScheduled(ctxT(t), "https://m.example/", "evt-42@2026-11-21")
	if err != nil {
		t.Fatal(err)
	}
	if m.CalendarID != "evt-42@2026-11-21" {
		t.Errorf("connected: calendarId %q", m.CalendarID)
	}
	p.session(t, 0).end(nil)
	for i, got := range h.rec.waitFor(t, 3) {
		if got.CalendarID != "evt-42@2026-11-21" {
			t.Errorf("published state %d (%s): calendarId %q", i, got.State, got.CalendarID)
		}
	}
	// A typed link joined next is no calendar meeting.
	if m, err = h.e.Join(ctxT(t), "https://m.example/other"); err != nil || m.CalendarID != "" {
		t.Errorf("Join after a scheduled meeting = %+v, %v; want no calendarId", m, err)
	}
}
