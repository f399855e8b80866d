package videofeed

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/atriumroom/atrium/hal"
)

// The binary frame message; see the package documentation.
const (
	// HeaderSize is the length of the header before each frame.
	HeaderSize = 16
	// ProtocolVersion is byte 0 of every binary message.
	ProtocolVersion = 1
	// FlagKeyframe is set in byte 1 for a keyframe.
	FlagKeyframe = 0x01
)

// Control message types.
const (
	typeTracks       = "tracks"
	typeTrackAdded   = "track-added"
	typeTrackRemoved = "track-removed"
	typeSubscribe    = "subscribe"
	typeKeyframe     = "keyframe"
	typeView         = "view"
	typeLevels       = "levels"
)

// maxViewSide bounds a view message's width and height: 8K and then some.
const maxViewSide = 16384

// trackJSON describes a track in the tracks and track-added messages.
type trackJSON struct {
	N           uint16 `json:"n"`
	ID          string `json:"id"`
	Participant string `json:"participant"`
	Display     string `json:"display"`
	Kind        string `json:"kind"`
	Peer        string `json:"peer"`
	Codec       string `json:"codec"`
}

type levelsMessage struct {
	Type   string             `json:"type"`
	Levels map[string]float64 `json:"levels"`
}

type tracksMessage struct {
	Type   string      `json:"type"`
	Tracks []trackJSON `json:"tracks"`
}

type trackAddedMessage struct {
	Type string `json:"type"`
	trackJSON
}

type trackRemovedMessage struct {
	Type string `json:"type"`
	N    uint16 `json:"n"`
	ID   string `json:"id"`
}

// EncodeFrame returns the binary message carrying frame as track n: the
// header above, then the frame. The camera preview uses the same framing.
func EncodeFrame(n uint16, frame hal.EncodedFrame) []byte {
	b := make([]byte, HeaderSize+len(frame.Data))
	b[0] = ProtocolVersion
	if frame.Keyframe {
		b[1] = FlagKeyframe
	}
	binary.BigEndian.PutUint16(b[2:4], n)
	var captured int64
	if !frame.CapturedAt.IsZero() {
		captured = frame.CapturedAt.UnixMicro()
	}
	binary.BigEndian.PutUint64(b[4:12], uint64(captured))
	binary.BigEndian.PutUint32(b[12:16], uint32(min(max(frame.Duration.Microseconds(), 0), math.MaxUint32)))
	copy(b[HeaderSize:], frame.Data)
	return b
}

// clientMessage is a parsed client message.
type clientMessage struct {
	Type string
	// Track is the keyframe message's track.
	Track uint16
	// All is a subscribe to every track; otherwise Tracks lists them.
	All    bool
	Tracks []uint16
	// Sizes are a view message's sizes, by track (Tracks lists the same
	// tracks, each once).
	Sizes map[uint16]viewSize
}

// viewSize is the size a client shows a track at, in device pixels.
type viewSize struct{ Width, Height int }

// errMalformed wraps every parse error; its text is the close reason.
var errMalformed = errors.New("malformed message")

// parseClientMessage parses one client text message. Its errors are short
// enough for a close reason.
func parseClientMessage(b []byte) (clientMessage, error) {
	var raw struct {
		Type   *string         `json:"type"`
		Track  json.RawMessage `json:"track"`
		Tracks json.RawMessage `json:"tracks"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return clientMessage{}, fmt.Errorf("%w: want a JSON object with a string type", errMalformed)
	}
	if raw.Type == nil {
		return clientMessage{}, fmt.Errorf("%w: want a JSON object with a string type", errMalformed)
	}
	m := clientMessage{Type: *raw.Type}
	switch m.Type {
	case typeKeyframe:
		if isNull(raw.Track) {
			return clientMessage{}, fmt.Errorf("%w: keyframe without track", errMalformed)
		}
		if err := json.Unmarshal(raw.Track, &m.Track); err != nil || m.Track == 0 {
			return clientMessage{}, fmt.Errorf("%w: track must be a number from 1 to 65535", errMalformed)
		}
	case typeSubscribe:
		if isNull(raw.Tracks) {
			m.All = true
			break
		}
		if err := json.Unmarshal(raw.Tracks, &m.Tracks); err != nil {
			return clientMessage{}, fmt.Errorf("%w: tracks must be null or an array of numbers from 1 to 65535", errMalformed)
		}
		if m.Tracks == nil {
			m.Tracks = []uint16{}
		}
		for _, n := range m.Tracks {
			if n == 0 {
				return clientMessage{}, fmt.Errorf("%w: tracks must be null or an array of numbers from 1 to 65535", errMalformed)
			}
		}
	case typeView:
		var views []struct {
			N      *uint16 `json:"n"`
			Width  *int    `json:"width"`
			Height *int    `json:"height"`
		}
		const want = "tracks must be an array of {n, width, height}: n from 1 to 65535, sizes from 1 to 16384"
		if isNull(raw.Tracks) {
			return clientMessage{}, fmt.Errorf("%w: view without tracks", errMalformed)
		}
		if err := json.Unmarshal(raw.Tracks, &views); err != nil {
			return clientMessage{}, fmt.Errorf("%w: %s", errMalformed, want)
		}
		m.Tracks = []uint16{}
		m.Sizes = map[uint16]viewSize{}
		for _, v := range views {
			if v.N == nil || *v.N == 0 || v.Width == nil || v.Height == nil ||
				*v.Width < 1 || *v.Height < 1 || *v.Width > maxViewSide || *v.Height > maxViewSide {
				return clientMessage{}, fmt.Errorf("%w: %s", errMalformed, want)
			}
			old, seen := m.Sizes[*v.N]
			if !seen {
				m.Tracks = append(m.Tracks, *v.N)
			}
			m.Sizes[*v.N] = viewSize{max(old.Width, *v.Width), max(old.Height, *v.Height)}
		}
	default:
		return clientMessage{}, fmt.Errorf("%w: unknown type %q", errMalformed, truncate(m.Type, 32))
	}
	return m, nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// maxCloseReason is the longest reason a close frame can carry (RFC 6455
// section 5.5: 125 bytes of payload, 2 of them the status code).
const maxCloseReason = 123

// truncate shortens s to at most n bytes without splitting a UTF-8
// sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// sortTracks orders tracks by number.
func sortTracks(ts []trackJSON) {
	slices.SortFunc(ts, func(a, b trackJSON) int { return int(a.N) - int(b.N) })
}
