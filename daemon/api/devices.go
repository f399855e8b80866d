package api

import (
	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/hal"
)

// ConvertDevices turns HAL devices into their wire form.
func ConvertDevices(devs []hal.Device) []apiv1.Device {
	out := make([]apiv1.Device, 0, len(devs))
	for _, d := range devs {
		out = append(out, ConvertDevice(d))
	}
	return out
}

// ConvertDevice turns one HAL device into its wire form, with the
// capabilities its kind has.
func ConvertDevice(d hal.Device) apiv1.Device {
	info := d.Info()
	out := apiv1.Device{
		ID: info.ID, Kind: apiv1.DeviceKind(info.Kind), Name: info.Name,
		Driver: info.Driver, Simulated: info.Simulated,
	}
	if c, ok := d.(interface{ Modes() []hal.VideoMode }); ok {
		for _, m := range c.Modes() {
			out.VideoModes = append(out.VideoModes, apiv1.VideoMode{Width: m.Width, Height: m.Height, FPS: m.FPS, PixelFormat: string(m.Format)})
		}
	}
	if a, ok := d.(interface{ Formats() []hal.AudioFormat }); ok {
		for _, f := range a.Formats() {
			out.AudioFormats = append(out.AudioFormats, apiv1.AudioFormat{SampleRate: f.SampleRate, Channels: f.Channels})
		}
	}
	if c, ok := d.(interface{ Codecs() []hal.CodecCaps }); ok {
		for _, cc := range c.Codecs() {
			out.Codecs = append(out.Codecs, apiv1.CodecCaps{Codec: string(cc.Codec), MaxWidth: cc.MaxWidth, MaxHeight: cc.MaxHeight, MaxSessions: cc.MaxSessions, Hardware: cc.Hardware})
		}
	}
	if c, ok := d.(hal.Controller); ok {
		for _, ctl := range c.Controls() {
			out.Controls = append(out.Controls, apiv1.Control{ID: string(ctl.ID), Name: ctl.Name, Type: string(ctl.Type), Min: ctl.Min, Max: ctl.Max, Step: ctl.Step, Default: ctl.Default, Value: ctl.Value})
		}
	}
	return out
}
