package interop

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/test/guest"
	"github.com/atriumroom/atrium/test/janustest"
	"github.com/atriumroom/atrium/test/roomdtest"
	"github.com/atriumroom/atrium/test/turntest"
)

// firewalledCall is a Janus room with a publishing Chromium guest, and a
// roomd in a room whose firewall drops all UDP (turntest.Room): the guest,
// Janus and the TURN server share the test namespace, roomd reaches them
// over the room's link.
type firewalledCall struct {
	janus *janustest.Server
	room  *turntest.Room
	guest *guest.Guest
	roomd *roomdtest.Daemon
	ctl   string
	// url is the meeting URL as the room sees it: Janus's loopback-only
	// WebSocket API, forwarded onto the room's link.
	url string
}

// startFirewalledCall starts everything but the join. edit adjusts roomd's
// configuration; env adds to its environment.
func startFirewalledCall(ctx context.Context, t *testing.T, edit func(*config.Config), env ...string) *firewalledCall {
	t.Helper()
	c := &firewalledCall{janus: janustest.Start(t), room: turntest.Firewalled(t)}
	ws, err := url.Parse(c.janus.WSURL)
	if err != nil {
		t.Fatal(err)
	}
	c.url = fmt.Sprintf("janus+ws://%s/?room=%d", c.room.Forward(t, ws.Host), janustest.Room)

	c.guest = guest.Start(t, guest.Options{JanusWS: c.janus.WSURL, Room: janustest.Room, Display: "Chromium guest"})
	if err := c.guest.WaitJoined(ctx); err != nil {
		t.Fatal(err)
	}

	c.ctl = roomdtest.Build(t, "./cmd/roomctl")
	c.roomd = roomdtest.Launch(t, c.room.Wrap(t, roomdtest.Build(t, "./cmd/roomd")), roomdtest.Options{Config: edit, Env: env})
	if err := c.roomd.WaitReady(roomdtest.ReadyTimeout); err != nil {
		t.Fatalf("roomd in the firewalled room did not become ready: %v\n--- roomd ---\n%s", err, c.roomd.Log())
	}
	return c
}

