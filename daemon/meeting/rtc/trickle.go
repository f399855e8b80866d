package rtc

import (
	"context"
	"fmt"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// trickleBuffer is how many candidates the channel of OfferTrickle holds
// for a slow reader; beyond it pion's callback waits (until Close).
const trickleBuffer = 32

var _ meeting.Trickler = (*Peer)(nil)

// trickle forwards pion's OnICECandidate to one OfferTrickle channel.
// Sends and the close are serialised by mu, so the channel is closed only
// once and never sent on after.
type trickle struct {
	mu     sync.Mutex
	ch     chan meeting.Candidate
	closed bool
}

// send delivers c, waiting for room until done ends.
func (t *trickle) send(c meeting.Candidate, done <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	select {
	case t.ch <- c:
	case <-done:
	}
}

func (t *trickle) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		close(t.ch)
	}
}

// OfferTrickle implements meeting.Trickler: the offer as soon as the local
// description is set, and its candidates on the channel as pion gathers
// them; the end of gathering or Close closes the channel. Candidates of a
// later RestartICE are not sent on it (that offer carries its own).
func (p *Peer) OfferTrickle(_ context.Context) (string, <-chan meeting.Candidate, error) {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if err := p.checkOpen(); err != nil {
		return "", nil, err
	}
	if p.f.cfg.RelayOnly && p.turnServers == 0 {
		return "", nil, p.noCandidates(false)
	}
	if p.opts.Role == meeting.RoleReceive {
		if err := p.ensureRecvTransceivers(); err != nil {
			return "", nil, err
		}
	}
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return "", nil, fmt.Errorf("create offer: %w", err)
	}
	t := &trickle{ch: make(chan meeting.Candidate, trickleBuffer)}
	p.mu.Lock()
	if p.trickle != nil {
		p.trickle.close()
	}
	p.trickle = t
	p.mu.Unlock()
	done := p.ctx.Done()
	p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			t.close()
			return
		}
		j := c.ToJSON()
		t.send(meeting.Candidate{Mid: c.SDPMid, MLineIndex: int(c.SDPMLineIndex), Line: j.Candidate}, done)
	})
	if err := p.pc.SetLocalDescription(offer); err != nil {
		t.close()
		return "", nil, fmt.Errorf("set local offer: %w", err)
	}
	local := p.pc.LocalDescription()
	if local == nil {
		t.close()
		return "", nil, fmt.Errorf("set local offer: %w", ErrClosed)
	}
	return local.SDP, t.ch, nil
}

// closeTrickle closes the OfferTrickle channel, if any; Close calls it
// after cancelling the peer's context, which frees a waiting send.
func (p *Peer) closeTrickle() {
	p.mu.Lock()
	t := p.trickle
	p.mu.Unlock()
	if t != nil {
		t.close()
	}
}
