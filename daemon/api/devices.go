package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/devctl"
	"github.com/atriumroom/atrium/daemon/selftest"
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
		Driver: info.Driver, Simulated: info.Simulated, EchoCancelled: info.EchoCancelled,
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

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) {
	d, ok := s.backend.Lookup(r.PathValue("id"))
	if !ok {
		s.deviceProblem(w, r, fmt.Errorf("device %q: %w", r.PathValue("id"), hal.ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, ConvertDevice(d))
}

func (s *Server) putControl(w http.ResponseWriter, r *http.Request) {
	var req apiv1.ControlChange
	if !s.decode(w, r, &req, true) {
		return
	}
	if (req.Value == nil) == (req.Delta == nil) {
		s.problem(w, r, http.StatusBadRequest, apiv1.ProblemBadRequest, "Invalid control change",
			"send exactly one of value (absolute) or delta (steps)", "value")
		return
	}
	id, ctl := r.PathValue("id"), hal.ControlID(r.PathValue("control"))
	var (
		d   hal.Device
		err error
	)
	if req.Value != nil {
		d, err = s.backend.Set(r.Context(), id, ctl, *req.Value)
	} else {
		d, err = s.backend.Nudge(r.Context(), id, ctl, *req.Delta)
	}
	if err != nil {
		s.deviceProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ConvertDevice(d))
}

func (s *Server) getPresets(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := s.backend.Lookup(id); !ok {
		s.deviceProblem(w, r, fmt.Errorf("device %q: %w", id, hal.ErrNotFound))
		return
	}
	ps, err := s.backend.Presets(id)
	if err != nil {
		s.deviceProblem(w, r, err)
		return
	}
	out := apiv1.PresetList{Presets: make([]apiv1.Preset, 0, len(ps))}
	for _, p := range ps {
		out.Presets = append(out.Presets, convertPreset(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) putPreset(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if !s.decode(w, r, &req, false) {
		return
	}
	p, err := s.backend.SavePreset(r.PathValue("id"), r.PathValue("name"))
	if err != nil {
		s.deviceProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, convertPreset(p))
}

func (s *Server) postRecallPreset(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if !s.decode(w, r, &req, false) {
		return
	}
	d, err := s.backend.RecallPreset(r.Context(), r.PathValue("id"), r.PathValue("name"))
	if err != nil {
		s.deviceProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ConvertDevice(d))
}

func (s *Server) deletePreset(w http.ResponseWriter, r *http.Request) {
	if err := s.backend.DeletePreset(r.PathValue("id"), r.PathValue("name")); err != nil {
		s.deviceProblem(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// defaultLevelWindow is long enough to catch a spoken syllable, short
// enough for a settings page to poll.
const defaultLevelWindow = 500 * time.Millisecond

func (s *Server) getLevel(w http.ResponseWriter, r *http.Request) {
	window := defaultLevelWindow
	if v := r.URL.Query().Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.problem(w, r, http.StatusBadRequest, apiv1.ProblemBadRequest, "Invalid window",
				fmt.Sprintf("window %q is not a duration such as 500ms", v), "window")
			return
		}
		window = d
	}
	lvl, err := s.backend.MeasureLevel(r.Context(), r.PathValue("id"), window)
	if errors.Is(err, hal.ErrOutOfRange) {
		s.problem(w, r, http.StatusUnprocessableEntity, apiv1.ProblemInvalidValue, "Invalid window", err.Error(), "window")
		return
	}
	if err != nil {
		s.deviceProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.AudioLevel{RMSdBFS: lvl.RMS, PeakdBFS: lvl.Peak, WindowMs: int(lvl.Window / time.Millisecond)})
}

func convertPreset(p devctl.Preset) apiv1.Preset {
	out := apiv1.Preset{Name: p.Name, Values: make(map[string]int64, len(p.Values))}
	for k, v := range p.Values {
		out.Values[string(k)] = v
	}
	return out
}

// deviceProblem maps HAL and devctl errors to statuses: what does not exist
// is 404, values the device cannot take are 422, a device that went away
// mid-request is 409, anything else is the device failing (502).
func (s *Server) deviceProblem(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, hal.ErrNotFound):
		s.problem(w, r, http.StatusNotFound, apiv1.ProblemNotFound, "No such device", err.Error(), "id")
	case errors.Is(err, hal.ErrUnknownControl):
		s.problem(w, r, http.StatusNotFound, apiv1.ProblemNotFound, "No such control", err.Error(), "control")
	case errors.Is(err, devctl.ErrNoPreset):
		s.problem(w, r, http.StatusNotFound, apiv1.ProblemNotFound, "No such preset", err.Error(), "name")
	case errors.Is(err, hal.ErrOutOfRange):
		s.problem(w, r, http.StatusUnprocessableEntity, apiv1.ProblemInvalidValue, "Value out of range", err.Error(), "value")
	case errors.Is(err, devctl.ErrInvalidPreset):
		s.problem(w, r, http.StatusUnprocessableEntity, apiv1.ProblemInvalidValue, "Invalid preset", err.Error(), "name")
	case errors.Is(err, devctl.ErrNotPTZ), errors.Is(err, devctl.ErrNotControllable), errors.Is(err, devctl.ErrNotMicrophone):
		s.problem(w, r, http.StatusUnprocessableEntity, apiv1.ProblemInvalidValue, "Not possible on this device", err.Error(), "id")
	case errors.Is(err, hal.ErrUnplugged):
		s.problem(w, r, http.StatusConflict, apiv1.ProblemUnavailable, "Device unplugged", err.Error(), "id")
	case errors.Is(err, hal.ErrBusy):
		s.problem(w, r, http.StatusConflict, apiv1.ProblemUnavailable, "Device busy",
			err.Error()+" (in a call, the call statistics carry its level)", "id")
	default:
		s.logger.Warn("device request failed", "path", r.URL.Path, "err", err)
		s.problem(w, r, http.StatusBadGateway, apiv1.ProblemUnavailable, "The device refused", err.Error(), "")
	}
}

func (s *Server) postAudioSelfTest(w http.ResponseWriter, r *http.Request) {
	var req apiv1.AudioTestRequest
	if !s.decode(w, r, &req, false) {
		return
	}
	res, err := s.backend.AudioSelfTest(r.Context(), req)
	switch {
	case errors.Is(err, selftest.ErrInCall):
		s.problem(w, r, http.StatusConflict, apiv1.ProblemUnavailable, "In a meeting", err.Error(), "")
	case errors.Is(err, selftest.ErrNoAudioPair):
		s.problem(w, r, http.StatusUnprocessableEntity, apiv1.ProblemInvalidValue, "Nothing to test", err.Error(), "")
	case errors.Is(err, hal.ErrNotFound):
		field := "speaker"
		if strings.HasPrefix(err.Error(), "microphone") {
			field = "microphone"
		}
		s.problem(w, r, http.StatusNotFound, apiv1.ProblemNotFound, "No such device", err.Error(), field)
	case err != nil:
		s.deviceProblem(w, r, err)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}
