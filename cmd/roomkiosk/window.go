package main

/*
// The same pkg-config name as webview_go's, so that both cgo packages resolve
// through the alias in ./pkgconfig to one library, webkit2gtk-4.1.
#cgo pkg-config: gtk+-3.0 webkit2gtk-4.0
#include "window_gtk.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/cgo"

	webview "github.com/webview/webview_go"

	"github.com/atriumroom/atrium/cmd/roomkiosk/internal/kiosk"
)

// errNoDisplay means GTK could not open a display (DISPLAY or WAYLAND_DISPLAY
// unset or wrong, X server down).
var errNoDisplay = errors.New("cannot open display")

// window is the kiosk's GTK window with its web view. It implements
// kiosk.Display. Apart from ShowOffline, ShowUI and Terminate, which may be
// called from any goroutine until Destroy, its methods belong to the GTK
// (main) thread.
type window struct {
	wv  webview.WebView
	url string
	log *slog.Logger

	// callbacks is what the C signal handlers call back into: a *callbacks
	// behind a cgo.Handle, because C must not hold Go pointers.
	callbacks cgo.Handle

	// closed is set once the main loop has ended. Only the GTK thread reads
	// or writes it: work queued by Dispatch can still run during Destroy,
	// and must then not touch the half-destroyed web view.
	closed bool
}

// callbacks receives the C signal handlers' calls, on the GTK thread.
type callbacks struct {
	guard      *kiosk.NavigationGuard
	pageFailed func(uri, reason string)
}

// newWindow opens the window, configures it for cfg and loads nothing yet.
// pageFailed is called (on the GTK thread) when a page fails to load or its
// web process dies.
func newWindow(cfg kiosk.Config, log *slog.Logger, guard *kiosk.NavigationGuard, pageFailed func()) (*window, error) {
	// webview_go hands back a nil instance, and crashes on first use, when
	// GTK cannot start: check first to fail with a message.
	// Before GTK: the probe must not share EGL state with WebKit's.
	renderer, glErr := glRenderer()
	if C.roomkiosk_gtk_init() == 0 {
		return nil, errNoDisplay
	}
	w := &window{wv: webview.New(false), url: cfg.URL, log: log}
	w.callbacks = cgo.NewHandle(&callbacks{guard: guard, pageFailed: func(uri, reason string) {
		if w.closed {
			return // the web view going away with the window
		}
		log.Warn("page failed: showing offline page until roomd answers", "uri", uri, "reason", reason)
		pageFailed()
		// Queued rather than loaded here: this runs inside a WebKit signal
		// handler, and the Watcher reloads the UI at its next good poll.
		w.ShowOffline()
	}})
	w.wv.SetTitle("Atrium")
	if C.roomkiosk_attach(w.wv.Window(), C.uintptr_t(w.callbacks)) == 0 {
		w.Destroy()
		return nil, errors.New("webview window holds no WebKitWebView: webview_go changed its layout")
	}
	gpu := kiosk.UseGPU(cfg.GPU, renderer, glErr)
	log.Info("OpenGL", "renderer", renderer, "probe_err", glErr, "mode", cfg.GPU, "webkit_uses_gpu", gpu)
	if C.roomkiosk_set_gpu(w.wv.Window(), boolInt(gpu)) == 0 {
		log.Warn("cannot set WebKit's hardware acceleration policy")
	}
	if cfg.Console && C.roomkiosk_console_to_stdout(w.wv.Window()) == 0 {
		log.Warn("cannot copy the page's console to standard output")
	}
	if cfg.Fullscreen {
		var g [4]C.int
		if C.roomkiosk_make_fullscreen(w.wv.Window(), &g[0]) == 0 {
			log.Warn("no monitor found: window keeps its default size")
		} else {
			log.Info("fullscreen", "x", int(g[0]), "y", int(g[1]), "width", int(g[2]), "height", int(g[3]))
		}
	} else {
		w.wv.SetSize(cfg.Width, cfg.Height, webview.HintNone)
	}
	return w, nil
}

// ShowOffline implements kiosk.Display.
func (w *window) ShowOffline() {
	w.wv.Dispatch(w.showOfflineNow)
}

func (w *window) showOfflineNow() {
	if !w.closed {
		w.wv.SetHtml(kiosk.OfflineHTML())
	}
}

// ShowUI implements kiosk.Display.
func (w *window) ShowUI() {
	w.wv.Dispatch(func() {
		if !w.closed {
			w.wv.Navigate(w.url)
		}
	})
}

// Terminate ends Run. Safe from any goroutine, and harmless once Run ended.
func (w *window) Terminate() {
	w.wv.Dispatch(func() {
		// Once Run has returned there is no main loop left to quit, and
		// gtk_main_quit would complain.
		if !w.closed {
			w.wv.Terminate()
		}
	})
}

// Run runs the GTK main loop until Terminate, or until the window is
// destroyed from outside (a window manager closing it).
func (w *window) Run() {
	w.wv.Run()
	w.closed = true
}

// Destroy closes the window. Nothing may call the window after it: stop every
// goroutine that holds it first.
func (w *window) Destroy() {
	w.closed = true
	w.wv.Destroy()
	w.callbacks.Delete()
}

// decisionKind maps window_gtk.h's request kinds to the guard's.
func decisionKind(kind C.int) (kiosk.RequestKind, error) {
	switch kind {
	case C.ROOMKIOSK_NAVIGATE:
		return kiosk.Navigate, nil
	case C.ROOMKIOSK_NEW_WINDOW:
		return kiosk.NewWindow, nil
	case C.ROOMKIOSK_DOWNLOAD:
		return kiosk.Download, nil
	}
	return 0, fmt.Errorf("unknown request kind %d", int(kind))
}

//export roomkioskDecide
func roomkioskDecide(handle C.uintptr_t, kind C.int, uri *C.char) C.int {
	h := cgo.Handle(handle).Value().(*callbacks)
	k, err := decisionKind(kind)
	if err != nil {
		return 0 // refuse what we do not understand
	}
	if h.guard.Allow(k, C.GoString(uri)) {
		return 1
	}
	return 0
}

//export roomkioskPageFailed
func roomkioskPageFailed(handle C.uintptr_t, uri, reason *C.char) {
	h := cgo.Handle(handle).Value().(*callbacks)
	h.pageFailed(C.GoString(uri), C.GoString(reason))
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
