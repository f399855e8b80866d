package whip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// leg is one direction of a session: the WHIP publisher or the WHEP
// subscriber, with its own endpoint, token, peer and server resource.
type leg struct {
	name     string // "publish" or "subscribe", for messages
	label    string // meeting.PeerOptions.Label
	role     meeting.PeerRole
	endpoint *url.URL
	token    string

	// Set by negotiate; afterwards touched only by the leg's watcher, and
	// by finish after the watcher has ended.
	peer     meeting.Peer
	resource *url.URL
	// etag is the session's entity tag, from the POST and then each
	// restart. Restarts match any ("*"); trickle PATCHes send the POST's.
	etag   string
	answer string // the remote description, which a restart rewrites

	// offer is the offer as POSTed and cands the candidates still to
	// trickle, when the peer trickles (nil otherwise, or when gathering
	// ended before the POST). Set by negotiate, read by the trickler.
	offer string
	cands <-chan meeting.Candidate

	// restartReq hands RestartICE's requests to the leg's watcher.
	restartReq chan restartRequest
}

// restartRequest is one RestartICE call waiting for a leg's watcher.
type restartRequest struct {
	ctx   context.Context
	reply chan<- error // buffered
}

// Session is one joined WHIP/WHEP meeting. It implements meeting.Session.
//
// Each leg has a watcher goroutine that follows its peer's state and makes
// the one ICE restart; run ends the session when a watcher reports a
// failure. The watchers have ended when Done closes, run right after; all
// have ended when Leave returns.
type Session struct {
	c      *client
	legs   []*leg
	logger *slog.Logger

	ctx       context.Context // ends the watchers and any restart
	cancel    context.CancelFunc
	watchers  sync.WaitGroup
	failed    chan error    // a watcher's reason the session is over
	leaving   chan struct{} // closed by Leave
	leaveOnce sync.Once
	runDone   chan struct{}

	finishOnce sync.Once
	done       chan struct{}
	mu         sync.Mutex
	err        error

	trickled atomic.Int64 // candidates accepted by trickle PATCH
}

var (
	_ meeting.Session   = (*Session)(nil)
	_ meeting.Restarter = (*Session)(nil)
)

func newSession(c *client, legs []*leg, logger *slog.Logger) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		c:       c,
		legs:    legs,
		logger:  logger,
		ctx:     ctx,
		cancel:  cancel,
		failed:  make(chan error, len(legs)),
		leaving: make(chan struct{}),
		runDone: make(chan struct{}),
		done:    make(chan struct{}),
	}
	for _, l := range legs {
		l.restartReq = make(chan restartRequest)
		if l.cands != nil {
			// The POST's ETag, read before the watcher, whose restarts
			// change l.etag, starts.
			ifMatch := l.etag
			if ifMatch == "" {
				ifMatch = restartIfMatch
			}
			s.watchers.Add(1)
			go s.trickle(l, ifMatch)
		}
		s.watchers.Add(1)
		go s.watch(l)
	}
	go s.run()
	return s
}

// Done implements meeting.Session.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err implements meeting.Session: why the session ended by itself, nil
// after Leave or while it runs.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// resources lists the session URLs on the servers, for logs.
func (s *Session) resources() []string {
	var rs []string
	for _, l := range s.legs {
		rs = append(rs, l.resource.Redacted())
	}
	return rs
}

// Leave implements meeting.Session: it DELETEs every session on the
// servers, within ctx, and closes the peers, even when ctx has already
// expired. Leaving a session that ended by itself is not an error; if it
// is ending by itself at that moment, Leave waits for that cleanup, which
// its own request timeout bounds.
func (s *Session) Leave(ctx context.Context) error {
	s.leaveOnce.Do(func() { close(s.leaving) })
	err := s.finish(ctx, nil)
	// run returns at once on leaving, or has just finished ending the
	// session by itself (finish returned).
	<-s.runDone
	return err
}

// run waits for a leg to fail or for Leave.
func (s *Session) run() {
	defer close(s.runDone)
	select {
	case err := <-s.failed:
		select {
		case <-s.leaving:
			// Leave came first and has ended everything; this failure
			// is its consequence or moot.
			return
		default:
		}
		s.logger.Warn("session ended", "err", err)
		ctx, cancel := context.WithTimeout(context.Background(), s.c.timeout)
		defer cancel()
		if ferr := s.finish(ctx, err); ferr != nil {
			s.logger.Warn("cleaning up the ended session", "err", ferr)
		}
	case <-s.leaving:
	}
}

