// Package videofeed is the pipe that carries encoded remote video from the
// media layer to the kiosk UI.
//
// The kiosk's WebKitGTK has WebCodecs' VideoDecoder but no
// RTCPeerConnection, so roomd receives the meeting's video itself
// (daemon/meeting/rtc) and a Feed, installed as one of rtc.Media's
// VideoSinks, forwards every remote video track's encoded frames, as
// received and never transcoded, to the page over a loopback WebSocket.
// The page decodes them. Installed as one of rtc.Media's LocalVideoSinks
// too, it forwards the room's own encoded video, for the self-view.
//
// Three collaborators, all optional, come in Options: Describe says whose a
// track is (the signaling knows, the media layer does not), OnView hears
// which tracks the pages show and at what size (so that the media layer
// receives only those, at that size), and Levels gives each participant's
// audio level (so that the page picks the active speaker).
//
// # Connecting
//
// Feed.Handler is the WebSocket endpoint; the API mounts it at
// GET /api/v1/media/video. Only same-origin pages may connect: a request
// whose Origin header names another host than the request's Host is
// refused with 403 (coder/websocket's default origin check, with no
// OriginPatterns). Requests without an Origin header do not come from a
// browser page (browsers always send one) and are accepted. At most
// MaxClients connections are served at once; further ones are refused
// with 503 and an application/problem+json body, as is every request once
// the Feed is closed. No WebSocket subprotocol and no compression are
// negotiated.
//
// # Server to client: text messages
//
// Control messages are JSON objects with a "type". A track object is
//
//	{"n": 3, "id": "video0", "participant": "4711", "display": "Alice",
//	 "kind": "camera", "peer": "subscriber", "codec": "VP8"}
//
// where n is the track's number (1-65535) in this Feed, id the track ID
// (unique within its peer only), participant the meeting's participant ID
// when Options.Describe knows it (a Janus feed ID; else the media stream
// ID, which one remote participant's camera and microphone share), display
// the participant's name ("" when unknown), kind "camera", "screen" (shared
// content) or "self" (the room's own video, peer "local"), peer the label
// of the peer connection it arrived on, and codec "VP8" or "H264". A number
// names one track for as long as it exists; numbers are handed out in turn,
// so one comes back only after 65535 more tracks. A track whose codec
// changes, or whose description changes (the media server gave its mid to
// another participant's media), is removed and added again under a new
// number. Version 1 clients knew no display and kind: they still work, with
// participant now a participant ID.
//
// Right after connecting the client receives exactly one
//
//	{"type": "tracks", "tracks": [track, ...]}
//
// listing the tracks that exist ([] when none), and then, in order with the
// frames,
//
//	{"type": "track-added", "n": 4, "id": ..., "participant": ..., "peer": ..., "codec": ...}
//	{"type": "track-removed", "n": 4, "id": "video1"}
//
// A track-added always comes before the track's first frame, and no frame
// of a track follows its track-removed. Clients must ignore unknown types
// and unknown fields: later versions may add some.
//
// While Options.Levels is set, every LevelsInterval (250 ms) each client
// receives
//
//	{"type": "levels", "levels": {"4711": -23.5, "4712": -127}}
//
// the audio level of each participant (keyed like the track objects'
// participant) in dBov to a tenth, the loudest of their audio tracks;
// -127 or less is silence. Participants without audio are absent. The
// page chooses the active speaker from them.
//
// # Server to client: binary messages
//
// Each binary message is one encoded frame of one track: a HeaderSize
// (16) byte header, all integers big-endian, then the frame.
//
//	offset size field
//	0      1    version, ProtocolVersion (1); drop messages of other versions
//	1      1    flags: bit 0 (FlagKeyframe) set for a keyframe; other bits 0
//	2      2    track number n (uint16)
//	4      8    capture time, microseconds since the Unix epoch (int64; 0: unknown)
//	12     4    duration in microseconds (uint32; 0: unknown)
//	16     ...  the frame: a VP8 frame, or an H.264 access unit in Annex B
//
// These map onto new EncodedVideoChunk({type: key ? "key" : "delta",
// timestamp: capture time, duration, data}). Capture times fit a
// JavaScript number exactly (DataView.getBigInt64, then Number). For H.264
// configure the VideoDecoder without a description, so that it expects
// Annex B; the media layer negotiates constrained baseline
// ("avc1.42E01F"). For VP8 the codec string is "vp8".
//
// The first frame the client receives of every track, and the first after
// any gap, is a keyframe: frames are dropped for a client (never delayed
// for the others) until the next keyframe whenever its decoder could not
// use them. A client may still receive frames of a track it unsubscribed
// from moments ago, and must drop them.
//
// # Client to server
//
// Text messages of at most MaxClientMessage bytes, each one JSON object:
//
//	{"type": "view", "tracks": [{"n": 3, "width": 1280, "height": 720},
//	                            {"n": 5, "width": 320, "height": 180}]}
//
// says what the client shows: the tracks listed, each at the size of its
// tile in device pixels (integers from 1 to 16384; a page rounds them up
// to a ladder such as 320x180, 640x360, 1280x720 so that small layout
// changes do not count). It replaces the set of tracks whose frames the
// client receives, as subscribe does, and tells the media layer what to
// receive: the Feed calls Options.OnView, ViewDebounce (300 ms) after a
// change, with every video track and the largest size any client shows it
// at (0x0: nobody shows it, so it need not be received at all). Clients
// that sent no view (or a subscribe since) have no say; when no client has
// a view, OnView gets nil, "no preference": the media layer receives
// everything. A track listed twice counts at its larger sizes. Numbers of
// tracks that do not exist (any more) are ignored; a track added later is
// not shown until a view lists it. Until every viewing client has sent a
// view after a track-added, that track is left out of OnView (the media
// layer keeps receiving it as before, rather than pausing it for the
// moment the page needs to lay it out): a client answers each track-added
// with a view, even an unchanged one.
//
//	{"type": "subscribe", "tracks": [3, 4]}
//
// is the version 1 form: the tracks listed at full size, as far as the
// client is concerned, with no say in what the media layer receives. It
// replaces the set of tracks whose frames the client receives. Before the
// first subscribe (or view) the client receives every track, including
// tracks added later; after it, only those listed (not tracks added
// later). "tracks": null or absent returns to every track, [] to none.
// Numbers of tracks that do not exist (any more) are ignored. A newly
// subscribed track starts at a keyframe, which the Feed requests.
//
//	{"type": "keyframe", "track": 3}
//
// asks the track's sender for a keyframe (an RTCP PLI; for the self track,
// the room's own encoder), for a decoder that failed; until the keyframe
// arrives the client receives no frames of the track, so it can reset its
// decoder and wait. Unknown track numbers are ignored.
//
// A message that is not JSON, has an unknown type or fields of the wrong
// type, names track 0 or has a view size out of range closes the
// connection with status 1008 (policy violation) and a reason; a binary
// message closes it with 1003 (unsupported data); a longer message with
// 1009 (message too big).
//
// # Keyframes and backpressure
//
// Frames are never delayed for a client's sake and WriteVideo never waits
// for the network: each client has its own queue, bounded to QueueFrames
// frames and QueueBytes bytes (control messages always fit, though a
// client that lets a thousand pile up is disconnected). When a frame does
// not fit, the client stops receiving that track until a keyframe of it
// fits, and the Feed requests one. A new client, a newly subscribed
// track and a keyframe message also wait for a keyframe, requested at once.
// Requests go to rtc.TrackInfo.RequestKeyframe from the Feed's own
// goroutine, at most one per track per KeyframeInterval whichever client
// asked; one asked for within the interval is sent when it ends, unless a
// keyframe came meanwhile. A client that stops reading falls behind without
// any effect on the others, and is disconnected when a single message has
// waited WriteTimeout to be written.
//
// # Closing
//
// Feed.Close closes every connection with 1001 (going away) and returns when
// all of the Feed's goroutines, including the handlers', have ended: after
// about a second at most, as a client gets that long to answer a close
// (and is cut off then). A handler also ends, with 1001, when its request's
// context ends, and when the client closes the connection.
package videofeed
