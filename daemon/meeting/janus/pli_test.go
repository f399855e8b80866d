package janus_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"github.com/atriumroom/atrium/test/janustest"
)

// TestRealJanusForwardsSubscriberPLI checks that a keyframe request from a
// subscriber reaches the publisher through Janus. The PLI has the shape
// daemon/meeting/rtc sends (pliPacket there): a receiver report naming the
// video SSRC, then the PLI. Janus 1.1 files a lone reduced-size PLI under
// the subscription's first m-line (audio) and drops it.
func TestRealJanusForwardsSubscriberPLI(t *testing.T) {
	noLeaks(t)
	srv := janustest.Start(t)
	alpha := mustJoinReal(t, srv, wsURL(srv, fmt.Sprintf("room=%d&display=Alpha", janustest.Room)))
	waitPublishing(t, alpha)
	beta := mustJoinReal(t, srv, wsURL(srv, fmt.Sprintf("room=%d&display=Beta", janustest.Room)))
	waitPublishing(t, beta)
	sub := alpha.peers.peer("subscriber")
	eventually(t, 15*time.Second, "alpha to receive beta's video", func() bool {
		sub = alpha.peers.peer("subscriber")
		return sub != nil && sub.connected.Load() && sub.videoSSRC.Load() != 0 && sub.rtp.Load() > 50
	})
	pub := beta.peers.peer("publisher")
	// Out of the way of the PLIs Janus sends for a new subscriber.
	time.Sleep(2 * time.Second)

	before := pub.plis.Load()
	media := sub.videoSSRC.Load()
	const receiverSSRC = 1
	pli := []rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: receiverSSRC, Reports: []rtcp.ReceptionReport{{SSRC: media}}},
		&rtcp.PictureLossIndication{SenderSSRC: receiverSSRC, MediaSSRC: media},
	}
	if err := sub.pc.WriteRTCP(pli); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "beta's publisher to get the PLI", func() bool { return pub.plis.Load() > before })
}
