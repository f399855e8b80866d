// GTK and WebKitGTK glue for roomkiosk's window. The functions run on the GTK
// thread only. Declarations only: cgo copies this into _cgo_export.h.
#ifndef ROOMKIOSK_WINDOW_GTK_H
#define ROOMKIOSK_WINDOW_GTK_H

#include <stdint.h>

// Request kinds passed to roomkioskDecide; they mirror kiosk.RequestKind.
enum {
	ROOMKIOSK_NAVIGATE = 0,
	ROOMKIOSK_NEW_WINDOW = 1,
	ROOMKIOSK_DOWNLOAD = 2,
};

// roomkiosk_gtk_init returns 0 when GTK cannot start (no display).
int roomkiosk_gtk_init(void);

// roomkiosk_make_fullscreen removes the decorations of window (a GtkWindow*),
// sizes it to its monitor, asks the window manager for full screen and keeps
// the size in step with the screen. It stores the monitor geometry in
// geometry[4] (x, y, width, height) and returns 0 if there was no monitor.
int roomkiosk_make_fullscreen(void *window, int geometry[4]);

// roomkiosk_attach connects the policy, context-menu, load-failure and
// crash handlers to the WebKitWebView inside window. handle is passed back to
// the exported Go callbacks. Returns 0 if the window holds no WebKitWebView.
int roomkiosk_attach(void *window, uintptr_t handle);

// roomkiosk_console_to_stdout makes the WebKitWebView inside window copy the
// page's console messages to standard output. Returns 0 if the window holds
// no WebKitWebView.
int roomkiosk_console_to_stdout(void *window);

// roomkiosk_set_gpu sets the hardware acceleration policy of the
// WebKitWebView inside window: always (gpu != 0) or never. Returns 0 if the
// window holds no WebKitWebView.
int roomkiosk_set_gpu(void *window, int gpu);

#endif
