package main

/*
#cgo pkg-config: egl glesv2
#include <stdlib.h>
#include "gl_probe.h"
*/
import "C"

import (
	"errors"
	"unsafe"
)

// glRenderer asks EGL for the OpenGL ES renderer of the default display,
// e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". It must run before GTK and
// WebKit set up their own EGL use, on the main thread.
func glRenderer() (string, error) {
	const size = 256
	out := (*C.char)(C.malloc(size))
	defer C.free(unsafe.Pointer(out))
	msg := (*C.char)(C.malloc(size))
	defer C.free(unsafe.Pointer(msg))
	if C.roomkiosk_gl_renderer(out, size, msg, size) == 0 {
		return "", errors.New("probe OpenGL: " + C.GoString(msg))
	}
	return C.GoString(out), nil
}
