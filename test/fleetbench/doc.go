// Package fleetbench measures fleetd under a fleet's check-ins (issue 6,
// §4): how many check-ins per second the real fleetd binary sustains on
// SQLite and on PostgreSQL, with their p50/p99 latency and the CPU of
// fleetd (and of PostgreSQL), and from that the largest fleet checking in
// every 60 s that one machine holds with p99 under 100 ms.
//
// The devices are simulated by test/fleetload in the test process, on
// loopback: each has its own key, client certificate and keep-alive
// connection. They are written into the fleet's database before fleetd
// starts (the enrollment endpoint is rate-limited by design), and a few
// more enroll through the real endpoint to prove that path.
//
// A fleet of N devices at 60 s offers N/60 check-ins per second. Running
// that for minutes per step would make the benchmark last hours, so each
// step offers the same rate with a compressed schedule: R×10 devices
// checking in every 10 s, one interval of warm-up and then a measured
// window. The report says so next to the numbers.
//
//	go test -run '^$' -bench Fleet -benchtime 1x -timeout 20m ./test/fleetbench/
//
// writes bench/results/fleet.txt, or the file named by `-args
// -fleet.out=FILE`; `-args -fleet.engines=sqlite` runs one engine.
// TestFleetLoadHarness runs the same rig for a few seconds with 50 devices
// on SQLite so that `go test` keeps it working. Both fail, never skip,
// when PostgreSQL or the Go toolchain is missing.
package fleetbench
