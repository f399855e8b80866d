// Package meeting is the meeting engine: it validates a meeting URL, picks
// the provider that can join it, and owns the one session the room may be
// in at a time.
//
// Providers (Janus VideoRoom, WHIP/WHEP, ...) live in their own packages and
// plug in through Provider. The engine publishes every state change.
package meeting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// LeaveDeadline bounds a graceful leave at shutdown.
const LeaveDeadline = 3 * time.Second

// MaxURLLength bounds a meeting URL; real invite links are far shorter.
const MaxURLLength = 2048

// ErrInvalidURL means the text is not an absolute URL that could name a meeting.
var ErrInvalidURL = errors.New("invalid meeting URL")

// ErrStopping means the engine is shutting down and takes no new meeting.
var ErrStopping = errors.New("roomd is shutting down")

// ErrNoProvider means no registered provider can join the URL.
var ErrNoProvider = errors.New("no provider for this URL")

// Provider joins meetings of one kind of service.
type Provider interface {
	// Name is a short identifier shown in status ("janus", "whip").
	Name() string
	// Match reports whether this provider can join u.
	Match(u *url.URL) bool
	// Join connects to the meeting. It returns once the session is set up
	// or has failed; the session then reports its own end through Done.
	Join(ctx context.Context, u *url.URL) (Session, error)
}

// Session is one joined meeting.
type Session interface {
	// Leave ends the session gracefully, within ctx's deadline.
	Leave(ctx context.Context) error
	// Done closes when the session ended by itself (the far end hung up,
	// media timed out); Err then says why.
	Done() <-chan struct{}
	Err() error
}

// Publisher receives meeting state changes.
type Publisher func(apiv1.Meeting)

// Engine owns the room's meeting.
type Engine struct {
	logger    *slog.Logger
	now       func() time.Time
	providers []Provider
	publish   Publisher
	started   chan Session  // hands joined sessions to Run
	stopping  chan struct{} // closed when Run begins to shut down

	joinMu sync.Mutex // serializes Join and Leave

	mu          sync.Mutex
	state       apiv1.Meeting
	session     Session
	connectedAt time.Time // when session connected
}

// NewEngine returns an idle engine. Providers are tried in order.
func NewEngine(logger *slog.Logger, now func() time.Time, publish Publisher, providers ...Provider) *Engine {
	return &Engine{
		logger:    logger,
		now:       now,
		providers: providers,
		publish:   publish,
		started:   make(chan Session),
		stopping:  make(chan struct{}),
		state:     apiv1.Meeting{State: apiv1.MeetingIdle, Since: now().UTC()},
	}
}

// State returns the current or last meeting.
func (e *Engine) State() apiv1.Meeting {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state
}

// ParseURL checks that raw is an absolute URL with a scheme and host.
func ParseURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	switch {
	case raw == "":
		return nil, fmt.Errorf("%w: empty", ErrInvalidURL)
	case len(raw) > MaxURLLength:
		return nil, fmt.Errorf("%w: %d bytes long, at most %d", ErrInvalidURL, len(raw), MaxURLLength)
	case strings.IndexFunc(raw, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0:
		return nil, fmt.Errorf("%w: contains spaces or control characters", ErrInvalidURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("%w: %q is not an absolute URL such as https://meet.example.com/room", ErrInvalidURL, raw)
	}
	return u, nil
}

// Classify says what the engine would do with a meeting link, without
// joining: the provider that joins it, or, for a closed service's link, the
// service's name and why the room cannot join it. Links that are neither
// (a document, a map) get an empty provider: they are not meetings.
func (e *Engine) Classify(raw string) (provider string, joinable bool, reason string) {
	u, err := ParseURL(raw)
	if err != nil {
		return "", false, ""
	}
	for _, p := range e.providers {
		if p.Match(u) {
			return p.Name(), true, ""
		}
	}
	if name, ok := ClosedService(u); ok {
		return name, false, name + " meetings cannot be joined natively yet"
	}
	return "", false, ""
}

// Join leaves any current meeting and joins the one at raw. It returns the
// resulting state; ErrInvalidURL and ErrNoProvider leave the state untouched.
func (e *Engine) Join(ctx context.Context, raw string) (apiv1.Meeting, error) {
	return e.JoinScheduled(ctx, raw, "")
}

// JoinScheduled is Join for a meeting of the room's calendar: the state
// names it by calendarID (apiv1.Meeting.CalendarID) for as long as the
// room is in it, so the kiosk knows when it was scheduled to end.
func (e *Engine) JoinScheduled(ctx context.Context, raw, calendarID string) (apiv1.Meeting, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return e.State(), err
	}
	var provider Provider
	for _, p := range e.providers {
		if p.Match(u) {
			provider = p
			break
		}
	}
	if provider == nil {
		return e.State(), e.noProvider(u)
	}

	e.joinMu.Lock()
	defer e.joinMu.Unlock()
	if err := e.leaveLocked(ctx, "joined another meeting"); err != nil {
		e.logger.Warn("leave before join", "err", err)
	}
	e.set(apiv1.Meeting{State: apiv1.MeetingJoining, URL: Redact(u), Provider: provider.Name(), CalendarID: calendarID})
	sess, err := provider.Join(ctx, u)
	if err != nil {
		m := e.set(apiv1.Meeting{State: apiv1.MeetingFailed, URL: Redact(u), Provider: provider.Name(), CalendarID: calendarID, Reason: err.Error()})
		return m, fmt.Errorf("join %s: %w", Redact(u), err)
	}
	e.mu.Lock()
	e.session = sess
	e.connectedAt = e.now()
	e.mu.Unlock()
	// Connected is published before Run watches the session: a session that
	// ends at once then moves the engine on from connected, rather than a
	// late "connected" overwriting its end.
	m := e.set(apiv1.Meeting{State: apiv1.MeetingConnected, URL: Redact(u), Provider: provider.Name(), CalendarID: calendarID})
	select {
	case e.started <- sess:
	case <-ctx.Done():
		// The caller gave up: do not leave a session nobody watches.
		return e.abandon(ctx, u, ctx.Err())
	case <-e.stopping:
		// Run is shutting down and waits for this lock: hand nothing over.
		return e.abandon(ctx, u, ErrStopping)
	}
	return m, nil
}

