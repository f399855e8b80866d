//go:build cgo

package vaapi

/*
#cgo pkg-config: libva libva-drm
#include <stdlib.h>
#include <va/va.h>
#include <va/va_drm.h>

// libva prints its version and errors on stderr unless told otherwise;
// roomd's log says what matters.
static void atrium_va_quiet(void *ctx, const char *msg) { (void)ctx; (void)msg; }
static void atrium_va_silence(VADisplay dpy) {
	vaSetErrorCallback(dpy, atrium_va_quiet, NULL);
	vaSetInfoCallback(dpy, atrium_va_quiet, NULL);
}
*/
import "C"

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"
)

// libvaProber is the real Prober.
type libvaProber struct{}

func vaErr(op string, st C.VAStatus) error {
	return fmt.Errorf("%s: %s (VA status %#x)", op, C.GoString(C.vaErrorStr(st)), int(st))
}

// Probe implements Prober.
func (libvaProber) Probe(ctx context.Context, path string) (Display, error) {
	if err := ctx.Err(); err != nil {
		return Display{}, err
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return Display{}, fmt.Errorf("vaapi: open %s: %w", path, err)
	}
	defer unix.Close(fd)
	dpy := C.vaGetDisplayDRM(C.int(fd))
	if dpy == nil {
		return Display{}, fmt.Errorf("vaapi: vaGetDisplayDRM %s failed", path)
	}
	C.atrium_va_silence(dpy)
	var major, minor C.int
	if st := C.vaInitialize(dpy, &major, &minor); st != C.VA_STATUS_SUCCESS {
		return Display{}, vaErr("vaapi: vaInitialize "+path, st)
	}
	defer C.vaTerminate(dpy)
	disp := Display{Version: fmt.Sprintf("%d.%d", int(major), int(minor))}
	if v := C.vaQueryVendorString(dpy); v != nil {
		disp.Vendor = C.GoString(v)
	}

	nprof := C.vaMaxNumProfiles(dpy)
	if nprof <= 0 {
		return disp, nil
	}
	profiles := make([]C.VAProfile, nprof)
	var n C.int
	if st := C.vaQueryConfigProfiles(dpy, &profiles[0], &n); st != C.VA_STATUS_SUCCESS {
		return disp, vaErr("vaapi: vaQueryConfigProfiles "+path, st)
	}
	nent := C.vaMaxNumEntrypoints(dpy)
	if nent <= 0 {
		return disp, nil
	}
	entrypoints := make([]C.VAEntrypoint, nent)
	for _, p := range profiles[:n] {
		if _, ok := codecOf(Profile(p)); !ok {
			continue // only the codecs the HAL knows are worth the queries
		}
		var ne C.int
		if st := C.vaQueryConfigEntrypoints(dpy, p, &entrypoints[0], &ne); st != C.VA_STATUS_SUCCESS {
			return disp, vaErr(fmt.Sprintf("vaapi: vaQueryConfigEntrypoints %s profile %d", path, int(p)), st)
		}
		for _, e := range entrypoints[:ne] {
			attrs := [2]C.VAConfigAttrib{{_type: C.VAConfigAttribMaxPictureWidth}, {_type: C.VAConfigAttribMaxPictureHeight}}
			c := Config{Profile: Profile(p), Entrypoint: Entrypoint(e)}
			if st := C.vaGetConfigAttributes(dpy, p, e, &attrs[0], 2); st == C.VA_STATUS_SUCCESS {
				c.MaxWidth, c.MaxHeight = attrValue(attrs[0].value), attrValue(attrs[1].value)
			}
			disp.Configs = append(disp.Configs, c)
		}
	}
	return disp, nil
}

// attrValue reads an attribute value, 0 for VA_ATTRIB_NOT_SUPPORTED.
func attrValue(v C.uint32_t) int {
	if v == C.VA_ATTRIB_NOT_SUPPORTED {
		return 0
	}
	return int(v)
}

// headerConstants returns va.h's values of the constants this package
// mirrors in Go, so a test can compare them.
func headerConstants() map[string]int {
	return map[string]int{
		"VAProfileH264Main":                int(C.VAProfileH264Main),
		"VAProfileH264High":                int(C.VAProfileH264High),
		"VAProfileH264ConstrainedBaseline": int(C.VAProfileH264ConstrainedBaseline),
		"VAProfileVP8Version0_3":           int(C.VAProfileVP8Version0_3),
		"VAProfileVP9Profile0":             int(C.VAProfileVP9Profile0),
		"VAProfileVP9Profile1":             int(C.VAProfileVP9Profile1),
		"VAProfileVP9Profile2":             int(C.VAProfileVP9Profile2),
		"VAProfileVP9Profile3":             int(C.VAProfileVP9Profile3),
		"VAEntrypointVLD":                  int(C.VAEntrypointVLD),
		"VAEntrypointEncSlice":             int(C.VAEntrypointEncSlice),
		"VAEntrypointEncSliceLP":           int(C.VAEntrypointEncSliceLP),
	}
}
