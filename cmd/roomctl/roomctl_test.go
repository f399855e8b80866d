package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

func runCtl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := func(k string) string {
		if k == "ATRIUM_SOCKET" {
			return filepath.Join(t.TempDir(), "absent.sock")
		}
		return ""
	}
	code := run(context.Background(), args, &out, &errOut, env)
	return out.String(), errOut.String(), code
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "usage: roomctl"},
		{[]string{"-h"}, exitOK, "Exit codes"},
		{[]string{"-nope"}, exitUsage, "flag provided but not defined"},
		{[]string{"dance"}, exitUsage, `unknown command "dance"`},
		{[]string{"join"}, exitUsage, "exactly one URL"},
		{[]string{"join", "a", "b"}, exitUsage, "exactly one URL"},
		{[]string{"status", "extra"}, exitUsage, "unexpected arguments"},
		{[]string{"status"}, exitUnreachable, "is roomd running?"},
		{[]string{"-url", "http://127.0.0.1:1", "devices"}, exitUnreachable, "not reachable"},
	}
	for _, c := range cases {
		_, errOut, code := runCtl(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("roomctl %q: exit %d, stderr %q; want exit %d with %q", c.args, code, errOut, c.code, c.want)
		}
	}
}

func TestDescriptions(t *testing.T) {
	m := apiv1.Meeting{State: apiv1.MeetingFailed, URL: "https://m.example/r", Provider: "janus", Reason: "timed out"}
	if got, want := describeMeeting(m), "failed https://m.example/r via janus (timed out)"; got != want {
		t.Errorf("describeMeeting = %q, want %q", got, want)
	}
	cam := apiv1.Device{
		Kind:       apiv1.KindCamera,
		VideoModes: []apiv1.VideoMode{{Width: 1280, Height: 720, FPS: 30, PixelFormat: "I420"}, {Width: 640, Height: 360, FPS: 30, PixelFormat: "I420"}},
		Controls:   make([]apiv1.Control, 11),
	}
	if got, want := capabilities(cam), "1280x720@30 I420 +1 modes; 11 controls"; got != want {
		t.Errorf("capabilities = %q, want %q", got, want)
	}
	enc := apiv1.Device{Codecs: []apiv1.CodecCaps{{Codec: "H264", Hardware: true}, {Codec: "VP8"}}}
	if got, want := capabilities(enc), "H264 (hw); VP8"; got != want {
		t.Errorf("capabilities = %q, want %q", got, want)
	}
	sum := summarizeDevices([]apiv1.Device{
		{Kind: apiv1.KindSpeaker, Name: "S", Simulated: true},
		{Kind: apiv1.KindCamera, Name: "C"},
	})
	if want := "camera: C; speaker: S (simulated)"; sum != want {
		t.Errorf("summarizeDevices = %q, want %q", sum, want)
	}
}
