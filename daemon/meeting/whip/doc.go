// Package whip joins meetings over WHIP (RFC 9725, WebRTC-HTTP Ingestion
// Protocol) to publish the room's camera and microphone, and over WHEP
// (WebRTC-HTTP Egress Protocol, draft-ietf-wish-whep) to receive, while
// the media layer (meeting.PeerFactory) owns the peer connections.
//
// # Meeting URLs
//
//	whip+https://host/path/endpoint                  publish to the WHIP endpoint https://host/path/endpoint
//	whip+https://host/whip/ep?whep=https%3A%2F%2Fhost%2Fwhep%2Fep
//	                                                 publish, and receive from the paired WHEP endpoint
//	whep+https://host/path/endpoint                  receive only, from a WHEP endpoint
//	whip+http://127.0.0.1:7080/whip/endpoint/ep      plain http: loopback hosts only
//
// The endpoint is the URL after "whip+" or "whep+", with its query (minus
// the whep parameter) and without the fragment. Plain http to any other
// host is refused (ErrInsecure): the token and the SDP would cross the
// network in clear text. The same holds for redirects and for the session
// URL the server returns.
//
// A bearer token rides in the fragment, "#token=TOKEN", which browsers and
// HTTP clients never send to a server; otherwise Config.Tokens supplies one
// per host. A paired WHEP endpoint on the same host and port uses the
// meeting URL's token, one elsewhere Config.Tokens; the whep parameter
// itself may hold no token, since the engine's redaction of meeting URLs
// hides fragments and known secret parameters but not the inside of whep.
// Tokens never appear in this package's logs or errors: endpoint URLs carry
// no fragment, Redact strips it from meeting URLs, and a server that echoes
// the token in an error text has it replaced. docs/MEETING-URLS.md has the full rules.
//
// # Protocol
//
// Each leg (WHIP publish, WHEP subscribe) does, in order:
//
//   - OPTIONS on the endpoint, for ICE servers in Link headers (RFC 9725,
//     "STUN/TURN Server Configuration"; RFC 8288 syntax). They must be
//     known before the media layer creates its offer, and this pre-flight
//     is the only request before the offer; 404, 405, 501 or any refusal
//     just means none. Link headers on the POST's answer come too late
//     for the media layer (meeting.Peer takes no new configuration); they
//     are logged, not used.
//   - POST of the offer, Content-Type and Accept application/sdp. A peer
//     that is not a meeting.Trickler gathers every candidate first. One
//     that is sends its offer at once, with the candidates it finds
//     within TrickleOfferWait (host addresses, typically).
//     The answer must be 201 Created, application/sdp, with a Location
//     (resolved against the URL that answered, after 307/308 redirects)
//     and a body that starts with v=0 and has a media section. Other
//     redirects are refused: they would turn the POST into a GET. Bodies
//     are read up to MaxBodySize; a larger answer fails the join.
//   - For a Trickler, trickle ICE (RFC 9725, "Trickle ICE"): the later
//     candidates are PATCHed as application/trickle-ice-sdpfrag (RFC
//     8840: the offer's a=ice-ufrag and a=ice-pwd, then each media
//     section's m= line and a=mid with its a=candidate lines), those
//     found within TrickleBatch of each other in one PATCH, the last with
//     a=end-of-candidates. If-Match is the POST's ETag ("*" without one).
//     A client may trickle whether or not the server does: there is no
//     reliable way to ask first, OPTIONS says nothing about it. So the
//     offer carries the first candidates, and a 405 or 501 to a PATCH
//     (the server does not trickle) or any other refusal just stops the
//     PATCHes: ICE goes on with the offer's candidates. A peer whose
//     candidates all come later (none within TrickleOfferWait) then
//     fails ICE, as it would have without them.
//   - Once: when the peer reports Failed, an ICE restart: a PATCH of an
//     application/trickle-ice-sdpfrag with the new credentials and
//     If-Match: "*" (RFC 9725, "ICE Restarts"), whose reply's credentials
//     are applied to the previous answer. A 412 or any other failure, or a
//     second Failed, ends the session with Err set.
//   - DELETE of the session URL on Leave (bounded by Leave's context) and
//     when the session ends by itself.
//
// The ETag of the POST (and of a restart's reply) is kept per leg;
// trickle PATCHes send the POST's, while restarts, as RFC 9725 has them,
// match any entity with "*".
//
// # Dependencies
//
// New takes a PeersFunc, called once per Join for a fresh
// meeting.PeerFactory, the same shape as the Janus provider's.
package whip
