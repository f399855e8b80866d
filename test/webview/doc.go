// Package webview holds the end-to-end test of roomkiosk, the WebKitGTK
// kiosk shell: it builds the real binary, runs it on its own Xvfb display
// against test HTTP servers, and judges screenshots pixel by pixel.
//
// It needs Xvfb, ImageMagick's import, a C/C++ toolchain and the WebKitGTK
// 4.1 development files; it fails (never skips) without them, so that a CI
// image missing a package cannot pass silently. The fake roomd here is
// deliberately tiny; the integration harness swaps in the real one.
package webview
