package devsel

import (
	"context"
	"testing"

	"github.com/atriumroom/atrium/hal"
)

type dev struct{ info hal.Info }

func (d dev) Info() hal.Info { return d.info }

type cam struct{ dev }

func (cam) Controls() []hal.Control                                      { return nil }
func (cam) SetControl(context.Context, hal.ControlID, int64) error       { return nil }
func (cam) Modes() []hal.VideoMode                                       { return nil }
func (cam) Open(context.Context, hal.VideoMode) (hal.VideoStream, error) { return nil, nil }

type mic struct{ dev }

func (mic) Formats() []hal.AudioFormat                                      { return nil }
func (mic) Open(context.Context, hal.AudioFormat) (hal.AudioCapture, error) { return nil, nil }

type spk struct{ dev }

func (spk) Formats() []hal.AudioFormat                                       { return nil }
func (spk) Open(context.Context, hal.AudioFormat) (hal.AudioPlayback, error) { return nil, nil }

type list []hal.Device

func (l *list) Devices() []hal.Device { return *l }

func newCam(id string, simulated bool) cam {
	return cam{dev{hal.Info{ID: id, Kind: hal.KindCamera, Simulated: simulated}}}
}

func id(d hal.Device) string {
	if d == nil {
		return "<nil>"
	}
	return d.Info().ID
}

func TestChoose(t *testing.T) {
	devs := list{
		newCam("sim:camera", true),
		newCam("usb-1", false),
		newCam("usb-2", false),
		mic{dev{hal.Info{ID: "alsa:mic", Kind: hal.KindMicrophone}}},
		mic{dev{hal.Info{ID: "pw:ec-source", Kind: hal.KindMicrophone, EchoCancelled: true}}},
		spk{dev{hal.Info{ID: "sim:speaker", Kind: hal.KindSpeaker, Simulated: true}}},
		spk{dev{hal.Info{ID: "alsa:spk", Kind: hal.KindSpeaker}}},
		spk{dev{hal.Info{ID: "pw:ec-sink", Kind: hal.KindSpeaker, EchoCancelled: true}}},
	}
	for _, tc := range []struct {
		name          string
		pins          Pins
		cam, mic, spk string
	}{
		{"defaults: real first, echo-cancelled audio first", Pins{}, "usb-1", "pw:ec-source", "pw:ec-sink"},
		{"pins win", Pins{Camera: "usb-2", Microphone: "alsa:mic", Speaker: "sim:speaker"}, "usb-2", "alsa:mic", "sim:speaker"},
		{"missing pins fall back", Pins{Camera: "usb-9", Microphone: "gone", Speaker: "gone"}, "usb-1", "pw:ec-source", "pw:ec-sink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(&devs, tc.pins, nil).Choose()
			if id(c.Camera) != tc.cam || id(c.Microphone) != tc.mic || id(c.Speaker) != tc.spk {
				t.Errorf("Choose = %s, %s, %s; want %s, %s, %s", id(c.Camera), id(c.Microphone), id(c.Speaker), tc.cam, tc.mic, tc.spk)
			}
		})
	}
	var none list
	if c := New(&none, Pins{}, nil).Choose(); c.Camera != nil || c.Microphone != nil || c.Speaker != nil {
		t.Errorf("Choose with no devices = %+v", c)
	}
}

func TestFindCamera(t *testing.T) {
	usb1 := hal.Info{ID: "usb-1", Kind: hal.KindCamera}
	sim := hal.Info{ID: "sim:camera", Kind: hal.KindCamera, Simulated: true}
	for _, tc := range []struct {
		name string
		devs list
		pins Pins
		lost hal.Info
		want string
	}{
		{"same camera back", list{newCam("usb-2", false), newCam("usb-1", false)}, Pins{}, usb1, "usb-1"},
		{"pinned camera instead", list{newCam("usb-2", false), newCam("usb-3", false)}, Pins{Camera: "usb-3"}, usb1, "usb-3"},
		{"another real camera", list{newCam("sim:camera", true), newCam("usb-2", false)}, Pins{}, usb1, "usb-2"},
		{"never the simulator for a real camera", list{newCam("sim:camera", true)}, Pins{}, usb1, "<nil>"},
		{"nothing yet", list{}, Pins{}, usb1, "<nil>"},
		{"a simulated camera may become real", list{newCam("usb-2", false)}, Pins{}, sim, "usb-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := New(&tc.devs, tc.pins, nil).FindCamera(tc.lost)
			if got := id(c); got != tc.want || ok != (tc.want != "<nil>") {
				t.Errorf("FindCamera = %s, %v; want %s", got, ok, tc.want)
			}
		})
	}
}

func TestAudioTestPairs(t *testing.T) {
	devs := list{
		mic{dev{hal.Info{ID: "sim:mic", Kind: hal.KindMicrophone, Simulated: true}}},
		mic{dev{hal.Info{ID: "pw:hw-mic", Kind: hal.KindMicrophone}}},
		mic{dev{hal.Info{ID: "pw:ec-source", Kind: hal.KindMicrophone, EchoCancelled: true}}},
		spk{dev{hal.Info{ID: "pw:hw-spk", Kind: hal.KindSpeaker}}},
		spk{dev{hal.Info{ID: "pw:ec-sink", Kind: hal.KindSpeaker, EchoCancelled: true}}},
	}
	raw, ec := New(&devs, Pins{}, nil).AudioTestPairs()
	if id(raw.Speaker) != "pw:hw-spk" || id(raw.Microphone) != "pw:hw-mic" || id(ec.Speaker) != "pw:ec-sink" || id(ec.Microphone) != "pw:ec-source" {
		t.Errorf("pairs: raw %s/%s, cancelled %s/%s", id(raw.Speaker), id(raw.Microphone), id(ec.Speaker), id(ec.Microphone))
	}
	only := list{devs[0]}
	raw, ec = New(&only, Pins{}, nil).AudioTestPairs()
	if raw.Speaker != nil || raw.Microphone != nil || ec.Speaker != nil || ec.Microphone != nil {
		t.Errorf("a simulated microphone alone gave pairs %+v %+v", raw, ec)
	}
}
