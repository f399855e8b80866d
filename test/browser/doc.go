// Package browser holds the tests that drive the kiosk UI in a real headless
// Chromium against a real roomd, as the room's screen would see it.
//
// The tests need Debian's chromium at /usr/bin/chromium and fail without it:
// a browser test that skips on a machine without a browser is a browser test
// that never runs. Set ATRIUM_ARTIFACTS to a directory to keep the
// screenshots.
package browser
