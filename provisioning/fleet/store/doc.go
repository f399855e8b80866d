// Package store is the fleet server's storage: organisations, sites, rooms
// and devices; single-use enrollment codes; configuration profiles with
// inheritance and an audit history; remote commands; telemetry with
// retention.
//
// It runs over database/sql on one of two engines. Embedded SQLite
// (modernc.org/sqlite, pure Go) is the default, so a small fleet needs
// nothing but a file; PostgreSQL (pgx) is used when a DSN is configured, for
// fleets that outgrow one machine. Both run the same numbered migrations
// (migrations/*.sql, embedded) and the same queries; the only dialect
// differences are the two rewrites done by [dialect]: `?` placeholders become
// `$n` on PostgreSQL, and the `{{serial}}` column type becomes an
// autoincrement rowid on SQLite and an identity column on PostgreSQL.
//
// Guarantees:
//   - Every change and its audit entry are written in one transaction: there
//     is no change without its audit entry and no entry without its change.
//   - An enrollment code is redeemed at most once, even by concurrent
//     redeemers: the redeeming UPDATE is conditional on the code being
//     unused, so exactly one transaction sees one row affected.
//   - Times are stored as UTC microseconds since the Unix epoch and come from
//     the injected clock, never from the database server.
//   - Constraint violations of both engines come back as the same sentinel
//     errors (errors.go), so callers never look at driver error types.
//
// The package keeps no global state: everything hangs off a [Store] made by
// [Open].
package store
