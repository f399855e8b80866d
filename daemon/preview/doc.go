// Package preview is the admin screen's live camera preview: one camera,
// captured at a small mode, encoded to VP8 and sent to the kiosk over a
// WebSocket, so that whoever sets the room up sees what the camera sees
// before a meeting does.
//
// The kiosk's WebKitGTK has no getUserMedia, so the page cannot open the
// camera itself; and roomd owns the cameras anyway. The preview therefore
// speaks the same binary framing as the in-call video feed
// (daemon/videofeed), and the page decodes it with the same WebCodecs
// VideoDecoder code.
//
// # Connecting
//
// Preview.Handler is the endpoint; the API mounts it at
// GET /api/v1/media/preview?camera=<device id>. An empty or absent camera
// means the camera a meeting would use, as Options.Camera resolves it.
// This package does not check the admin session: the API's wrapper does,
// because only it knows which listener a request came in on. Browsers
// cannot set headers on a WebSocket handshake, so the page sends its admin
// token in the query parameter TokenParam ("admin"); AdminToken reads it
// from there or from the X-Atrium-Admin header.
//
// Only same-origin pages may connect (the rule of coder/websocket's
// default origin check: an Origin naming another host than Host is
// refused; requests without Origin do not come from a page and are
// accepted).
//
// Before the upgrade the handler answers an application/problem+json error
// and opens nothing when it cannot preview:
//
//	426  not a WebSocket handshake
//	403  from a page of another origin
//	409  the room is in a meeting: "camera in use by the meeting"
//	404  no such camera (or no camera at all for "")
//	422  the camera has no mode the preview can use
//	503  the camera or the encoder failed to open, or the Preview is closed
//
// # Messages
//
// Server to client, first one text message:
//
//	{"type": "preview", "camera": "<id>", "codec": "VP8", "width": 640, "height": 360, "fps": 15}
//
// then one binary message per encoded frame, with exactly the videofeed
// framing: a videofeed.HeaderSize (16) byte header, big-endian, then the
// VP8 frame.
//
//	offset size field
//	0      1    version, videofeed.ProtocolVersion (1)
//	1      1    flags: bit 0 (videofeed.FlagKeyframe) for a keyframe
//	2      2    track number: always TrackNumber (1)
//	4      8    capture time, microseconds since the Unix epoch (0: unknown)
//	12     4    duration in microseconds (0: unknown)
//	16     ...  the VP8 frame
//
// The first frame is a keyframe, and one follows at least every
// KeyframeInterval, so a page whose decoder failed recovers by waiting.
// The client sends nothing; a data message from it closes the connection
// with 1008 (policy violation).
//
// # One preview at a time
//
// A camera can usually be opened once, and a preview costs an encoder, so
// at most one preview runs: a new request ends the one in progress (closed
// with 1001 and the reason "replaced by another preview") and waits until
// its camera is closed before opening. A preview also ends with 1001 when
// the room joins a meeting (Options.InCall turns true, or Stop is called),
// with 1011 when the camera is unplugged or fails, and when the client
// goes away. Capture stops as soon as the preview ends: nothing runs
// while no page watches. Stop and Close return once the camera is closed,
// which takes at most a frame's capture and encode plus a write that may
// wait up to 2 s for a page that stopped reading.
package preview
