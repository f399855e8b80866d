package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations lists the embedded files NNN_name.sql in version order.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var ms []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNN_name.sql", base)
		}
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", base, err)
		}
		ms = append(ms, migration{v, base, string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: versions must run 1, 2, 3… without gaps", m.name)
		}
	}
	return ms, nil
}

// SchemaVersion is the newest migration this code knows.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// migrate applies the pending migrations in one transaction, so a failure
// leaves the schema as it was (both engines have transactional DDL), and
// records each in schema_migrations.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(t *tx) error {
		if s.d.migrateLock != "" {
			if _, err := t.exec(ctx, s.d.migrateLock); err != nil {
				return fmt.Errorf("migrate: lock: %w", err)
			}
		}
		if _, err := t.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version     INTEGER PRIMARY KEY,
			name        TEXT NOT NULL,
			applied_at  BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("migrate: create schema_migrations: %w", err)
		}
		var cur int
		if err := t.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
			return fmt.Errorf("migrate: read version: %w", err)
		}
		if cur > len(ms) {
			return fmt.Errorf("migrate: database at version %d, this program knows %d: %w", cur, len(ms), ErrSchemaTooNew)
		}
		for _, m := range ms[cur:] {
			for i, stmt := range statements(s.d.migration(m.sql)) {
				if _, err := t.exec(ctx, stmt); err != nil {
					return fmt.Errorf("migrate: %s statement %d: %w", m.name, i+1, err)
				}
			}
			if _, err := t.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, s.nowMicro()); err != nil {
				return fmt.Errorf("migrate: record %s: %w", m.name, err)
			}
			s.log.Info("applied migration", "engine", s.d.name, "migration", m.name)
		}
		return nil
	})
}

// statements splits a migration into statements: each ends with a
// semicolon at the end of a line. Comment lines are dropped. Splitting
// ourselves keeps us independent of each driver's multi-statement support.
func statements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, strings.TrimSpace(cur.String()))
	}
	return out
}
