package whip

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// Trickle ICE timing (RFC 9725, "Trickle ICE").
const (
	// TrickleOfferWait bounds how long the offer waits for its first
	// candidates: those the media layer finds at once (host addresses)
	// ride in the offer, so that a server which does not trickle still
	// gets candidates to connect to.
	TrickleOfferWait = 200 * time.Millisecond
	// TrickleBatch is how long candidates are collected after the first
	// of a batch, so that those found together go in one PATCH.
	TrickleBatch = 50 * time.Millisecond
)

// trickleOffer makes the offer of a peer that trickles: the media
// layer's offer with the candidates of its first batch, within
// TrickleOfferWait. It sets l.cands to the channel of the rest, or leaves
// it nil when gathering ended already.
func (c *client) trickleOffer(ctx context.Context, tr meeting.Trickler, l *leg) (string, error) {
	sdp, cands, err := tr.OfferTrickle(ctx)
	if err != nil {
		return "", err
	}
	first, closed := nextBatch(ctx, cands, TrickleOfferWait, TrickleBatch)
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("gather ICE candidates: %w", err)
	}
	if closed && len(first) == 0 {
		return "", fmt.Errorf("gather ICE candidates: %w", ErrNoCandidates)
	}
	sdp = withCandidates(sdp, first, closed)
	if !closed {
		l.cands = cands
	}
	l.offer = sdp
	c.logger.Debug("trickle offer", "leg", l.name, "candidates", len(first), "complete", closed)
	return sdp, nil
}

// nextBatch waits up to wait (0: without a bound) for the first candidate
// from ch, then collects more for window; closed reports that ch was
// closed, i.e. gathering is complete. It returns early when ctx ends.
func nextBatch(ctx context.Context, ch <-chan meeting.Candidate, wait, window time.Duration) (batch []meeting.Candidate, closed bool) {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case c, ok := <-ch:
		if !ok {
			return nil, true
		}
		batch = append(batch, c)
	case <-timeout:
		return nil, false
	case <-ctx.Done():
		return nil, false
	}
	t := time.NewTimer(window)
	defer t.Stop()
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				return batch, true
			}
			batch = append(batch, c)
		case <-t.C:
			return batch, false
		case <-ctx.Done():
			return batch, false
		}
	}
}

// section is one media section of an offer, as a fragment names it.
type section struct {
	mline, mid string
}

// sections lists the offer's media sections and its ICE credential
// lines.
func sections(sdp string) (secs []section, ufrag, pwd string) {
	for _, l := range sdpLines(sdp) {
		switch {
		case strings.HasPrefix(l, "m="):
			secs = append(secs, section{mline: l})
		case strings.HasPrefix(l, "a=mid:") && len(secs) > 0:
			secs[len(secs)-1].mid = strings.TrimPrefix(l, "a=mid:")
		case strings.HasPrefix(l, "a=ice-ufrag:") && ufrag == "":
			ufrag = l
		case strings.HasPrefix(l, "a=ice-pwd:") && pwd == "":
			pwd = l
		}
	}
	return secs, ufrag, pwd
}

// sectionOf is the index of the section c belongs to: by mid, else by
// m-line index, else the first (the BUNDLE tag).
func sectionOf(secs []section, c meeting.Candidate) int {
	for i, s := range secs {
		if c.Mid != "" && s.mid == c.Mid {
			return i
		}
	}
	if c.Mid == "" && c.MLineIndex >= 0 && c.MLineIndex < len(secs) {
		return c.MLineIndex
	}
	return 0
}

// withCandidates adds cands to the offer's media sections, and
// a=end-of-candidates to each when complete.
func withCandidates(sdp string, cands []meeting.Candidate, complete bool) string {
	secs, _, _ := sections(sdp)
	if len(secs) == 0 {
		return sdp
	}
	bySec := make([][]string, len(secs))
	for _, c := range cands {
		i := sectionOf(secs, c)
		bySec[i] = append(bySec[i], "a="+c.Line)
	}
	var out []string
	media := -1
	flush := func() {
		if media < 0 {
			return
		}
		out = append(out, bySec[media]...)
		if complete {
			out = append(out, "a=end-of-candidates")
		}
	}
	for _, l := range sdpLines(sdp) {
		if strings.HasPrefix(l, "m=") {
			flush()
			media++
		}
		out = append(out, l)
	}
	flush()
	return strings.Join(out, "\r\n") + "\r\n"
}

// trickleFragment is the RFC 8840 fragment of one trickle PATCH (RFC 9725,
// "Trickle ICE"): the offer's ICE credentials, then each media section
// with candidates (its m= line and a=mid), and a=end-of-candidates when
// gathering is complete, in the first section if no other is named.
func trickleFragment(offer string, cands []meeting.Candidate, complete bool) string {
	secs, ufrag, pwd := sections(offer)
	var b strings.Builder
	for _, l := range []string{ufrag, pwd} {
		if l != "" {
			b.WriteString(l + "\r\n")
		}
	}
	if len(secs) == 0 {
		secs = []section{{mline: "m=audio 9 UDP/TLS/RTP/SAVPF 0", mid: "0"}}
	}
	bySec := make([][]string, len(secs))
	for _, c := range cands {
		i := sectionOf(secs, c)
		bySec[i] = append(bySec[i], "a="+c.Line)
	}
	for i, s := range secs {
		if len(bySec[i]) == 0 && !(complete && i == 0) {
			continue
		}
		b.WriteString(s.mline + "\r\n")
		if s.mid != "" {
			b.WriteString("a=mid:" + s.mid + "\r\n")
		}
		for _, c := range bySec[i] {
			b.WriteString(c + "\r\n")
		}
		if complete {
			b.WriteString("a=end-of-candidates\r\n")
		}
	}
	return b.String()
}

// trickle PATCHes l's candidates to the session as the media layer
// gathers them, batched, until gathering completes or the session ends.
// A server that answers 405 or 501 does not trickle: the offer's
// candidates must do. Any other refusal stops trickling as well. The
// channel is drained to its end either way, so the media layer never
// waits on it.
func (s *Session) trickle(l *leg, ifMatch string) {
	defer s.watchers.Done()
	defer drain(s.ctx, l.cands)
	for {
		cands, complete := nextBatch(s.ctx, l.cands, 0, TrickleBatch)
		if s.ctx.Err() != nil {
			return
		}
		frag := trickleFragment(l.offer, cands, complete)
		r, err := s.c.do(s.ctx, l, http.MethodPatch, l.resource, typeSDPFrag, frag, http.Header{"If-Match": {ifMatch}})
		switch {
		case s.ctx.Err() != nil:
			return
		case err != nil:
			s.logger.Warn("trickle PATCH failed; going on with the candidates sent so far", "leg", l.name, "err", err)
			return
		case r.code == http.StatusMethodNotAllowed || r.code == http.StatusNotImplemented:
			s.logger.Info("the server does not trickle; relying on the offer's candidates", "leg", l.name, "status", r.code)
			return
		case r.code/100 != 2:
			s.logger.Warn("trickle PATCH refused; going on with the candidates sent so far", "leg", l.name,
				"err", l.statusError("PATCH trickle", l.resource, r))
			return
		}
		s.trickled.Add(int64(len(cands)))
		s.logger.Debug("trickle PATCH accepted", "leg", l.name, "candidates", len(cands), "end", complete, "status", r.code)
		if complete {
			return
		}
	}
}

// drain reads ch until it is closed or ctx ends.
func drain(ctx context.Context, ch <-chan meeting.Candidate) {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// Trickled is how many candidates the server accepted by trickle PATCH.
func (s *Session) Trickled() int64 { return s.trickled.Load() }
