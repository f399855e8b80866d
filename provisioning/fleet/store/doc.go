// Package store is the fleet server's storage: organisations, sites, rooms
// and devices; single-use enrollment codes; configuration profiles with
// inheritance and an audit history; remote commands; telemetry with
// retention; what devices send through the device API (check-in state, the
// outbox of events and command results, log bundles); and the console's
// accounts and sessions; over-the-air updates: rollouts, each device's
// update status and its status in a rollout, sites' maintenance windows
// (rollouts.go; the decisions are package rollout's).
//
// It runs over database/sql on one of two engines. Embedded SQLite
// (modernc.org/sqlite, pure Go) is the default, so a small fleet needs
// nothing but a file; PostgreSQL (pgx) is used when a DSN is configured, for
// fleets that outgrow one machine. Both run the same numbered migrations
// (migrations/*.sql, embedded) and the same queries; the only dialect
// differences are the rewrites done by [dialect]: `?` placeholders become
// `$n` on PostgreSQL, the `{{serial}}` column type becomes an
// autoincrement rowid on SQLite and an identity column on PostgreSQL, and
// `{{blob}}` becomes BLOB or BYTEA.
//
// Guarantees:
//   - Every change and its audit entry are written in one transaction: there
//     is no change without its audit entry and no entry without its change.
//   - An enrollment code is redeemed at most once, even by concurrent
//     redeemers: the redeeming UPDATE is conditional on the code being
//     unused, so exactly one transaction sees one row affected.
//   - Times are stored as UTC microseconds since the Unix epoch and come from
//     the injected clock, never from the database server.
//   - A device's outbox record is stored at most once per (device, key),
//     and a command result ends its command in the same transaction; a
//     record the server cannot use is kept as rejected and acknowledged,
//     never an error the device would retry forever (AddDeviceRecords).
//   - Secrets are stored hashed: enrollment codes (SHA-256), console
//     session tokens (hashed by the console); password hashes never reach
//     the audit log.
//   - An organisation has at most one active (running, paused, halted)
//     rollout, enforced by a partial unique index, so two concurrent
//     creations cannot both succeed; rollout changes are conditional on
//     the row being unchanged since it was read (ErrConflict otherwise),
//     so the evaluation loop and a person never overwrite each other.
//   - A device's failure or rollback in a rollout is final: a later
//     status never replaces it, and the device is never offered that
//     rollout again.
//   - Constraint violations of both engines come back as the same sentinel
//     errors (errors.go), so callers never look at driver error types.
//
// The package keeps no global state: everything hangs off a [Store] made by
// [Open].
package store
