package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// Options configure [Open]. Exactly one of SQLitePath and PostgresDSN is set.
type Options struct {
	// SQLitePath is the database file of the embedded engine (created when
	// missing).
	SQLitePath string
	// PostgresDSN selects PostgreSQL, e.g.
	// "postgres://fleet@db.example/fleet?sslmode=verify-full".
	PostgresDSN string
	// Logger receives migration and maintenance messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Every stored time comes from it.
	Now func() time.Time
	// MaxConns bounds the connections to PostgreSQL (default
	// DefaultMaxConns): a burst of check-ins must queue in fleetd, not
	// exhaust the server's max_connections (100 by default) and be
	// refused. SQLite has one writer anyway and ignores it.
	MaxConns int
}

// DefaultMaxConns is Options.MaxConns's default.
const DefaultMaxConns = 16

// Store is the fleet database. It is safe for concurrent use.
type Store struct {
	db  *sql.DB
	d   dialect
	log *slog.Logger
	now func() time.Time
	// writer queues SQLite's transactions in Go, one at a time: each takes
	// the write lock at BEGIN, and waiting here is first come, first served
	// and ends with the request's context, where SQLite's busy handler
	// sleeps and polls (the fleet benchmark saw check-ins time out behind
	// it at 800/s with fleetd's CPU idle). nil for PostgreSQL.
	writer chan struct{}
}

// Open connects to the configured engine and applies pending migrations.
// It refuses a database whose schema is newer than this code
// ([ErrSchemaTooNew]).
func Open(ctx context.Context, opts Options) (*Store, error) {
	s := &Store{log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	var err error
	switch {
	case opts.SQLitePath != "" && opts.PostgresDSN != "":
		return nil, fmt.Errorf("open store: both SQLitePath and PostgresDSN set: %w", ErrInvalid)
	case opts.PostgresDSN != "":
		s.d = postgresDialect
		s.db, err = sql.Open("pgx", opts.PostgresDSN)
		if err == nil {
			n := opts.MaxConns
			if n <= 0 {
				n = DefaultMaxConns
			}
			s.db.SetMaxOpenConns(n)
			s.db.SetMaxIdleConns(n)
		}
	case opts.SQLitePath != "":
		s.d = sqliteDialect
		if err := privateFile(opts.SQLitePath); err != nil {
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
		s.writer = make(chan struct{}, 1)
		s.db, err = sql.Open("sqlite", sqliteDSN(opts.SQLitePath))
	default:
		return nil, fmt.Errorf("open store: no SQLitePath or PostgresDSN: %w", ErrInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", s.d.name, err)
	}
	if err := s.ping(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("open %s store: %w", s.d.name, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// privateFile makes the database file mode 0600 before SQLite opens it:
// it holds the profiles' secrets (Wi-Fi and calendar passwords, TURN
// credentials) and the console's password hashes, and SQLite gives its
// -wal and -shm files the database file's mode.
func privateFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	return os.Chmod(path, 0o600)
}

// openRetry bounds how long Open waits for another process that is
// creating the same SQLite file.
const openRetry = 10 * time.Second

// ping opens the first connection. Two servers creating one SQLite file at
// once can find it locked while the other switches it to WAL, a step that
// fails at once instead of waiting out busy_timeout: that is retried.
func (s *Store) ping(ctx context.Context) error {
	deadline := time.Now().Add(openRetry)
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		err := s.db.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// sqliteDSN sets what every connection needs: foreign keys are off by
// default in SQLite; WAL lets readers run beside the writer; the busy
// timeout makes a second writer wait instead of failing; and "immediate"
// transactions take the write lock at BEGIN, so two read-then-write
// transactions cannot deadlock upgrading their locks (the enrollment-code
// redeem is one).
func sqliteDSN(path string) string {
	q := url.Values{}
	// busy_timeout first: switching to WAL takes a lock too, and two
	// processes opening a new file at once must wait for each other.
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Engine returns "sqlite" or "postgres".
func (s *Store) Engine() string { return s.d.name }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// nowMicro is the clock's time as stored: UTC microseconds.
func (s *Store) nowMicro() int64 { return s.now().UTC().UnixMicro() }

// fromMicro is the inverse of nowMicro.
func fromMicro(us int64) time.Time { return time.UnixMicro(us).UTC() }

// newID returns a random 128-bit identifier in hex. Random rather than
// sequential ids do not leak fleet size and need no dialect-specific
// RETURNING or LastInsertId.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// tx is a transaction that rebinds placeholders and maps errors.
type tx struct {
	tx *sql.Tx
	s  *Store
	// finished is the rollout a check-in in this transaction moved into a
	// final state for its device ("" when none).
	finished string
}

func (t *tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	r, err := t.tx.ExecContext(ctx, t.s.d.rebind(q), args...)
	return r, mapError(err)
}

func (t *tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.s.d.rebind(q), args...)
}

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(*tx) error) error {
	if s.writer != nil {
		select {
		case s.writer <- struct{}{}:
			defer func() { <-s.writer }()
		case <-ctx.Done():
			return fmt.Errorf("begin: %w", ctx.Err())
		}
	}
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(&tx{tx: sqlTx, s: s}); err != nil {
		_ = sqlTx.Rollback() // the error from fn is the one that matters
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", mapError(err))
	}
	return nil
}

// queryRow runs a single-row read outside a transaction.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.d.rebind(q), args...)
}

// query runs a read outside a transaction.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	r, err := s.db.QueryContext(ctx, s.d.rebind(q), args...)
	return r, mapError(err)
}

// exec runs one statement outside a transaction.
func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	r, err := s.db.ExecContext(ctx, s.d.rebind(q), args...)
	return r, mapError(err)
}

// notFound turns sql.ErrNoRows into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return mapError(err)
}

// nullable returns nil for an empty string, so optional references are
// stored as NULL.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (t *tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	r, err := t.tx.QueryContext(ctx, t.s.d.rebind(q), args...)
	return r, mapError(err)
}