// finish ends the session once: it stops the watchers, DELETEs the
// sessions on the servers, closes the peers, and records cause for Err.
func (s *Session) finish(ctx context.Context, cause error) error {
	var err error
	s.finishOnce.Do(func() {
		s.cancel()
		s.watchers.Wait()
		errs := make([]error, 2*len(s.legs))
		var wg sync.WaitGroup
		for i, l := range s.legs {
			wg.Go(func() {
				if e := s.c.end(ctx, l); e != nil {
					errs[i] = fmt.Errorf("%s: %w", l.name, e)
				}
			})
		}
		wg.Wait()
		for i, l := range s.legs {
			if e := l.peer.Close(); e != nil {
				errs[len(s.legs)+i] = fmt.Errorf("%s: close peer: %w", l.name, e)
			}
		}
		s.mu.Lock()
		s.err = cause
		s.mu.Unlock()
		close(s.done)
		err = errors.Join(errs...)
		s.logger.Info("session over", "resources", s.resources(), "cause", cause, "cleanup_err", err)
	})
	return err
}

// watch follows one leg's peer. The first failure gets one ICE restart;
// a second failure, or a failed restart, ends the session.
func (s *Session) watch(l *leg) {
	defer s.watchers.Done()
	restarted := false
	connected := false
	for {
		var st meeting.PeerState
		var ok bool
		select {
		case <-s.ctx.Done():
			return
		case req := <-l.restartReq:
			req.reply <- s.restartRequested(req.ctx, l)
			continue
		case st, ok = <-l.peer.State():
		}
		if !ok {
			s.failed <- fmt.Errorf("%s: %w: the media layer closed the peer connection", l.name, ErrMediaFailed)
			return
		}
		if st.Connected != connected {
			connected = st.Connected
			s.logger.Info("media", "leg", l.name, "connected", connected)
		}
		if !st.Failed {
			continue
		}
		if restarted {
			s.failed <- fmt.Errorf("%s: %w after an ICE restart: %s", l.name, ErrMediaFailed, reason(st))
			return
		}
		restarted = true
		s.logger.Warn("media failed; restarting ICE", "leg", l.name, "reason", reason(st))
		if err := s.restart(s.ctx, l); err != nil {
			if s.ctx.Err() != nil {
				return // Leave interrupted the restart.
			}
			s.failed <- fmt.Errorf("%s: media failed (%s) and %w", l.name, reason(st), err)
			return
		}
		s.logger.Info("ICE restarted", "leg", l.name, "etag", l.etag)
	}
}

// reason says why a peer failed, in the media layer's words if it gave
// any.
func reason(st meeting.PeerState) string {
	if st.Reason == "" {
		return "ICE or DTLS failed"
	}
	return st.Reason
}

// RestartICE implements meeting.Restarter: it restarts ICE on every leg
// at once, each with a PATCH as after a failure, and returns when all are
// done. A failed restart is returned and does not end the session; nor
// does a requested restart count as the one restart a failing leg gets.
func (s *Session) RestartICE(ctx context.Context) error {
	replies := make([]chan error, len(s.legs))
	for i, l := range s.legs {
		reply := make(chan error, 1)
		select {
		case l.restartReq <- restartRequest{ctx: ctx, reply: reply}:
			replies[i] = reply
		case <-s.ctx.Done():
			reply <- fmt.Errorf("%s: %w: the session is over", l.name, ErrRestartFailed)
			replies[i] = reply
		case <-ctx.Done():
			reply <- fmt.Errorf("%s: %w: %w", l.name, ErrRestartFailed, ctx.Err())
			replies[i] = reply
		}
	}
	// A watcher that took a request replies: its restart is bounded by
	// ctx and by the session's end.
	var errs []error
	for _, r := range replies {
		if err := <-r; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// restartRequested runs a RestartICE request on l's watcher, within both
// the session's ctx and the caller's reqCtx.
func (s *Session) restartRequested(reqCtx context.Context, l *leg) error {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stop := context.AfterFunc(reqCtx, cancel)
	defer stop()
	s.logger.Info("restarting ICE on request", "leg", l.name)
	if err := s.restart(ctx, l); err != nil {
		if reqCtx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, reqCtx.Err())
		}
		s.logger.Warn("ICE restart on request failed", "leg", l.name, "err", err)
		return fmt.Errorf("%s: %w", l.name, err)
	}
	s.logger.Info("ICE restarted", "leg", l.name, "etag", l.etag)
	return nil
}

// restart makes the media layer's restart offer, PATCHes its fragment and
// applies the server's credentials, within ctx and RestartTimeout.
func (s *Session) restart(ctx context.Context, l *leg) error {
	ctx, cancel := context.WithTimeout(ctx, RestartTimeout)
	defer cancel()
	offer, err := l.peer.RestartICE(ctx)
	if err != nil {
		return fmt.Errorf("%w: media layer: %w", ErrRestartFailed, err)
	}
	frag, err := restartFragment(offer)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRestartFailed, err)
	}
	reply, err := s.c.restart(ctx, l, frag)
	if err != nil {
		return err
	}
	answer, err := applyRestart(l.answer, reply)
	if err != nil {
		return err
	}
	if err := l.peer.Accept(ctx, answer); err != nil {
		return fmt.Errorf("%w: apply the answer: %w", ErrRestartFailed, err)
	}
	l.answer = answer
	return nil
}
