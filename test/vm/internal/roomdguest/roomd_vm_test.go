//go:build vmguest

package roomdguest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/test/vm"
)

type roomd struct {
	socket string
}

func startRoomd(t *testing.T) *roomd {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "roomd.sock")
	cfg := fmt.Sprintf("[room]\nname = \"VM room\"\n[daemon]\nstate_dir = %q\n[api]\nsocket = %q\nsocket_group = \"\"\nlisten = []\n[hal]\nsimulate = \"never\"\n",
		filepath.Join(dir, "state"), sock)
	cfgPath := filepath.Join(dir, "roomd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := vm.GuestCommand("roomd", "-config", cfgPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("roomd exited with %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("roomd did not stop within 10 s of SIGTERM")
		}
		t.Logf("roomd log:\n%s", log.String())
	})
	// The API opens before the devices are enumerated: wait for READY, as
	// systemd would, so that every test sees the whole device list.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			r := &roomd{socket: sock}
			if out, err := r.ctl(t, "-json", "status"); err == nil {
				var st apiv1.Status
				if json.Unmarshal([]byte(out), &st) == nil && st.State == apiv1.DaemonReady {
					return r
				}
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("roomd exited before its socket appeared: %v\n%s", err, log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("roomd not ready after 20 s\n%s", log.String())
		}
	}
}

func (r *roomd) ctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	argv := vm.GuestCommand("roomctl", append([]string{"-socket", r.socket}, args...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	return string(out), err
}

func (r *roomd) devices(t *testing.T) []apiv1.Device {
	t.Helper()
	out, err := r.ctl(t, "-json", "devices")
	if err != nil {
		t.Fatalf("roomctl -json devices: %v\n%s", err, out)
	}
	var l apiv1.DeviceList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("roomctl -json devices: %v\n%s", err, out)
	}
	return l.Devices
}

func ofKind(devs []apiv1.Device, kind apiv1.DeviceKind) []apiv1.Device {
	var out []apiv1.Device
	for _, d := range devs {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

func ids(devs []apiv1.Device) []string {
	var out []string
	for _, d := range devs {
		out = append(out, d.ID)
	}
	slices.Sort(out)
	return out
}

func control(d apiv1.Device, id string) (apiv1.Control, bool) {
	i := slices.IndexFunc(d.Controls, func(c apiv1.Control) bool { return c.ID == id })
	if i < 0 {
		return apiv1.Control{}, false
	}
	return d.Controls[i], true
}

func TestRoomctlListsRealDevices(t *testing.T) {
	r := startRoomd(t)
	devs := r.devices(t)

	cams := ofKind(devs, apiv1.KindCamera)
	if len(cams) != 2 {
		t.Fatalf("cameras %v, want vivid's two", ids(cams))
	}
	for _, c := range cams {
		if c.Driver != "v4l2" || c.Simulated || !strings.HasPrefix(c.ID, "v4l2:vivid/") || len(c.VideoModes) == 0 {
			t.Errorf("camera %+v", c)
		}
		if b, ok := control(c, "brightness"); !ok || b.Max <= b.Min {
			t.Errorf("camera %s: brightness control %+v", c.ID, b)
		}
	}
	mics, spks := ofKind(devs, apiv1.KindMicrophone), ofKind(devs, apiv1.KindSpeaker)
	for _, want := range []struct {
		devs []apiv1.Device
		id   string
	}{{mics, "alsa:Loopback-pcm0c"}, {spks, "alsa:Loopback-pcm0p"}, {mics, "alsa:Dummy-pcm0c"}, {spks, "alsa:Dummy-pcm0p"}} {
		if !slices.Contains(ids(want.devs), want.id) {
			t.Errorf("no %s among %v", want.id, ids(want.devs))
		}
	}
	for _, s := range spks {
		if s.Driver != "alsa" || s.Simulated || len(s.AudioFormats) == 0 {
			t.Errorf("speaker %+v", s)
		}
		if s.ID == "alsa:Dummy-pcm0p" {
			if _, ok := control(s, "volume"); !ok {
				t.Errorf("the Dummy card's speaker has no volume control: %+v", s.Controls)
			}
		}
	}

	// What an admin reads.
	out, err := r.ctl(t, "devices")
	if err != nil {
		t.Fatalf("roomctl devices: %v\n%s", err, out)
	}
	t.Logf("roomctl devices:\n%s", out)
	for _, want := range []string{"v4l2:vivid/", "alsa:Loopback-pcm0p", "alsa:Dummy-pcm0c", "controls", "H264; VP8", "FWHT (hw)", "v4l2-m2m"} {
		if !strings.Contains(out, want) {
			t.Errorf("roomctl devices lacks %q", want)
		}
	}
}

func TestRoomctlSetsARealControl(t *testing.T) {
	r := startRoomd(t)
	cams := ofKind(r.devices(t), apiv1.KindCamera)
	if len(cams) == 0 {
		t.Fatal("no camera")
	}
	cam := cams[0]
	b, _ := control(cam, "brightness")
	want := b.Min + (b.Max-b.Min)/4
	if out, err := r.ctl(t, "set", cam.ID, "brightness", fmt.Sprint(want)); err != nil {
		t.Fatalf("roomctl set: %v\n%s", err, out)
	}
	d, err := r.ctl(t, "-json", "device", cam.ID)
	var got apiv1.Device
	if err != nil || json.Unmarshal([]byte(d), &got) != nil {
		t.Fatalf("roomctl device: %v\n%s", err, d)
	}
	if c, _ := control(got, "brightness"); c.Value != want {
		t.Errorf("brightness reads back %d, want %d", c.Value, want)
	}
	if out, err := r.ctl(t, "set", cam.ID, "brightness", fmt.Sprint(b.Max+1)); err == nil || !strings.Contains(out, "out of range") {
		t.Errorf("set beyond the range: %v\n%s", err, out)
	}
}

func TestRoomdFollowsHotplug(t *testing.T) {
	r := startRoomd(t)
	before := ids(ofKind(r.devices(t), apiv1.KindCamera))
	if len(before) != 2 {
		t.Fatalf("cameras %v", before)
	}
	waitCameras := func(what string, n int) []string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := ids(ofKind(r.devices(t), apiv1.KindCamera))
			if len(got) == n {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: cameras %v after 5 s", what, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// rmmod, not modprobe -r: see test/vm's documentation.
	if out, err := exec.Command("rmmod", "vivid").CombinedOutput(); err != nil {
		t.Fatalf("rmmod vivid: %v\n%s", err, out)
	}
	reloaded := false
	t.Cleanup(func() {
		if !reloaded {
			_ = exec.Command("modprobe", "vivid").Run()
		}
	})
	waitCameras("after rmmod vivid", 0)
	if out, err := exec.Command("modprobe", "vivid").CombinedOutput(); err != nil {
		t.Fatalf("modprobe vivid: %v\n%s", err, out)
	}
	reloaded = true
	if after := waitCameras("after modprobe vivid", 2); !slices.Equal(after, before) {
		t.Errorf("camera IDs changed across the replug: %v, then %v", before, after)
	}
}
