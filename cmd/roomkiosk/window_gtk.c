#include "window_gtk.h"

#include <gtk/gtk.h>
#include <webkit2/webkit2.h>

#include "_cgo_export.h"

// webview_go names its pkg-config package webkit2gtk-4.0; the build maps
// that name to 4.1 through cmd/roomkiosk/pkgconfig. If the alias was not on
// PKG_CONFIG_PATH and the real 4.0 was found, these are its libsoup 2
// headers: stop here rather than ship a binary on the old API (or, had this
// file asked for 4.1 by name, one that loads both and aborts at start).
#if !defined(SOUP_MAJOR_VERSION) || SOUP_MAJOR_VERSION < 3
#error "roomkiosk must build against webkit2gtk-4.1: put cmd/roomkiosk/pkgconfig first in PKG_CONFIG_PATH"
#endif

int roomkiosk_gtk_init(void) {
	return gtk_init_check(NULL, NULL) ? 1 : 0;
}

// fit_to_monitor sizes the window to its monitor. Under a window manager
// gtk_window_fullscreen does this (and more); on a bare X server, as on the
// appliance without a WM or under Xvfb, nobody acts on the fullscreen request
// and this is what makes the page cover the screen.
static int fit_to_monitor(GtkWindow *win, int geometry[4]) {
	GdkDisplay *display = gtk_widget_get_display(GTK_WIDGET(win));
	GdkMonitor *monitor = gdk_display_get_primary_monitor(display);
	if (monitor == NULL && gdk_display_get_n_monitors(display) > 0) {
		// X servers without a RandR primary output (Xvfb, many TVs on a
		// single HDMI port) report none: the first is the only one.
		monitor = gdk_display_get_monitor(display, 0);
	}
	if (monitor == NULL) {
		return 0;
	}
	GdkRectangle r;
	gdk_monitor_get_geometry(monitor, &r);
	gtk_window_move(win, r.x, r.y);
	gtk_window_resize(win, r.width, r.height);
	if (geometry != NULL) {
		geometry[0] = r.x;
		geometry[1] = r.y;
		geometry[2] = r.width;
		geometry[3] = r.height;
	}
	return 1;
}

// on_screen_changed follows the TV: a set switched on after boot, or another
// one plugged in, changes the resolution under a running kiosk.
static void on_screen_changed(GdkScreen *screen, gpointer win) {
	(void)screen;
	fit_to_monitor(GTK_WINDOW(win), NULL);
	gtk_window_fullscreen(GTK_WINDOW(win));
}

int roomkiosk_make_fullscreen(void *window, int geometry[4]) {
	GtkWindow *win = GTK_WINDOW(window);
	gtk_window_set_decorated(win, FALSE);
	int ok = fit_to_monitor(win, geometry);
	gtk_window_fullscreen(win);
	GdkScreen *screen = gtk_widget_get_screen(GTK_WIDGET(win));
	// connect_object: disconnected when the window goes, so the screen never
	// calls back into a destroyed window.
	g_signal_connect_object(screen, "size-changed", G_CALLBACK(on_screen_changed), win, 0);
	g_signal_connect_object(screen, "monitors-changed", G_CALLBACK(on_screen_changed), win, 0);
	return ok;
}

static gboolean decide(uintptr_t handle, int kind, const char *uri) {
	return roomkioskDecide(handle, kind, (char *)(uri != NULL ? uri : ""));
}

static const char *request_uri(WebKitPolicyDecision *d) {
	WebKitNavigationAction *a =
	    webkit_navigation_policy_decision_get_navigation_action(WEBKIT_NAVIGATION_POLICY_DECISION(d));
	return webkit_uri_request_get_uri(webkit_navigation_action_get_request(a));
}

