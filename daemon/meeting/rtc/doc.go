// Package rtc is the media layer of a meeting: it implements
// meeting.PeerFactory and meeting.Peer on pion/webrtc, between the
// providers, which speak SDP, and the HAL's devices and codecs.
//
// A Factory is built for one meeting from a Config and the meeting's Media
// (camera, microphone, speaker, codec factories and sinks). It owns one
// webrtc.API: VP8, H.264 (constrained baseline, packetization-mode 1) and
// Opus with RTX, NACK, PLI, FIR and transport-wide congestion control
// feedback; pion's default interceptors plus Google Congestion Control.
//
// Sending peers (meeting.RoleSend) capture from the camera and the
// microphone once the connection is up, encode with the HAL encoder
// factories in preference order (hardware first; when one fails to open
// or to encode, the next takes over without dropping the call), and send
// at the bitrate GCC allows, capped by Config.MaxVideoBitrate, the remote's
// REMB and the SDP's b=AS/TIAS. PLI and FIR force a keyframe.
//
// Receiving peers (meeting.RoleReceive) reassemble each remote video track
// into encoded frames for the VideoSinks (the kiosk UI decodes them with
// WebCodecs, so nothing is transcoded), hand remote Opus packets to the
// AudioSinks, and decode remote audio, measure its level (for "who is
// speaking") and mix all remote tracks into the speaker.
//
// Every goroutine a Peer starts ends in Peer.Close, which also closes the
// devices and codec sessions the peer opened. The speaker mixer belongs to
// the Factory and runs only while some peer has a remote audio track.
package rtc
