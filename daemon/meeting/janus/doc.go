// Package janus joins Janus VideoRoom meetings (Janus 1.1.x JSON API) as a
// WebRTC guest: it publishes the room's camera and microphone and subscribes
// to every other publisher, signaling with Janus while the media layer
// (meeting.PeerFactory) owns the peer connections.
//
// # Meeting URLs
//
// Explicit forms name the Janus API endpoint themselves:
//
//	janus+wss://host[:port]/path?room=1234&pin=...&display=...   WebSocket API
//	janus+ws://host[:port]/path?room=1234                        WebSocket, unencrypted
//	janus+https://host[:port]/janus?room=1234                    HTTP long poll
//	janus+http://host[:port]/janus?room=1234                     HTTP long poll, unencrypted
//
// The web page form is the link a person opens in a browser:
//
//	https://meet.example.com/<any path>?room=1234
//
// It is matched only for hosts listed in Config.Domains, which say where
// that site's Janus API is. Unencrypted signaling (ws, http) is allowed but
// logged as a warning unless the host is loopback.
//
// room is required: digits make a numeric room id, anything else a string
// id (for servers run with string_ids). pin is the room's PIN, if it has
// one. display is the name other participants see; it defaults to
// Config.DisplayName. Other query parameters are ignored. docs/MEETING-URLS.md has the
// full rules.
//
// # Protocol
//
// One Janus session per meeting: a publisher handle joins the room and
// publishes (the media layer offers, Janus answers), and one multistream
// subscriber handle receives every other publisher (Janus offers, the media
// layer answers; each later "subscribe" or a publisher leaving brings a new
// offer that is answered on the same peer). Requests carry random
// transaction ids and each has its own timeout; a keepalive every 25 s
// keeps the session from Janus's 60 s session timeout. Messages over
// MaxMessageSize end the connection.
//
// Session.SelectVideo (meeting.VideoSelector) makes the subscription
// follow what the kiosk shows: a "configure" with per-stream "send" pauses
// the video streams not shown and resumes them (Janus asks the publisher
// for a keyframe), and "substream"/"temporal" pick the simulcast layer
// that fits the shown height within a downlink budget (video.go has the
// rules). SubscribedStream.Description carries the publisher's stream
// description ("screen"), from the layout's feed_description.
//
// A Session ends by itself, with Err saying why, when the server closes the
// connection, the Janus session times out, the room is destroyed, the room
// is kicked, or a media connection fails for good. A media connection that
// fails is given one ICE restart first: the publisher offers fresh ICE
// credentials in a "configure", the subscriber asks Janus for a fresh offer
// with "configure" and "restart". If the peer is not connected again within
// 15 s, or fails again within 15 s of the restart, the session ends.
package janus