func (e *Engine) abandon(ctx context.Context, u *url.URL, cause error) (apiv1.Meeting, error) {
	leaveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), LeaveDeadline)
	defer cancel()
	leaveErr := e.leaveLocked(leaveCtx, "join abandoned")
	return e.State(), errors.Join(fmt.Errorf("join %s: %w", Redact(u), cause), leaveErr)
}

// noProvider explains why u cannot be joined and what could be.
func (e *Engine) noProvider(u *url.URL) error {
	var forms []string
	for _, p := range e.providers {
		if f, ok := p.(URLFormer); ok {
			forms = append(forms, f.URLForms()...)
		}
	}
	supported := "this room has no meeting provider configured"
	if len(forms) > 0 {
		supported = "this room joins " + strings.Join(forms, "; ")
	}
	if name, ok := ClosedService(u); ok {
		return fmt.Errorf("%w: %s meetings cannot be joined natively by this room (%s): %s", ErrNoProvider, name, Redact(u), supported)
	}
	return fmt.Errorf("%w: no meeting provider can join %s (%s)", ErrNoProvider, Redact(u), supported)
}

// Run follows sessions until ctx is done: a session that ends by itself
// moves the engine to failed (with its error) or left. When ctx ends, Run
// leaves the current meeting within LeaveDeadline and returns.
func (e *Engine) Run(ctx context.Context) error {
	var (
		cur  Session
		done <-chan struct{}
	)
	for {
		select {
		case <-ctx.Done():
			close(e.stopping)
			leaveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), LeaveDeadline)
			defer cancel()
			e.joinMu.Lock()
			defer e.joinMu.Unlock()
			return e.leaveLocked(leaveCtx, "roomd is shutting down")
		case s := <-e.started:
			cur, done = s, s.Done()
		case <-done:
			e.ended(cur)
			cur, done = nil, nil
		}
	}
}

func (e *Engine) ended(sess Session) {
	e.mu.Lock()
	current := e.session == sess
	if current {
		e.session = nil
	}
	prev := e.state
	e.mu.Unlock()
	if !current {
		return // already replaced or left through Leave
	}
	next := apiv1.Meeting{State: apiv1.MeetingLeft, URL: prev.URL, Provider: prev.Provider, CalendarID: prev.CalendarID, Reason: "the meeting ended"}
	if err := sess.Err(); err != nil {
		next.State, next.Reason = apiv1.MeetingFailed, err.Error()
	}
	e.set(next)
}

// Session returns the current session, or nil.
func (e *Engine) Session() Session {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.session
}

// Leave ends the current meeting. Leaving when not in a meeting is not an
// error: scripts can call it to make sure the room is free.
func (e *Engine) Leave(ctx context.Context) (apiv1.Meeting, error) {
	e.joinMu.Lock()
	defer e.joinMu.Unlock()
	err := e.leaveLocked(ctx, "left by request")
	return e.State(), err
}

func (e *Engine) leaveLocked(ctx context.Context, reason string) error {
	e.mu.Lock()
	sess, prev := e.session, e.state
	e.session = nil
	e.mu.Unlock()
	if sess == nil {
		return nil
	}
	err := sess.Leave(ctx)
	next := apiv1.Meeting{State: apiv1.MeetingLeft, URL: prev.URL, Provider: prev.Provider, CalendarID: prev.CalendarID, Reason: reason}
	if err != nil {
		next.Reason = fmt.Sprintf("%s; leaving did not complete cleanly: %v", reason, err)
	}
	e.set(next)
	if err != nil {
		return fmt.Errorf("leave meeting: %w", err)
	}
	return nil
}

func (e *Engine) set(m apiv1.Meeting) apiv1.Meeting {
	m.Since = e.now().UTC()
	e.mu.Lock()
	e.state = m
	e.mu.Unlock()
	e.logger.Info("meeting state", "state", m.State, "url", m.URL, "provider", m.Provider, "reason", m.Reason)
	if e.publish != nil {
		e.publish(m)
	}
	return m
}

// SelectVideo tells the current session which received video streams are
// shown and at what size (see VideoSelector). With no session, or a
// session whose server cannot select streams, it does nothing and returns
// nil: the room then simply receives everything. An invalid list is
// refused with ErrInvalidVideoWant before it reaches the session.
func (e *Engine) SelectVideo(ctx context.Context, wants []VideoWant) error {
	if err := ValidateVideoWants(wants); err != nil {
		return err
	}
	sess := e.Session()
	if sess == nil {
		return nil
	}
	vs, ok := sess.(VideoSelector)
	if !ok {
		return nil
	}
	if err := vs.SelectVideo(ctx, wants); err != nil {
		return fmt.Errorf("select video: %w", err)
	}
	return nil
}
