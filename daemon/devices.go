package daemon

import (
	"context"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/devctl"
	"github.com/atriumroom/atrium/daemon/preview"
	"github.com/atriumroom/atrium/hal"
)

// The api.DeviceSettings half of api.Backend, by delegation.

// Lookup returns the device with a stable ID.
func (s *System) Lookup(id string) (hal.Device, bool) { return s.HAL.Lookup(id) }

// Set sets a device control.
func (s *System) Set(ctx context.Context, devID string, id hal.ControlID, value int64) (hal.Device, error) {
	return s.Settings.Set(ctx, devID, id, value)
}

// Nudge moves a device control by steps.
func (s *System) Nudge(ctx context.Context, devID string, id hal.ControlID, delta int64) (hal.Device, error) {
	return s.Settings.Nudge(ctx, devID, id, delta)
}

// Presets lists a camera's presets.
func (s *System) Presets(devID string) ([]devctl.Preset, error) { return s.Settings.Presets(devID) }

// SavePreset saves a camera's position.
func (s *System) SavePreset(devID, name string) (devctl.Preset, error) {
	return s.Settings.SavePreset(devID, name)
}

// RecallPreset moves a camera to a saved position.
func (s *System) RecallPreset(ctx context.Context, devID, name string) (hal.Device, error) {
	return s.Settings.RecallPreset(ctx, devID, name)
}

// MeasureLevel meters a microphone.
func (s *System) MeasureLevel(ctx context.Context, devID string, window time.Duration) (devctl.Level, error) {
	return s.Settings.MeasureLevel(ctx, devID, window)
}

// DeletePreset removes a saved position.
func (s *System) DeletePreset(devID, name string) error { return s.Settings.DeletePreset(devID, name) }

// AudioSelfTest runs the audio self-test.
func (s *System) AudioSelfTest(ctx context.Context, req apiv1.AudioTestRequest) (apiv1.AudioTestResult, error) {
	return s.audioTester().Run(ctx, req)
}

// inCall says whether a meeting holds the room's devices.
func (s *System) inCall() bool {
	switch s.Meeting.State().State {
	case apiv1.MeetingJoining, apiv1.MeetingConnected, apiv1.MeetingReconnecting:
		return true
	}
	return false
}

// previewCamera finds the camera the admin screen previews: the one named,
// or for "" the one a meeting would use.
func (s *System) previewCamera(id string) (preview.Camera, bool) {
	if id == "" {
		c := s.selector().Choose().Camera
		return c, c != nil
	}
	d, ok := s.HAL.Lookup(id)
	c, isCamera := d.(hal.Camera)
	return c, ok && isCamera
}
