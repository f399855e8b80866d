package kiosk

import (
	"errors"
	"io"
	"testing"
)

func TestUseGPU(t *testing.T) {
	noGL := errors.New("no EGL display")
	for _, c := range []struct {
		mode     GPUMode
		renderer string
		err      error
		want     bool
	}{
		{GPUAuto, "llvmpipe (LLVM 15.0.6, 256 bits)", nil, false},
		{GPUAuto, "softpipe", nil, false},
		{GPUAuto, "Software Rasterizer", nil, false},
		{GPUAuto, "Mesa Intel(R) UHD Graphics 620 (KBL GT2)", nil, true},
		{GPUAuto, "V3D 4.2", nil, true},
		{GPUAuto, "", noGL, false},
		{GPUOn, "llvmpipe (LLVM 15.0.6, 256 bits)", nil, true},
		{GPUOn, "", noGL, true},
		{GPUOff, "Mesa Intel(R) UHD Graphics 620 (KBL GT2)", nil, false},
	} {
		if got := UseGPU(c.mode, c.renderer, c.err); got != c.want {
			t.Errorf("UseGPU(%s, %q, %v) = %v, want %v", c.mode, c.renderer, c.err, got, c.want)
		}
	}
}

func TestGPUModeFlag(t *testing.T) {
	c, err := ParseFlags([]string{"-gpu", "off"}, io.Discard)
	if err != nil || c.GPU != GPUOff {
		t.Errorf("-gpu off: %v, %v", c.GPU, err)
	}
	if _, err := ParseFlags([]string{"-gpu", "maybe"}, io.Discard); err == nil {
		t.Error("-gpu maybe: no error")
	}
}
