// Package deviceapi is fleetd's device-facing HTTPS API: the server half of
// the contract in provisioning/fleetapi.
//
// Endpoints (POST, but for the update repository):
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
//   - fleetapi.PathUpdates (GET and HEAD): the release repository, a TUF
//     repository of static files (Options.UpdatesDir), with byte ranges
//     for resumed downloads. Only regular files inside the directory are
//     served: no listings, no dot-files, a ".." segment is 400, and
//     symbolic links cannot lead out (os.OpenInRoot). 404 for everything
//     when no repository is configured.
//
// Over-the-air updates ride on the check-in: its update status is
// validated (400 naming the field under "update.") and stored with the
// check-in, in the same transaction, as the device's latest and as its
// status in the rollout it names; the answer carries the offer that
// rollout.Offer makes from the device's active rollout (one indexed
// lookup in that transaction) and the release in Options.Releases. A
// check-in that moves its device into a final state in a rollout calls
// Options.RolloutReported, so fleetd evaluates the rollout at once.
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
