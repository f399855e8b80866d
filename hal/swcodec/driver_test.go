package swcodec

import (
	"context"
	"testing"

	"github.com/atriumroom/atrium/hal"
)

func TestDriverListsEveryFactory(t *testing.T) {
	devs, err := NewDriver(nil).Enumerate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[hal.Kind]string{
		hal.KindVideoEncoder: VideoEncoderID, hal.KindVideoDecoder: VideoDecoderID,
		hal.KindAudioEncoder: AudioEncoderID, hal.KindAudioDecoder: AudioDecoderID,
	}
	if len(devs) != len(want) {
		t.Fatalf("%d devices, want %d", len(devs), len(want))
	}
	for _, d := range devs {
		info := d.Info()
		if want[info.Kind] != info.ID || info.Driver != DriverName || info.Simulated {
			t.Errorf("device %+v", info)
		}
		if c, ok := d.(interface{ Codecs() []hal.CodecCaps }); !ok || len(c.Codecs()) == 0 {
			t.Errorf("%s lists no codecs", info.ID)
		}
	}
}