static gboolean on_decide_policy(WebKitWebView *view, WebKitPolicyDecision *d,
                                 WebKitPolicyDecisionType type, gpointer data) {
	(void)view;
	uintptr_t handle = (uintptr_t)data;
	gboolean allow;
	switch (type) {
	case WEBKIT_POLICY_DECISION_TYPE_NAVIGATION_ACTION:
		allow = decide(handle, ROOMKIOSK_NAVIGATE, request_uri(d));
		break;
	case WEBKIT_POLICY_DECISION_TYPE_NEW_WINDOW_ACTION:
		allow = decide(handle, ROOMKIOSK_NEW_WINDOW, request_uri(d));
		break;
	case WEBKIT_POLICY_DECISION_TYPE_RESPONSE: {
		WebKitResponsePolicyDecision *r = WEBKIT_RESPONSE_POLICY_DECISION(d);
		if (webkit_response_policy_decision_is_mime_type_supported(r)) {
			return FALSE; // WebKit's default: display it
		}
		allow = decide(handle, ROOMKIOSK_DOWNLOAD,
		               webkit_uri_request_get_uri(webkit_response_policy_decision_get_request(r)));
		break;
	}
	default:
		return FALSE;
	}
	if (allow) {
		webkit_policy_decision_use(d);
	} else {
		webkit_policy_decision_ignore(d);
	}
	return TRUE;
}

static gboolean on_load_failed(WebKitWebView *view, WebKitLoadEvent event, gchar *uri,
                               GError *error, gpointer data) {
	(void)view;
	(void)event;
	// A load the guard refused, or one replaced by the next navigation, is
	// not a failure of roomd: let WebKit handle it (it shows nothing).
	if (g_error_matches(error, WEBKIT_NETWORK_ERROR, WEBKIT_NETWORK_ERROR_CANCELLED) ||
	    error->domain == WEBKIT_POLICY_ERROR) {
		return FALSE;
	}
	roomkioskPageFailed((uintptr_t)data, uri, error->message);
	// Handled: the shell shows its offline page instead of WebKit's error page.
	return TRUE;
}

static void on_web_process_terminated(WebKitWebView *view, WebKitWebProcessTerminationReason reason,
                                      gpointer data) {
	(void)view;
	const char *why = reason == WEBKIT_WEB_PROCESS_EXCEEDED_MEMORY_LIMIT ? "web process exceeded its memory limit"
	                  : reason == WEBKIT_WEB_PROCESS_TERMINATED_BY_API  ? "web process terminated"
	                                                                     : "web process crashed";
	// Without this the TV would stay blank until roomd restarts.
	roomkioskPageFailed((uintptr_t)data, (char *)"", (char *)why);
}

int roomkiosk_attach(void *window, uintptr_t handle) {
	// webview_go adds its WebKitWebView as the window's only child and does
	// not expose it (nor any policy hook) through its Go API.
	GtkWidget *child = gtk_bin_get_child(GTK_BIN(window));
	if (child == NULL || !WEBKIT_IS_WEB_VIEW(child)) {
		return 0;
	}
	gpointer data = (gpointer)handle;
	g_signal_connect(child, "decide-policy", G_CALLBACK(on_decide_policy), data);
	g_signal_connect(child, "load-failed", G_CALLBACK(on_load_failed), data);
	g_signal_connect(child, "web-process-terminated", G_CALLBACK(on_web_process_terminated), data);
	// A kiosk has nobody to choose "Open link in new window" or "Inspect".
	g_signal_connect(child, "context-menu", G_CALLBACK(gtk_true), NULL);
	return 1;
}

int roomkiosk_console_to_stdout(void *window) {
	GtkWidget *child = gtk_bin_get_child(GTK_BIN(window));
	if (child == NULL || !WEBKIT_IS_WEB_VIEW(child)) {
		return 0;
	}
	WebKitSettings *settings = webkit_web_view_get_settings(WEBKIT_WEB_VIEW(child));
	webkit_settings_set_enable_write_console_messages_to_stdout(settings, TRUE);
	return 1;
}

int roomkiosk_set_gpu(void *window, int gpu) {
	GtkWidget *child = gtk_bin_get_child(GTK_BIN(window));
	if (child == NULL || !WEBKIT_IS_WEB_VIEW(child)) {
		return 0;
	}
	WebKitSettings *settings = webkit_web_view_get_settings(WEBKIT_WEB_VIEW(child));
	webkit_settings_set_hardware_acceleration_policy(
	    settings, gpu ? WEBKIT_HARDWARE_ACCELERATION_POLICY_ALWAYS : WEBKIT_HARDWARE_ACCELERATION_POLICY_NEVER);
	return 1;
}