// join runs roomctl join in the room and returns its output.
func (c *firewalledCall) join(t *testing.T) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(c.ctl, "-socket", c.roomd.Socket, "join", c.url)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// turnCredential writes the TURN password to a file only its owner may read,
// as roomd requires.
func turnCredential(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "turn-credential")
	if err := os.WriteFile(path, []byte(turntest.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFirewalledRoomJoinsOverTURN is the firewalled room: no UDP leaves it,
// roomd is relay-only with a TURN server, and the call still connects, over
// TURN/TCP and over TURN/TLS. Each configuration also lists the server's
// UDP URL first, as a real one would: it must fail over to TCP or TLS.
func TestFirewalledRoomJoinsOverTURN(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  func(*turntest.Server) string
		path string
	}{
		{"tcp", func(s *turntest.Server) string { return s.TCPURL }, "relay tcp"},
		{"tls", func(s *turntest.Server) string { return s.TLSURL }, "relay tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := roomdtest.Context(t, 120*time.Second)
			turn := turntest.Start(t, turntest.Options{})
			cred := turnCredential(t)
			c := startFirewalledCall(ctx, t, func(cfg *config.Config) {
				cfg.Meeting.RelayOnly = true
				cfg.Meeting.ICEServers = []config.ICEServer{{
					URLs:           []string{turn.UDPURL, tc.url(turn)},
					Username:       turntest.Username,
					CredentialFile: cred,
				}}
				// The UDP URL costs each peer its ICE gathering timeout.
				cfg.Meeting.SetupTimeout = config.Duration{Duration: 30 * time.Second}
				// roomd trusts the test CA for turns: through Go's system
				// roots, as a device would trust its CA store.
			}, "SSL_CERT_FILE="+turn.CAFile)

			start := time.Now()
			out, err := c.join(t)
			if err != nil || !strings.Contains(out, "connected") {
				t.Fatalf("roomctl join: %v\n%s\n--- roomd ---\n%s", err, out, c.roomd.Log())
			}
			t.Logf("joined in %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))

			media, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			feed, err := c.guest.WaitFeed(media, c.roomd.Room, func(f guest.Feed) bool { return f.VideoFramesDecoded > 10 })
			if err != nil {
				t.Fatalf("Chromium does not see the room through TURN/%s: %v (last: %+v)\n--- firewall ---\n%s\n--- roomd ---\n%s",
					tc.name, err, feed, c.room.Rules(), c.roomd.Log())
			}
			t.Logf("Chromium receives the room: %d frames decoded (%dx%d %s), %d audio packets",
				feed.VideoFramesDecoded, feed.VideoWidth, feed.VideoHeight, feed.Codec, feed.AudioPacketsReceived)

			call, err := waitFirewalledCall(media, c.roomd, func(call *apiv1.Call) error {
				if len(call.Peers) < 2 {
					return fmt.Errorf("%d peers, want a publisher and a subscriber", len(call.Peers))
				}
				for _, p := range call.Peers {
					if p.State != "connected" || p.Path != tc.path {
						return fmt.Errorf("peer %s: %s over %q, want connected over %q", p.Label, p.State, p.Path, tc.path)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("roomd's peers: %v\n%+v", err, call)
			}
			for _, p := range call.Peers {
				t.Logf("roomd peer %s: %s, path %q, sent %+v, received %+v", p.Label, p.State, p.Path, p.Sent, p.Recv)
			}
			// The firewall was in the way: roomd's gathering tried the UDP URL.
			if n := c.room.DroppedUDP(t); n == 0 {
				t.Errorf("the firewall dropped no UDP: is it in the path?\n%s", c.room.Rules())
			}
		})
	}
}

// TestFirewalledRoomWithoutTURNFails proves the firewall bites: without a
// TURN server roomd's media cannot reach Janus (the firewall counts the
// UDP it drops), and once the firewall lets UDP through the same roomd
// joins the same room over its host address.
func TestFirewalledRoomWithoutTURNFails(t *testing.T) {
	ctx := roomdtest.Context(t, 120*time.Second)
	c := startFirewalledCall(ctx, t, func(cfg *config.Config) {
		cfg.Meeting.RelayOnly = false
		cfg.Meeting.ICEServers = nil
	})

	// Signalling goes over TCP and succeeds; media never flows, and roomd
	// gives the meeting up after its media timeout.
	out, err := c.join(t)
	t.Logf("join through the firewall: %v: %s", err, strings.TrimSpace(out))
	failed, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var st apiv1.Status
	for st.Meeting.State != apiv1.MeetingFailed {
		select {
		case <-failed.Done():
			t.Fatalf("the meeting did not fail through the firewall: %+v %+v\n--- firewall ---\n%s", st.Meeting, st.Call, c.room.Rules())
		case <-time.After(250 * time.Millisecond):
		}
		st, _ = c.roomd.Client.Status(failed)
	}
	t.Logf("through the firewall: %s (%s)", st.Meeting.State, st.Meeting.Reason)
	stats, err := c.guest.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range stats.RemoteFeeds {
		if f.Display == c.roomd.Room && f.VideoFramesDecoded > 0 {
			t.Fatalf("Chromium saw the room although no UDP leaves it: %+v", f)
		}
	}
	if n := c.room.DroppedUDP(t); n == 0 {
		t.Fatalf("the firewall dropped no UDP, so something else stopped the call\n%s", c.room.Rules())
	} else {
		t.Logf("the firewall dropped %d UDP packets", n)
	}

	c.room.AllowUDP(t)
	out, err = c.join(t)
	if err != nil || !strings.Contains(out, "connected") {
		t.Fatalf("roomctl join with UDP allowed: %v\n%s\n--- roomd ---\n%s", err, out, c.roomd.Log())
	}
	media, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if feed, err := c.guest.WaitFeed(media, c.roomd.Room, func(f guest.Feed) bool { return f.VideoFramesDecoded > 10 }); err != nil {
		t.Fatalf("with UDP allowed, Chromium does not see the room: %v (last: %+v)\n--- roomd ---\n%s", err, feed, c.roomd.Log())
	}
	call, err := waitFirewalledCall(media, c.roomd, func(call *apiv1.Call) error {
		if len(call.Peers) < 2 {
			return fmt.Errorf("%d peers, want a publisher and a subscriber", len(call.Peers))
		}
		for _, p := range call.Peers {
			if p.State != "connected" || p.Path != "host udp" {
				return fmt.Errorf("peer %s: %s over %q, want connected over \"host udp\"", p.Label, p.State, p.Path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("roomd's peers with UDP allowed: %v\n%+v", err, call)
	}
}

// waitFirewalledCall polls roomd's status until check accepts its call.
func waitFirewalledCall(ctx context.Context, d *roomdtest.Daemon, check func(*apiv1.Call) error) (*apiv1.Call, error) {
	var last error
	var call *apiv1.Call
	for {
		st, err := d.Client.Status(ctx)
		switch {
		case err != nil:
			last = err
		case st.Call == nil:
			last = fmt.Errorf("not in a call: meeting %+v", st.Meeting)
		default:
			call = st.Call
			if last = check(call); last == nil {
				return call, nil
			}
		}
		select {
		case <-ctx.Done():
			return call, fmt.Errorf("%w: %v", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
