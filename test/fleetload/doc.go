// Package fleetload simulates a fleet of room devices against fleetd's
// device API (provisioning/fleetapi): many devices in one process, each with
// its own P-256 key, client certificate and keep-alive connection, checking
// in on a schedule spread evenly over the interval, with latencies and
// errors recorded. The fleet benchmark (test/fleetbench) and its harness
// test drive it; it talks to loopback addresses only.
//
// Devices come from two places:
//
//   - [Provision] writes them straight into the fleet's store and signs
//     their certificates with the fleet's CA, before fleetd starts: the
//     enrollment endpoint is rate-limited by design, so thousands of
//     devices cannot enroll through it in a benchmark's time.
//   - [Enroll] enrolls one device through the real enrollment endpoint, as
//     roomd would, so that a run also proves that path.
//
// A [Generator] holds the devices' connections and queues across runs, so
// that a benchmark can step the rate without reconnecting: each [Generator.Run]
// uses the first n devices at a given interval for a bounded time.
//
// Each simulated check-in carries what a real one carries: versions, three
// peripherals, network addresses, health, meeting state, call quality while
// "in a call", the applied profile version, and now and then two outbox
// events with keys unique per device. Events stay queued until the server
// acknowledges them, as the agent's on-disk outbox does, so a run can check
// that every event was stored exactly once.
package fleetload
