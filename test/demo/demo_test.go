// Package demo tests `make run`'s Demo meeting end to end: the built
// atrium-demo (Janus with a simulated guest, and its calendar) and the built
// roomd reading that calendar, joined through the agenda's Join. It runs in
// its own network namespace (test/netns), so media stays inside the test.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/internal/demo"
	"github.com/atriumroom/atrium/test/netns"
	"github.com/atriumroom/atrium/test/roomdtest"
	"github.com/atriumroom/atrium/test/syncbuf"
)

func TestMain(m *testing.M) { netns.Main(m) }

// TestDemoMeeting joins the Demo meeting from the agenda and checks that
// roomd receives the guest's video and audio.
func TestDemoMeeting(t *testing.T) {
	bin := roomdtest.Build(t, "./cmd/atrium-demo")
	dir := roomdtest.ShortTempDir(t)
	var out syncbuf.Buffer
	cmd := exec.Command(bin, "-dir", dir, "-ice-addr", netns.Addr)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("atrium-demo exited with %v after SIGINT\n%s", err, out.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("atrium-demo did not stop within 15 s of SIGINT\n%s", out.String())
		}
		if _, err := os.Stat(filepath.Join(dir, demo.CalendarFile)); err == nil {
			t.Errorf("atrium-demo left its calendar behind")
		}
	})

	cal := filepath.Join(dir, demo.CalendarFile)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(cal); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("atrium-demo exited before its calendar appeared: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no calendar from atrium-demo within 30 s\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	d := roomdtest.Start(t, roomdtest.Options{Config: func(c *config.Config) { c.Calendar.File = cal }})
	ctx := roomdtest.Context(t, 60*time.Second)

	var agenda apiv1.Agenda
	var id string
	for id == "" {
		if err := call(ctx, http.MethodGet, d.URL+"/api/v1/calendar", nil, &agenda); err != nil {
			t.Fatalf("GET /calendar: %v\n%s", err, d.Log())
		}
		for _, m := range agenda.Meetings {
			switch m.Title {
			case demo.MeetingTitle:
				if !m.Joinable {
					t.Fatalf("Demo meeting not joinable: %+v", m)
				}
				id = m.ID
			case demo.ZoomTitle:
				if m.Joinable || !strings.Contains(strings.ToLower(m.Provider+m.Reason), "zoom") {
					t.Errorf("the Zoom meeting should be named and not joinable: %+v", m)
				}
			case demo.CancelledTitle:
				if !m.Cancelled {
					t.Errorf("the cancelled meeting is not marked cancelled: %+v", m)
				}
			}
		}
		if id == "" {
			if ctx.Err() != nil {
				t.Fatalf("no Demo meeting in the agenda: %+v", agenda)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	var joined apiv1.Meeting
	if err := call(ctx, http.MethodPost, d.URL+"/api/v1/calendar/join", apiv1.CalendarJoinRequest{ID: id}, &joined); err != nil {
		t.Fatalf("POST /calendar/join: %v\n%s", err, d.Log())
	}

	// The guest's media, as roomd reports it.
	var video, audio apiv1.ReceivedTrack
	var guest apiv1.Participant
	for {
		st, err := d.Client.Status(ctx)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if st.Call != nil {
			for _, p := range st.Call.Participants {
				if p.Display == demo.GuestName {
					guest = p
				}
			}
			for _, p := range st.Call.Peers {
				for _, r := range p.Recv {
					switch r.Kind {
					case "video":
						video = r
					case "audio":
						audio = r
					}
				}
			}
		}
		if video.Frames > 10 && audio.PacketsReceived > 50 && audio.AudioLevel > -60 && audio.AudioLevel != 0 {
			t.Logf("guest %q: video %s %d frames, %d packets; audio %s %d packets, level %.1f dBov",
				guest.Display, video.Codec, video.Frames, video.PacketsReceived, audio.Codec, audio.PacketsReceived, audio.AudioLevel)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no media from the guest: guest %+v, video %+v, audio %+v\n--- roomd ---\n%s\n--- atrium-demo ---\n%s",
				guest, video, audio, d.Log(), out.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	if guest.Display == "" {
		t.Errorf("%q is not among the participants", demo.GuestName)
	}
}

// call sends a JSON request to roomd's loopback listener.
func call(ctx context.Context, method, url string, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, b.String())
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
