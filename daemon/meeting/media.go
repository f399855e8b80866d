package meeting

import (
	"context"
	"errors"
	"fmt"
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

// ErrInvalidVideoWant means a VideoWant cannot be acted on: a negative or
// absurd size, a size with one side zero, no mid, or the same stream named
// twice. The error names the entry; nothing of the list is applied.
var ErrInvalidVideoWant = errors.New("invalid video want")

// MaxShownSide bounds a shown width or height in device pixels: no display
// the room drives is larger, so anything above is a bug in the caller.
const MaxShownSide = 16384

// VideoWant says how one received video stream is shown in the kiosk, so
// that the server forwards only what is shown, at the size it is shown:
// the whole video downlink should stay near 3–4 Mbps even in large
// meetings.
type VideoWant struct {
	// PeerLabel is the PeerOptions.Label of the receiving peer
	// ("subscriber").
	PeerLabel string
	// MID is the stream's mid on that peer.
	MID string
	// Width and Height are the shown size in device pixels; 0x0 means
	// not shown at all.
	Width, Height int
}

// Shown reports whether the stream is on screen.
func (w VideoWant) Shown() bool { return w.Width > 0 && w.Height > 0 }

// VideoSelector is an optional interface of Session: a session whose
// server can stop forwarding a stream, or forward a smaller layer of it.
//
// SelectVideo applies wants: streams not shown are paused, shown ones get
// the layer that fits their size. A nil or empty list means no
// preference: every stream at the best layer. Streams not named keep
// their current setting; wants for streams that no longer exist are
// ignored. An invalid list (ValidateVideoWants) changes nothing.
type VideoSelector interface {
	SelectVideo(ctx context.Context, wants []VideoWant) error
}

// ValidateVideoWants checks wants as VideoSelector takes them: each names
// a peer and a mid, once, and has either 0x0 or a positive size up to
// MaxShownSide. The error wraps ErrInvalidVideoWant and names the entry.
func ValidateVideoWants(wants []VideoWant) error {
	type key struct{ peer, mid string }
	seen := make(map[key]int, len(wants))
	for i, w := range wants {
		where := fmt.Sprintf("video want %d (peer %q mid %q)", i, w.PeerLabel, w.MID)
		switch {
		case w.PeerLabel == "":
			return fmt.Errorf("%w: %s: no peer label", ErrInvalidVideoWant, where)
		case w.MID == "":
			return fmt.Errorf("%w: %s: no mid", ErrInvalidVideoWant, where)
		case w.Width < 0 || w.Height < 0 || w.Width > MaxShownSide || w.Height > MaxShownSide:
			return fmt.Errorf("%w: %s: size %dx%d out of range 0..%d", ErrInvalidVideoWant, where, w.Width, w.Height, MaxShownSide)
		case (w.Width == 0) != (w.Height == 0):
			return fmt.Errorf("%w: %s: size %dx%d: give 0x0 for a stream not shown", ErrInvalidVideoWant, where, w.Width, w.Height)
		}
		k := key{w.PeerLabel, w.MID}
		if j, ok := seen[k]; ok {
			return fmt.Errorf("%w: %s: the same stream as video want %d", ErrInvalidVideoWant, where, j)
		}
		seen[k] = i
	}
	return nil
}
