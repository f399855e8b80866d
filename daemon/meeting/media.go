package meeting

import (
	"context"
	"time"
)

// The media layer (package daemon/meeting/rtc, built on pion) and the
// providers (signaling: Janus, WHIP/WHEP) meet at these two interfaces.
// Providers speak SDP; the media layer owns peer connections, the HAL's
// devices, codecs, congestion control and sinks. Neither imports the other.

// PeerRole says which way media flows on a peer connection.
type PeerRole int

const (
	// RoleSend publishes the room's camera and microphone (sendonly).
	RoleSend PeerRole = iota
	// RoleReceive receives remote participants' media (recvonly).
	RoleReceive
)

// ICEServer is a STUN or TURN server, as in RTCIceServer.
type ICEServer struct {
	URLs       []string
	Username   string
	Credential string
}

// PeerOptions configure one peer connection.
type PeerOptions struct {
	Role PeerRole
	// Label names the peer in logs and stats ("publisher", "subscriber").
	Label string
	// ICEServers from the provider (e.g. WHIP Link headers), used in
	// addition to the configured ones.
	ICEServers []ICEServer
}

// PeerFactory creates peer connections for one session.
type PeerFactory interface {
	NewPeer(ctx context.Context, opts PeerOptions) (Peer, error)
}

// Peer is one WebRTC peer connection. SDP is exchanged whole: the media
// layer gathers candidates before returning an offer or answer (bounded by
// its own timeout), so providers need not trickle.
type Peer interface {
	// Offer creates a local offer (for RoleSend, or RoleReceive when the
	// server expects the client to offer, as WHEP does).
	Offer(ctx context.Context) (sdp string, err error)
	// Accept applies the remote answer to our offer.
	Accept(ctx context.Context, answerSDP string) error
	// Answer applies a remote offer and returns our answer (Janus
	// subscriptions: the server offers).
	Answer(ctx context.Context, offerSDP string) (sdp string, err error)
	// RestartICE creates an offer with fresh ICE credentials.
	RestartICE(ctx context.Context) (sdp string, err error)
	// State reports connection state changes; it is closed by Close.
	State() <-chan PeerState
	// Close ends the connection and everything it started.
	Close() error
}

// PeerState is a peer connection's state as the engine cares about it.
type PeerState struct {
	Connected bool
	// Failed is set when ICE or DTLS failed for good; Reason says why.
	Failed bool
	Reason string
	// LastMedia is when RTP or RTCP last arrived, for the media timeout.
	LastMedia time.Time
}

// Candidate is one local ICE candidate, as RTCIceCandidate gives it.
type Candidate struct {
	// Mid is the media section's a=mid ("" if unknown: use MLineIndex).
	Mid string
	// MLineIndex is the media section's index in the SDP.
	MLineIndex int
	// Line is the attribute without "a=": "candidate:1 1 udp ...".
	Line string
}

// Trickler is optionally implemented by a Peer whose candidates may be
// sent as they are gathered (trickle ICE, RFC 8838) rather than in the
// offer. Providers may use it when the server accepts trickle; Offer
// remains the whole-SDP path for servers that do not.
type Trickler interface {
	// OfferTrickle creates a local offer like Offer but returns it without
	// waiting for gathering: it has the ICE credentials and none, or few,
	// candidates. The candidates follow on the channel, which is closed
	// when gathering completes (end-of-candidates) or the peer closes.
	// The reader must drain it until it is closed or close the peer.
	OfferTrickle(ctx context.Context) (sdp string, candidates <-chan Candidate, err error)
}
