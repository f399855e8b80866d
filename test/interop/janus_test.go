package interop

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/swcodec"
	"github.com/atriumroom/atrium/test/guest"
	"github.com/atriumroom/atrium/test/janustest"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// janusRoomURL is the explicit meeting URL of a harness room.
func janusRoomURL(t *testing.T, srv *janustest.Server, room int) string {
	t.Helper()
	u, err := url.Parse(srv.WSURL)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("janus+ws://%s/?room=%d", u.Host, room)
}

func roomctl(t *testing.T, bin string, d *roomdtest.Daemon, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, append([]string{"-socket", d.Socket}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestRoomAndChromiumGuestInJanusRoom is the meeting a room exists for:
// roomctl joins a Janus room by URL, a Chromium guest in that room sees and
// hears the room, the room receives the guest, and leave ends it cleanly.
func TestRoomAndChromiumGuestInJanusRoom(t *testing.T) {
	srv := janustest.Start(t)
	d := roomdtest.Start(t, roomdtest.Options{})
	ctl := roomdtest.Build(t, "./cmd/roomctl")
	ctx := roomdtest.Context(t, 90*time.Second)

	g := guest.Start(t, guest.Options{JanusWS: srv.WSURL, Room: janustest.Room, Display: "Chromium guest"})
	if err := g.WaitJoined(ctx); err != nil {
		t.Fatal(err)
	}

	out, err := roomctl(t, ctl, d, "join", janusRoomURL(t, srv, janustest.Room))
	if err != nil || !strings.Contains(out, "connected") {
		t.Fatalf("roomctl join: %v\n%s\n--- roomd ---\n%s", err, out, d.Log())
	}

	// Within 10 s both ways, as a person in either place would expect.
	media, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	feed, err := g.WaitFeed(media, d.Room, func(f guest.Feed) bool {
		// AudioEnergy grows only with sound: the simulated microphone's tone.
		return f.VideoFramesDecoded > 10 && f.AudioPacketsReceived > 10 && f.AudioEnergy > 0
	})
	if err != nil {
		t.Fatalf("Chromium does not see and hear the room: %v (last: %+v)\n--- roomd ---\n%s", err, feed, d.Log())
	}
	t.Logf("Chromium receives the room: %d frames decoded (%dx%d %s), %d audio packets, audio energy %.3g",
		feed.VideoFramesDecoded, feed.VideoWidth, feed.VideoHeight, feed.Codec, feed.AudioPacketsReceived, feed.AudioEnergy)

	loudest := -127.0 // dBov heard from the guest so far: Chromium's fake microphone beeps
	call, err := waitCall(media, d, func(c *apiv1.Call) error {
		for _, p := range c.Peers {
			for _, r := range p.Recv {
				if r.Kind == "audio" && r.AudioLevel != 0 && r.AudioLevel > loudest {
					loudest = r.AudioLevel
				}
			}
		}
		var guestSeen bool
		for _, p := range c.Participants {
			guestSeen = guestSeen || p.Display == "Chromium guest" && p.Audio && p.Video
		}
		if !guestSeen {
			return errors.New("the guest is not a participant publishing audio and video")
		}
		var video, audio uint64
		for _, p := range c.Peers {
			for _, r := range p.Recv {
				switch r.Kind {
				case "video":
					video += r.Frames
				case "audio":
					audio += r.PacketsReceived
				}
			}
		}
		if video <= 10 || audio <= 10 {
			return fmt.Errorf("received %d video frames and %d audio packets from the guest", video, audio)
		}
		if loudest < -60 {
			return fmt.Errorf("the guest's audio is silent: loudest level %.1f dBov", loudest)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the room does not receive the guest: %v\n%+v", err, call)
	}
	for _, p := range call.Peers {
		t.Logf("roomd peer %s: %s, path %q, encoder %q, sent %+v, received %+v", p.Label, p.State, p.Path, p.Encoder, p.Sent, p.Recv)
	}

	// The kiosk's video feed carries the guest's video, encoded, starting
	// with a keyframe.
	checkVideoFeed(ctx, t, d)

	// The same call, as the event stream reports it every few seconds.
	statsCtx, stopStats := context.WithTimeout(ctx, 2*roomdStatsInterval)
	defer stopStats()
	var statsEvent *apiv1.Call
	_ = d.Client.Events(statsCtx, func(ev apiv1.Event) error {
		var c apiv1.Call
		if ev.Type == apiv1.EventCallStats && json.Unmarshal(ev.Data, &c) == nil && len(c.Peers) > 0 {
			statsEvent = &c
			return errStop
		}
		return nil
	})
	if statsEvent == nil || len(statsEvent.Participants) == 0 {
		t.Errorf("no call.stats event with peers and participants within %s: %+v", 2*roomdStatsInterval, statsEvent)
	}

	checkPrivacySwitches(ctx, t, g, d, ctl)

	out, err = roomctl(t, ctl, d, "leave")
	if err != nil || !strings.Contains(out, "left") {
		t.Fatalf("roomctl leave: %v\n%s", err, out)
	}
	if err := g.WaitFeedGone(ctx, d.Room); err != nil {
		t.Fatalf("the guest still sees the room after leave: %v", err)
	}
	st, err := d.Client.Status(ctx)
	if err != nil || st.Meeting.State != apiv1.MeetingLeft || st.Call != nil {
		t.Fatalf("after leave: %+v %v", st.Meeting, err)
	}
}

// checkVideoFeed reads roomd's video WebSocket as the kiosk would.
func checkVideoFeed(ctx context.Context, t *testing.T, d *roomdtest.Daemon) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ws := "ws" + strings.TrimPrefix(d.URL, "http") + "/api/v1/media/video"
	c, _, err := websocket.Dial(ctx, ws, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", ws, err)
	}
	defer c.CloseNow()
	c.SetReadLimit(8 << 20)
	var tracks struct {
		Type   string `json:"type"`
		Tracks []struct {
			N     int    `json:"n"`
			Codec string `json:"codec"`
		} `json:"tracks"`
	}
	typ, data, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || json.Unmarshal(data, &tracks) != nil || tracks.Type != "tracks" || len(tracks.Tracks) == 0 {
		t.Fatalf("first video feed message: %v %s", err, data)
	}
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("no video frame on the feed: %v", err)
		}
		if typ != websocket.MessageBinary {
			continue
		}
		if len(data) < 17 || data[0] != 1 {
			t.Fatalf("bad frame message: % x", data[:min(len(data), 16)])
		}
		keyframe := data[1]&1 == 1
		captured := time.UnixMicro(int64(binary.BigEndian.Uint64(data[4:12])))
		if !keyframe {
			t.Fatal("the first frame on the feed is not a keyframe")
		}
		if age := time.Since(captured); age < 0 || age > 10*time.Second {
			t.Errorf("frame capture time %v is %v old", captured, age)
		}
		// The frame decodes with roomd's own VP8 decoder into a picture.
		dec, err := swcodec.NewVideoDecoders(nil).NewVideoDecoder(ctx, hal.CodecVP8)
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Close()
		pics, err := dec.Decode(ctx, hal.EncodedFrame{Codec: hal.CodecVP8, Data: data[16:], Keyframe: true})
		if err != nil || len(pics) != 1 || pics[0].Width < 160 || pics[0].Height < 90 {
			t.Fatalf("decode the guest's keyframe: %v (%d pictures)", err, len(pics))
		}
		t.Logf("decoded the guest's video: %dx%d", pics[0].Width, pics[0].Height)
		t.Logf("video feed: %d tracks (%s), first frame %d bytes, keyframe", len(tracks.Tracks), tracks.Tracks[0].Codec, len(data)-16)
		return
	}
}

// roomdStatsInterval is daemon.CallStatsInterval, without importing the daemon.
const roomdStatsInterval = 5 * time.Second

var errStop = errors.New("seen")

// waitCall polls roomd's status until check accepts its call.
func waitCall(ctx context.Context, d *roomdtest.Daemon, check func(*apiv1.Call) error) (*apiv1.Call, error) {
	var last error
	for {
		st, err := d.Client.Status(ctx)
		if err == nil {
			if st.Call == nil {
				last = fmt.Errorf("not in a call: meeting %+v", st.Meeting)
			} else if last = check(st.Call); last == nil {
				return st.Call, nil
			}
		}
		select {
		case <-ctx.Done():
			return st.Call, fmt.Errorf("%w: %v", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// checkPrivacySwitches mutes the room and switches its camera off, and
// checks what the guest's own statistics say it receives: no more audio
// energy (silence), and video at the camera-off card's few frames a
// second; then both back.
func checkPrivacySwitches(ctx context.Context, t *testing.T, g *guest.Guest, d *roomdtest.Daemon, ctl string) {
	t.Helper()
	// over samples the guest's view of the room for a window.
	over := func(window time.Duration) (frames int, energy float64) {
		t.Helper()
		get := func() guest.Feed {
			f, err := g.WaitFeed(ctx, d.Room, func(guest.Feed) bool { return true })
			if err != nil {
				t.Fatalf("guest feed: %v", err)
			}
			return f
		}
		a := get()
		time.Sleep(window)
		b := get()
		return b.VideoFramesDecoded - a.VideoFramesDecoded, b.AudioEnergy - a.AudioEnergy
	}
	for _, args := range [][]string{{"mute", "on"}, {"camera", "off"}} {
		if out, err := roomctl(t, ctl, d, args...); err != nil {
			t.Fatalf("roomctl %v: %v\n%s", args, err, out)
		}
	}
	time.Sleep(time.Second) // what was in flight arrives; the card starts
	frames, energy := over(2 * time.Second)
	t.Logf("muted, camera off: the guest decoded %d frames and %.3g audio energy in 2 s", frames, energy)
	if energy > 1e-6 {
		t.Errorf("the guest still hears the room while it is muted (energy %.3g in 2 s)", energy)
	}
	if frames > 2*5+4 {
		t.Errorf("the guest decoded %d frames in 2 s with the camera off; the card runs at 5 fps", frames)
	}
	if frames == 0 {
		t.Errorf("the guest received no video at all with the camera off; the card should keep the stream")
	}
	for _, args := range [][]string{{"mute", "off"}, {"camera", "on"}} {
		if out, err := roomctl(t, ctl, d, args...); err != nil {
			t.Fatalf("roomctl %v: %v\n%s", args, err, out)
		}
	}
	time.Sleep(time.Second)
	frames, energy = over(2 * time.Second)
	t.Logf("unmuted, camera on: %d frames and %.3g audio energy in 2 s", frames, energy)
	if energy <= 0 || frames <= 2*5+4 { // live video runs well above the card's 5 fps
		t.Errorf("after unmuting and the camera back on, the guest got %d frames and %.3g energy in 2 s", frames, energy)
	}
}
