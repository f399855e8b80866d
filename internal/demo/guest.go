package demo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"

	"github.com/pion/webrtc/v4"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/meeting/janus"
	"github.com/atriumroom/atrium/daemon/meeting/rtc"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
	"github.com/atriumroom/atrium/hal/swcodec"
)

// GuestName is the far end's display name in the meeting.
const GuestName = "Demo guest"

// joinGuest joins the far end: roomd's own Janus provider and media layer,
// sending the simulated camera and microphone through the software
// encoders. It gathers ICE candidates on iceAddr only, as Janus does.
func joinGuest(ctx context.Context, meetingURL string, iceAddr net.IP, cam sim.Config, logger *slog.Logger) (meeting.Session, error) {
	devices, err := sim.New(cam)
	if err != nil {
		return nil, fmt.Errorf("demo: simulated devices: %w", err)
	}
	peers := func(context.Context) (meeting.PeerFactory, error) {
		media := rtc.Media{
			Camera:        devices.Camera(),
			Microphone:    devices.Microphone(),
			VideoEncoders: []hal.VideoEncoderFactory{swcodec.NewVideoEncoders(logger)},
			AudioEncoders: []hal.AudioEncoderFactory{swcodec.NewAudioEncoders(logger)},
		}
		f, err := rtc.New(rtc.Config{
			Width: cam.CameraWidth, Height: cam.CameraHeight, FPS: cam.CameraFPS,
			Logger: logger,
			SettingEngine: func(se *webrtc.SettingEngine) {
				se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
				se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(iceAddr) })
			},
		}, media)
		if err != nil {
			return nil, fmt.Errorf("demo: guest media: %w", err)
		}
		return f, nil
	}
	p, err := janus.New(janus.Config{DisplayName: GuestName}, peers, logger)
	if err != nil {
		return nil, fmt.Errorf("demo: guest: %w", err)
	}
	u, err := url.Parse(meetingURL)
	if err != nil {
		return nil, fmt.Errorf("demo: guest: %w", err)
	}
	s, err := p.Join(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("demo: guest join %s: %w", meetingURL, err)
	}
	return s, nil
}
