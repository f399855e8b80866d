// Package deviceapi is fleetd's device-facing HTTPS API: the server half of
// the contract in provisioning/fleetapi.
//
// Endpoints (all POST):
//   - fleetapi.PathEnroll: no client certificate. An activation code, a
//     CSR and hardware facts become a device, its certificate (CN = the
//     device's fleet ID) and the fleet's CA bundle. Failed attempts are
//     rate-limited per client address and fleet-wide (token buckets; 429
//     with Retry-After), and an unknown code gets the same answer as a
//     guessed one.
//   - fleetapi.PathCheckIn: state, health, call quality and the outbox in;
//     acknowledged keys, pending commands and the effective profile out.
//   - fleetapi.PathRenew: a new certificate for the same device; the old
//     one stops working at once.
//   - fleetapi.PathLogs: a gzip log bundle for a collect-logs command.
//
// Every endpoint but enroll needs a client certificate that chains to the
// fleet CA, is within its validity at the server's clock, is not revoked,
// and is the device's current one (an older serial after a renewal is 401).
// Revocation is checked on every request: a revoked device gets 403
// fleetapi.CodeRevoked at its next call, on a new connection or one opened
// before the revocation, and so knows it was cut off (a refused handshake
// would look like a network fault to it).
//
// Bodies are JSON, at most fleetapi.MaxBody bytes (a log bundle at most
// fleetapi.MaxLogBundle), decoded strictly: an unknown field, a wrong type
// or trailing data is 400 naming the field; an oversized body is 413.
// Every error is a fleetapi.Problem (application/problem+json). A request
// that is refused changes nothing.
package deviceapi
