package rtc

import (
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
)

func TestOfferTrickle(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 20*time.Second)
	c := newCall(t, testConfig(), testConfig(), Media{}, Media{})
	p := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "trickler")

	sdp, cands, err := p.OfferTrickle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sdp, "a=ice-ufrag:") || !strings.Contains(sdp, "a=ice-pwd:") || !strings.Contains(sdp, "m=video") {
		t.Fatalf("offer lacks ICE credentials or media:\n%s", sdp)
	}
	var got []meeting.Candidate
	for {
		select {
		case cand, ok := <-cands:
			if !ok {
				if len(got) == 0 {
					t.Fatal("the channel closed without a candidate")
				}
				for _, cand := range got {
					if !strings.HasPrefix(cand.Line, "candidate:") || !strings.Contains(cand.Line, receiverIP) || cand.Mid == "" {
						t.Errorf("candidate = %+v, want a candidate: line on %s with a mid", cand, receiverIP)
					}
				}
				return
			}
			if got = append(got, cand); len(got) > 16 {
				t.Fatalf("too many candidates: %+v", got)
			}
		case <-ctx.Done():
			t.Fatalf("gathering did not complete; got %+v", got)
		}
	}
}

// TestOfferTrickleClose: Close closes the channel even when nobody reads
// it, and leaves no goroutine behind.
func TestOfferTrickleClose(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 20*time.Second)
	c := newCall(t, testConfig(), testConfig(), Media{}, Media{})
	p := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "trickler")
	_, cands, err := p.OfferTrickle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for range cands {
	}
}
