// Package kioskbench measures the kiosk in a meeting (issue 5, §5): the CPU
// and memory of roomd plus roomkiosk (WebKitGTK and its helper processes)
// while the kiosk shows 1, 4 and 9 remote 720p streams from one real Janus
// room, the same for a headless Chromium joined to the same room as the
// alternative ("what if the room ran the meeting in a browser engine"), and
// the delay from a frame's capture to its display on the kiosk's screen.
//
// The far-end publishers live in the test process: one sends the simulated
// camera, encoded live with the software VP8 encoder, whose burned-in
// capture time (hal/sim's stamp) is read back from screenshots of the
// kiosk's X display; the others replay a few seconds of VP8 encoded once
// at the start, so that N streams do not cost N live encoders on a small
// machine. Everything runs in the test's own network namespace
// (test/netns).
//
//	go test -run '^$' -bench Kiosk -benchtime 1x -timeout 20m ./test/kioskbench/
//
// writes bench/results/kiosk.txt, or the file named by `-args
// -kiosk.out=FILE`. It measures the roomd it builds from ./cmd/roomd, or the
// binary named by $ATRIUM_KIOSKBENCH_ROOMD; `-args -kiosk.counts=1` runs only
// the rounds named (quicker while working on the video path).
//
// The kiosk's page is loaded with ?videostats and roomkiosk runs with
// -console: ui/web/call.js then logs each tile's timings measured inside
// WebKit (frames received, decoded and drawn per second; decode, wait-for-
// paint and drawImage times; frames skipped or superseded) every 5 s, and
// the report's section 3 summarises them, so that a slow display can be
// placed in decode, paint or message handling without an inspector.
//
// The package's TestKioskHarness
// runs the same harness briefly at N=2 so that `go test ./...` keeps it
// working. Both fail, never skip, when Xvfb, roomkiosk's build
// dependencies, Janus or Chromium are missing; screenshots of a failed
// display check go to $ATRIUM_ARTIFACTS/kioskbench when that is set.
package kioskbench
