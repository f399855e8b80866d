#include "gl_probe.h"

#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GLES2/gl2.h>
#include <stdio.h>
#include <string.h>

// The context is surfaceless (EGL_KHR_surfaceless_context) and needs no
// config (EGL_KHR_no_config_context): nothing is drawn, only GL_RENDERER is
// read. Mesa has both; a driver without them counts as no OpenGL.
int roomkiosk_gl_renderer(char *out, int size, char *err, int errsize) {
	out[0] = 0;
	err[0] = 0;
	EGLDisplay dpy = eglGetDisplay(EGL_DEFAULT_DISPLAY);
	if (dpy == EGL_NO_DISPLAY) {
		snprintf(err, errsize, "eglGetDisplay: no display");
		return 0;
	}
	if (!eglInitialize(dpy, NULL, NULL)) {
		snprintf(err, errsize, "eglInitialize: error 0x%x", eglGetError());
		return 0;
	}
	int ok = 0;
	EGLContext ctx = EGL_NO_CONTEXT;
	const char *ext = eglQueryString(dpy, EGL_EXTENSIONS);
	if (ext == NULL || strstr(ext, "EGL_KHR_surfaceless_context") == NULL ||
	    strstr(ext, "EGL_KHR_no_config_context") == NULL) {
		snprintf(err, errsize, "EGL lacks surfaceless or config-less contexts");
		goto out;
	}
	if (!eglBindAPI(EGL_OPENGL_ES_API)) {
		snprintf(err, errsize, "eglBindAPI(OpenGL ES): error 0x%x", eglGetError());
		goto out;
	}
	static const EGLint attrs[] = {EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE};
	ctx = eglCreateContext(dpy, EGL_NO_CONFIG_KHR, EGL_NO_CONTEXT, attrs);
	if (ctx == EGL_NO_CONTEXT) {
		snprintf(err, errsize, "eglCreateContext: error 0x%x", eglGetError());
		goto out;
	}
	if (!eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, ctx)) {
		snprintf(err, errsize, "eglMakeCurrent: error 0x%x", eglGetError());
		goto out;
	}
	const GLubyte *r = glGetString(GL_RENDERER);
	if (r == NULL) {
		snprintf(err, errsize, "glGetString(GL_RENDERER): nothing");
	} else {
		snprintf(out, size, "%s", (const char *)r);
		ok = 1;
	}
	eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
out:
	if (ctx != EGL_NO_CONTEXT) {
		eglDestroyContext(dpy, ctx);
	}
	eglTerminate(dpy);
	eglReleaseThread();
	return ok;
}
