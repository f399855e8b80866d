package kiosk

import (
	"fmt"
	"strings"
)

// GPUMode is the -gpu flag: whether WebKit may draw the page with OpenGL
// (accelerated compositing, GPU canvases).
type GPUMode string

// The -gpu values.
const (
	// GPUAuto uses OpenGL unless the only OpenGL there is renders in
	// software (Mesa's llvmpipe, softpipe or swrast: a board without a
	// GPU driver, Xvfb). There, drawing the page with the CPU directly is
	// far cheaper: on a 2-core machine under Xvfb a 720p video tile went
	// from about 1 to 18 frames per second (test/kioskbench).
	GPUAuto GPUMode = "auto"
	// GPUOn always uses OpenGL.
	GPUOn GPUMode = "on"
	// GPUOff never does.
	GPUOff GPUMode = "off"
)

// Set implements flag.Value.
func (m *GPUMode) Set(s string) error {
	switch GPUMode(s) {
	case GPUAuto, GPUOn, GPUOff:
		*m = GPUMode(s)
		return nil
	}
	return fmt.Errorf("%q is not auto, on or off", s)
}

func (m *GPUMode) String() string { return string(*m) }

// softwareRenderers are the GL_RENDERER prefixes of Mesa's CPU rasterisers.
var softwareRenderers = []string{"llvmpipe", "softpipe", "swrast", "software rasterizer"}

// SoftwareRenderer reports whether an OpenGL renderer string names a CPU
// rasteriser.
func SoftwareRenderer(renderer string) bool {
	r := strings.ToLower(strings.TrimSpace(renderer))
	for _, p := range softwareRenderers {
		if strings.HasPrefix(r, p) {
			return true
		}
	}
	return false
}

// UseGPU decides whether WebKit may use OpenGL. renderer is what probing
// OpenGL found (GL_RENDERER), or "" with probeErr when there is none; auto
// then turns it off, since WebKit would fall back to software itself.
func UseGPU(mode GPUMode, renderer string, probeErr error) bool {
	switch mode {
	case GPUOn:
		return true
	case GPUOff:
		return false
	}
	return probeErr == nil && !SoftwareRenderer(renderer)
}
