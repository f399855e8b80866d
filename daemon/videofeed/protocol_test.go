package videofeed

import (
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

func TestParseClientMessage(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want clientMessage
	}{
		{`{"type":"keyframe","track":3}`, clientMessage{Type: "keyframe", Track: 3}},
		{`{"type":"keyframe","track":65535,"extra":{"a":1}}`, clientMessage{Type: "keyframe", Track: 65535}},
		{`{"type":"subscribe","tracks":[1,2]}`, clientMessage{Type: "subscribe", Tracks: []uint16{1, 2}}},
		{`{"type":"subscribe","tracks":[]}`, clientMessage{Type: "subscribe", Tracks: []uint16{}}},
		{`{"type":"subscribe","tracks":null}`, clientMessage{Type: "subscribe", All: true}},
		{`{"type":"subscribe"}`, clientMessage{Type: "subscribe", All: true}},
		{` {"type":"subscribe"} `, clientMessage{Type: "subscribe", All: true}},
		{`{"type":"view","tracks":[]}`, clientMessage{Type: "view", Tracks: []uint16{}, Sizes: map[uint16]viewSize{}}},
		{`{"type":"view","tracks":[{"n":3,"width":1280,"height":720},{"n":5,"width":320,"height":180,"x":1}]}`, clientMessage{
			Type: "view", Tracks: []uint16{3, 5}, Sizes: map[uint16]viewSize{3: {1280, 720}, 5: {320, 180}},
		}},
		// A track listed twice: the larger of each side.
		{`{"type":"view","tracks":[{"n":3,"width":640,"height":720},{"n":3,"width":1280,"height":360}]}`, clientMessage{
			Type: "view", Tracks: []uint16{3}, Sizes: map[uint16]viewSize{3: {1280, 720}},
		}},
	} {
		got, err := parseClientMessage([]byte(tc.in))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parse %s = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		``, `null`, `{}`, `[]`, `"keyframe"`, `{"type":null}`, `{"type":1}`, `{"type":"Keyframe","track":1}`,
		`{"type":"keyframe","track":-1}`, `{"type":"keyframe","track":1.5}`, `{"type":"keyframe","track":"1"}`,
		`{"type":"keyframe","track":null}`, `{"type":"subscribe","tracks":[0]}`, `{"type":"subscribe","tracks":[1,"2"]}`,
		`{"type":"subscribe","tracks":{}}`, `{"type":"subscribe"}x`, `{"type":"subscribe"`,
		`{"type":"view"}`, `{"type":"view","tracks":null}`, `{"type":"view","tracks":[1]}`, `{"type":"view","tracks":[{"n":1}]}`,
		`{"type":"view","tracks":[{"n":0,"width":1,"height":1}]}`, `{"type":"view","tracks":[{"n":1,"width":0,"height":1}]}`,
		`{"type":"view","tracks":[{"n":1,"width":10,"height":-1}]}`, `{"type":"view","tracks":[{"n":1,"width":10.5,"height":10}]}`,
		`{"type":"view","tracks":[{"n":1,"width":16385,"height":10}]}`, `{"type":"view","tracks":[{"width":1,"height":1}]}`,
	} {
		if got, err := parseClientMessage([]byte(in)); !errors.Is(err, errMalformed) {
			t.Errorf("parse %s = %+v, %v; want an error", in, got, err)
		}
	}
}

// FuzzClientMessage checks that the parser never panics, that its errors
// fit a close frame, and that what it accepts is valid.
func FuzzClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"keyframe","track":3}`, `{"type":"subscribe","tracks":[1,2]}`, `{"type":"subscribe","tracks":null}`,
		`{"type":"subscribe"}`, `{"type":"x"}`, `{"type":"keyframe","track":1e3}`, `{"type":"view","tracks":[{"n":3,"width":1280,"height":720}]}`, `[]`, `{"type":"\u0000\xff` + strings.Repeat("é", 100) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseClientMessage(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			if r := truncate(err.Error(), maxCloseReason); len(r) > maxCloseReason {
				t.Fatalf("reason of %d bytes", len(r))
			}
			return
		}
		switch m.Type {
		case typeKeyframe:
			if m.Track == 0 {
				t.Fatalf("keyframe for track 0 from %q", b)
			}
		case typeSubscribe:
			if m.All != (m.Tracks == nil) {
				t.Fatalf("subscribe %+v from %q", m, b)
			}
			for _, n := range m.Tracks {
				if n == 0 {
					t.Fatalf("subscribe to track 0 from %q", b)
				}
			}
		case typeView:
			if m.All || len(m.Tracks) != len(m.Sizes) {
				t.Fatalf("view %+v from %q", m, b)
			}
			for _, n := range m.Tracks {
				if s, ok := m.Sizes[n]; n == 0 || !ok || s.Width < 1 || s.Height < 1 || s.Width > maxViewSide || s.Height > maxViewSide {
					t.Fatalf("view %+v from %q", m, b)
				}
			}
		default:
			t.Fatalf("accepted type %q", m.Type)
		}
	})
}

func TestEncodeFrameLimits(t *testing.T) {
	for _, tc := range []struct {
		frame    hal.EncodedFrame
		captured int64
		duration uint32
	}{
		{hal.EncodedFrame{}, 0, 0},
		{hal.EncodedFrame{CapturedAt: time.UnixMicro(-5), Duration: -time.Second}, -5, 0},
		{hal.EncodedFrame{CapturedAt: time.UnixMicro(math.MaxInt64), Duration: 100 * time.Hour}, math.MaxInt64, math.MaxUint32},
	} {
		b := EncodeFrame(65535, tc.frame)
		if len(b) != HeaderSize || b[1] != 0 || binary.BigEndian.Uint16(b[2:]) != 65535 ||
			int64(binary.BigEndian.Uint64(b[4:])) != tc.captured || binary.BigEndian.Uint32(b[12:]) != tc.duration {
			t.Errorf("EncodeFrame(%+v) = % x", tc.frame, b)
		}
	}
}

func TestTruncate(t *testing.T) {
	s := strings.Repeat("é", 100) // 200 bytes
	if got := truncate(s, maxCloseReason); len(got) != 122 || !strings.HasPrefix(s, got) {
		t.Errorf("truncate to %d bytes: %d bytes", maxCloseReason, len(got))
	}
	if got := truncate("short", maxCloseReason); got != "short" {
		t.Errorf("truncate(short) = %q", got)
	}
}
