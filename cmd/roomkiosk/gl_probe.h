// OpenGL probe for roomkiosk's -gpu=auto.
#ifndef ROOMKIOSK_GL_PROBE_H
#define ROOMKIOSK_GL_PROBE_H

// roomkiosk_gl_renderer writes the GL_RENDERER string of the default EGL
// display's OpenGL ES into out (size bytes) and returns 1; on failure it
// writes why into err (errsize bytes) and returns 0.
int roomkiosk_gl_renderer(char *out, int size, char *err, int errsize);

#endif
